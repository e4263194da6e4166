//! The authorization server end to end: `/oauth/token` (password and
//! password-realm grants), discovery, JWKS and `/userinfo`, over a real TLS
//! gateway. Every error row these grants can produce is checked with its
//! status and exact body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use http::Method;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::{SqliteStore, Store};
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";
const PASSWORD_REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";
const API: &str = "https://api.example.com";

/// Issuer, store, one API, a confidential, a public and a restricted client, two realms,
/// and a protected route to the upstream.
fn auth_toml(upstream: &str, default_realm: bool) -> String {
    let default_realm = if default_realm {
        format!("default_realm = \"{REALM}\"")
    } else {
        String::new()
    };
    format!(
        r#"
[issuer]
url = "https://localhost/"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "{API}"
{default_realm}

[store]
path = "{{dir}}/passgate.db"

[[apis]]
audience = "{API}"
scopes = ["read:items", "write:items"]
token_lifetime = "1h"

[[apis]]
audience = "https://other.example.com"
scopes = ["other:read"]

[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "{PASSWORD_REALM}"]
realms = ["{REALM}", "partners"]

[[clients]]
id = "spa"
grant_types = ["password", "{PASSWORD_REALM}"]
realms = ["{REALM}"]

[[clients]]
id = "limited"
secret = "limited-secret"
grant_types = ["{PASSWORD_REALM}"]
realms = ["{REALM}"]

[[realms]]
name = "{REALM}"

[[realms]]
name = "partners"

[[realms]]
name = "staff"

[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "{API}"
scopes = ["read:items"]
"#
    )
}

struct World {
    gw: TestGateway,
    upstream: Upstream,
    store: Arc<SqliteStore>,
}

fn admin(store: &Arc<SqliteStore>) -> Admin {
    Admin::new(
        store.clone(),
        Hasher::new(Default::default(), 1).unwrap(),
        passgate::clock::system(),
    )
}

async fn world_with(default_realm: bool) -> World {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&auth_toml(&upstream.url, default_realm))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    let a = admin(&store);
    a.add(
        REALM,
        "alice",
        Some("alice@example.com"),
        "correct horse battery",
    )
    .await
    .unwrap();
    a.add("partners", "pat", None, "partner password")
        .await
        .unwrap();
    World {
        gw,
        upstream,
        store,
    }
}

async fn world() -> World {
    world_with(true).await
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

async fn post_form(client: &TestClient, pairs: &[(&str, &str)]) -> Reply {
    let req = client
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(form(pairs)))
        .unwrap();
    client.send(req).await
}

async fn post_json(client: &TestClient, value: Value) -> Reply {
    let req = client
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/json")
        .body(body(value.to_string()))
        .unwrap();
    client.send(req).await
}

fn login<'a>(username: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ]
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn assert_error(reply: &Reply, status: u16, error: &str, description: &str) {
    assert_eq!(
        reply.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.body,
        json!({"error": error, "error_description": description})
            .to_string()
            .as_bytes(),
        "body"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_issues_tokens_that_pass_the_gateway() {
    let w = world().await;
    for proto in BOTH {
        let c = w.gw.client(proto);
        let reply = post_form(&c, &login("alice", "correct horse battery")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("pragma"), Some("no-cache"));
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read:items write:items");
        assert!(body.get("id_token").is_none(), "no id_token without openid");
        assert!(body.get("refresh_token").is_none());
        let at = body["access_token"].as_str().unwrap();
        let c2 = claims(at);
        assert_eq!(c2["iss"], "https://localhost/");
        assert_eq!(c2["aud"], API);
        assert_eq!(c2["azp"], "app");
        assert_eq!(c2["gty"], "password");
        assert!(c2["sub"].as_str().unwrap().starts_with("auth0|"));
        assert!(c2["sid"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(
            c2["exp"].as_i64().unwrap() - c2["iat"].as_i64().unwrap(),
            3600
        );

        let through = c
            .get_with("/api/items", &[("authorization", &format!("Bearer {at}"))])
            .await;
        assert_eq!(through.status, 200);
        assert_eq!(
            w.upstream.last().headers["x-auth-subject"]
                .to_str()
                .unwrap(),
            c2["sub"].as_str().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_row_of_the_password_grants() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let wrong = post_form(&c, &login("alice", "not the password")).await;
    let unknown = post_form(&c, &login("nobody", "whatever pw")).await;
    assert_error(&wrong, 403, "invalid_grant", "Wrong email or password.");
    assert_eq!(
        wrong.body, unknown.body,
        "unknown user and wrong password look the same"
    );
    assert_eq!(wrong.status, unknown.status);

    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "limited"),
                ("client_secret", "limited-secret"),
            ],
            403,
            "unauthorized_client",
            "Grant type 'password' not allowed for the client.",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "ghost"),
                ("client_secret", "x"),
            ],
            401,
            "access_denied",
            "Unauthorized",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "app"),
                ("client_secret", "wrong"),
            ],
            401,
            "access_denied",
            "Unauthorized",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "app"),
            ],
            401,
            "access_denied",
            "Unauthorized",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("password", "x"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            400,
            "invalid_request",
            "missing username parameter",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            400,
            "invalid_request",
            "missing password parameter",
        ),
        (
            vec![
                ("grant_type", "urn:made:up"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            400,
            "unsupported_grant_type",
            "Grant type 'urn:made:up' not supported.",
        ),
        (
            vec![
                ("grant_type", PASSWORD_REALM),
                ("realm", "nope"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            400,
            "invalid_request",
            "the connection was not found",
        ),
        (
            vec![
                ("grant_type", PASSWORD_REALM),
                ("realm", "staff"),
                ("username", "alice"),
                ("password", "x"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            400,
            "invalid_request",
            "the connection was disabled",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
                ("audience", "https://nowhere.example"),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
            403,
            "access_denied",
            "Service not found: https://nowhere.example",
        ),
    ];
    for (pairs, status, error, description) in cases {
        let reply = post_form(&c, &pairs).await;
        assert_error(&reply, status, error, description);
    }

    // A scope the API does not define, alone: nothing left to grant.
    let mut pairs = login("alice", "correct horse battery");
    pairs.push(("scope", "delete:everything"));
    let reply = post_form(&c, &pairs).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_scope");

    // Basic authentication failure also says how to authenticate.
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("app:wrong")),
        )
        .body(body(form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "x"),
        ])))
        .unwrap();
    let reply = c.send(req).await;
    assert_error(&reply, 401, "access_denied", "Unauthorized");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"passgate\"")
    );

    // Other content types, and bodies over the limit.
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "text/plain")
        .body(body("x"))
        .unwrap();
    assert_eq!(c.send(req).await.status, 400);
    let big = "a=".to_string() + &"b".repeat(20_000);
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(big))
        .unwrap();
    assert_eq!(c.send(req).await.status, 413);
    assert_eq!(c.get("/oauth/token").await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_user_and_no_default_realm() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    admin(&w.store)
        .set_blocked(REALM, "alice", true)
        .await
        .unwrap();
    let reply = post_form(&c, &login("alice", "correct horse battery")).await;
    assert_error(&reply, 401, "unauthorized", "user is blocked");
    // A blocked user with a wrong password learns nothing more than anyone else.
    let reply = post_form(&c, &login("alice", "wrong password")).await;
    assert_error(&reply, 403, "invalid_grant", "Wrong email or password.");

    let w = world_with(false).await;
    let c = w.gw.client(Proto::H1);
    let reply = post_form(&c, &login("alice", "correct horse battery")).await;
    assert_error(
        &reply,
        500,
        "server_error",
        "Authorization server not configured with default connection.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_basic_auth_and_public_clients() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    // The shape one official SDK sends: nulls and empty strings mean absent.
    let reply = post_json(
        &c,
        json!({"grant_type": "password", "username": "alice", "password": "correct horse battery",
               "client_id": "app", "client_secret": "app-secret", "realm": null, "scope": null, "audience": ""}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode("app:app-secret")),
        )
        .body(body(form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ])))
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);

    let reply = post_form(
        &c,
        &[
            ("grant_type", "password"),
            ("username", "alice@example.com"),
            ("password", "correct horse battery"),
            ("client_id", "spa"),
        ],
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "a public client logs in with its id alone; e-mail works as the login name"
    );
    assert_eq!(
        claims(reply.json()["access_token"].as_str().unwrap())["azp"],
        "spa"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realms_default_named_and_ignored() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let realm_login = |realm: &'static str, user: &'static str, pw: &'static str| {
        vec![
            ("grant_type", PASSWORD_REALM),
            ("realm", realm),
            ("username", user),
            ("password", pw),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ]
    };
    assert_eq!(
        post_form(&c, &realm_login("partners", "pat", "partner password"))
            .await
            .status,
        200
    );
    // The user lives in another realm than the one named.
    assert_eq!(
        post_form(&c, &realm_login(REALM, "pat", "partner password"))
            .await
            .status,
        403
    );
    // password-realm without a realm uses the default realm.
    let mut pairs = realm_login(REALM, "alice", "correct horse battery");
    pairs.remove(1);
    assert_eq!(post_form(&c, &pairs).await.status, 200);
    // grant_type=password ignores a realm parameter.
    let mut pairs = login("pat", "partner password");
    pairs.push(("realm", "partners"));
    assert_eq!(post_form(&c, &pairs).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_audience_and_id_tokens() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = login("alice", "correct horse battery");
        p.extend_from_slice(extra);
        p
    };
    let scope_of = |r: &Reply| r.json()["scope"].as_str().unwrap().to_string();

    let r = post_form(&c, &with(&[("scope", "read:items")])).await;
    assert_eq!(scope_of(&r), "read:items");
    let r = post_form(&c, &with(&[("scope", "read:items bogus")])).await;
    assert_eq!(scope_of(&r), "read:items", "unknown scopes are dropped");
    let r = post_form(&c, &with(&[("audience", "https://other.example.com")])).await;
    assert_eq!(scope_of(&r), "other:read");
    assert_eq!(
        claims(r.json()["access_token"].as_str().unwrap())["aud"],
        "https://other.example.com"
    );

    let r = post_form(&c, &with(&[("scope", "openid profile email")])).await;
    let body = r.json();
    assert_eq!(body["scope"], "openid profile email read:items write:items");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], json!([API, "https://localhost/userinfo"]));
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], "app");
    assert_eq!(id["iss"], "https://localhost/");
    assert_eq!(id["sub"], access["sub"]);
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["email_verified"], false);
    assert_eq!(id["nickname"], "alice");
    assert!(id["updated_at"].is_string());

    // /userinfo answers for the openid token, with the scopes' claims.
    let at = body["access_token"].as_str().unwrap();
    let info = c
        .get_with("/userinfo", &[("authorization", &format!("Bearer {at}"))])
        .await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["sub"], access["sub"]);
    assert_eq!(info.json()["email"], "alice@example.com");
    // ...and not for a token without openid.
    let r = post_form(&c, &with(&[])).await;
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let info = c
        .get_with("/userinfo", &[("authorization", &format!("Bearer {at}"))])
        .await;
    assert_eq!(info.status, 401);
}

/// A store that fails under /userinfo is passgate's 500, not the token's
/// 401 "revoked" (issue 11, errors keep their cause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_answers_500_when_the_store_fails() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let mut pairs = login("alice", "correct horse battery");
    pairs.push(("scope", "openid email"));
    let r = post_form(&c, &pairs).await;
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {at}");
    assert_eq!(
        c.get_with("/userinfo", &[("authorization", &auth)])
            .await
            .status,
        200
    );

    // Break the users table behind the running gateway's back.
    let db = rusqlite::Connection::open(w.gw.dir.path().join("passgate.db")).unwrap();
    db.execute_batch("ALTER TABLE users RENAME TO users_gone")
        .unwrap();
    let info = c.get_with("/userinfo", &[("authorization", &auth)]).await;
    assert_eq!(info.status, 500, "{:?}", info.body);
    assert_eq!(info.json()["error"], "server_error");
    assert!(info.header("www-authenticate").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_jwks_verify_tokens_independently() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let disco = c.get("/.well-known/openid-configuration").await.json();
    assert_eq!(disco["issuer"], "https://localhost/");
    assert_eq!(disco["token_endpoint"], "https://localhost/oauth/token");
    assert_eq!(disco["jwks_uri"], "https://localhost/.well-known/jwks.json");
    assert!(
        disco["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(PASSWORD_REALM))
    );

    let jwks = c.get("/.well-known/jwks.json").await.json();
    let r = post_form(&c, &login("alice", "correct horse battery")).await;
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    // jsonwebtoken's own decode path (not passgate's verifier) against the published JWKS.
    let header = jsonwebtoken::decode_header(&at).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[API]);
    v.set_issuer(&["https://localhost/"]);
    let data = jsonwebtoken::decode::<Value>(&at, &key, &v).unwrap();
    assert_eq!(data.claims["azp"], "app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_bcrypt_user_logs_in_and_is_rehashed() {
    let w = world().await;
    let hash = bcrypt::hash("imported secret", 4).unwrap();
    let records = passgate::identity::import::parse(
        &json!([{"email": "imp@example.com", "user_id": "legacy42", "email_verified": true,
                 "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": hash}}}])
        .to_string(),
    )
    .unwrap();
    let report = passgate::identity::import::import(w.store.as_ref(), REALM, records, 1, |_| {})
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    let c = w.gw.client(Proto::H1);
    let r = post_form(&c, &login("imp@example.com", "imported secret")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        claims(r.json()["access_token"].as_str().unwrap())["sub"],
        "auth0|legacy42"
    );
    let stored = w.store.get_user("auth0|legacy42").await.unwrap().unwrap();
    assert!(
        stored.password_hash.unwrap().starts_with("$argon2id$"),
        "re-hashed after the first login"
    );
    assert_eq!(stored.logins_count, 1);
    // The new hash works, the old password still works, a wrong one does not.
    assert_eq!(
        post_form(&c, &login("imp@example.com", "imported secret"))
            .await
            .status,
        200
    );
    assert_eq!(
        post_form(&c, &login("imp@example.com", "imported secreT"))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_old_tokens_valid() {
    let upstream = Upstream::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let toml = auth_toml(&upstream.url, true);
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .toml(&toml)
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&dir.path().join("passgate.db")).unwrap());
    admin(&store)
        .add(REALM, "alice", None, "correct horse battery")
        .await
        .unwrap();
    let c = gw.client(Proto::H1);
    let old = post_form(&c, &login("alice", "correct horse battery"))
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    gw.shutdown().await;

    let new_key = passgate::tokens::keys::generate_into(
        &dir.path().join("signing"),
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .toml(&toml)
        .start()
        .await;
    let c = gw.client(Proto::H2);
    let fresh = post_form(&c, &login("alice", "correct horse battery"))
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
        Some(new_key.kid.as_str())
    );
    assert_ne!(
        jsonwebtoken::decode_header(&old).unwrap().kid,
        jsonwebtoken::decode_header(&fresh).unwrap().kid
    );
    for token in [&old, &fresh] {
        let r = c
            .get_with(
                "/api/items",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        c.get("/.well-known/jwks.json").await.json()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
