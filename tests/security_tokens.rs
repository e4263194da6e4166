//! Issue 10, findings 12 and 13: tokens and revocation at the trust boundary.
//!
//! - `/oauth/revoke` sits behind the token endpoint's per-IP request limit,
//!   and revoking an access token ends its login session;
//! - an audience equal to a client id is refused at config time, passgate's
//!   access tokens carry `typ: at+jwt`, and the gate refuses own tokens of any
//!   other type once the legacy window after the cut-over has closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use passgate::clock::ManualClock;
use passgate::config::Config;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use passgate::tokens::keys::KeyRing;
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";
const ISS: &str = "https://localhost/";
const API: &str = "https://api.example.com";
const PASSWORD: &str = "correct horse battery";

fn toml(upstream: &str, request_limit: u32) -> String {
    format!(
        r#"
[issuer]
url = "{ISS}"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "{API}"
default_realm = "{REALM}"
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "{API}"
scopes = ["read:items", "write:items"]
token_lifetime = "1h"
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "refresh_token"]
[[clients]]
id = "other"
secret = "other-secret"
grant_types = ["password", "refresh_token"]
[[realms]]
name = "{REALM}"
[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "{API}"
scopes = ["read:items"]
[attack_protection]
request_limit = {request_limit}
user_ip_burst = 100000
user_ip_limit = 100000
"#
    )
}

struct World {
    gw: TestGateway,
    _upstream: Upstream,
    clock: Arc<ManualClock>,
}

async fn world_with(
    dir: Arc<tempfile::TempDir>,
    clock: Arc<ManualClock>,
    request_limit: u32,
) -> World {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .clock(clock.clone())
        .toml(&toml(&upstream.url, request_limit))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store.clone(),
        Hasher::new(Default::default(), 1).unwrap(),
        clock.clone(),
    )
    .with_sessions(store);
    if admin.find(REALM, "alice").await.is_err() {
        admin.add(REALM, "alice", None, PASSWORD).await.unwrap();
    }
    World {
        gw,
        _upstream: upstream,
        clock,
    }
}

async fn world() -> World {
    world_with(
        Arc::new(tempfile::tempdir().unwrap()),
        ManualClock::starting_now(),
        100_000,
    )
    .await
}

async fn post(c: &TestClient, path: &str, pairs: &[(&str, &str)]) -> Reply {
    let req = c
        .req(Method::POST, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

async fn login(c: &TestClient, client: &str, secret: &str, scope: &str) -> Value {
    let r = post(
        c,
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn revoke(c: &TestClient, pairs: &[(&str, &str)]) -> Reply {
    post(c, "/oauth/revoke", pairs).await
}

async fn proxied(c: &TestClient, access: &str) -> Reply {
    c.get_with(
        "/api/items",
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await
}

fn access(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_string()
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

/// A token signed with the gateway's own current key, with header `typ`.
fn mint_own(gw: &TestGateway, typ: &str, claims: &Value) -> String {
    let ring = KeyRing::load(&gw.dir.path().join("signing")).unwrap();
    let key = ring.current();
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some(typ.to_string());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn own_claims(iat: i64, exp: i64) -> Value {
    json!({
        "iss": ISS, "sub": "auth0|legacy", "aud": API, "azp": "app",
        "iat": iat, "exp": exp, "scope": "read:items", "gty": "password",
    })
}

fn assert_invalid_token(r: &Reply, why: &str) {
    assert_eq!(
        r.status,
        401,
        "{why}: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{why}"
    );
}

// === finding 12: /oauth/revoke ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_is_behind_the_per_ip_request_limit() {
    let clock = ManualClock::new(1_800_000_000);
    let w = world_with(Arc::new(tempfile::tempdir().unwrap()), clock, 3).await;
    let c = w.gw.client(Proto::H1);
    // Guessing a client secret at /oauth/revoke: each try costs a request.
    for _ in 0..3 {
        let r = revoke(
            &c,
            &[
                ("token", "x"),
                ("client_id", "app"),
                ("client_secret", "guess"),
            ],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    for pairs in [
        [("client_secret", "guess")],
        [("client_secret", "app-secret")],
    ] {
        let mut all = vec![("token", "x"), ("client_id", "app")];
        all.extend(pairs);
        let limited = revoke(&c, &all).await;
        assert_eq!(limited.status, 429, "{:?}", limited.body);
        assert_eq!(limited.json()["error"], "too_many_requests");
        assert_eq!(limited.header("cache-control"), Some("no-store"));
        let retry: i64 = limited.header("retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1);
        assert_eq!(limited.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(
            limited.header("x-ratelimit-reset"),
            Some((1_800_000_000 + retry).to_string().as_str())
        );
    }
    // One quota for both endpoints.
    let r = post(
        &c,
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_access_token_ends_its_login_session() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    // A login without offline_access: no refresh token to revoke.
    let body = login(&c, "app", "app-secret", "read:items").await;
    assert!(body.get("refresh_token").is_none());
    let token = access(&body);
    assert_eq!(proxied(&c, &token).await.status, 200, "cached as valid");

    // Another client's revocation answers 200 and changes nothing.
    let r = revoke(
        &c,
        &[
            ("token", &token),
            ("client_id", "other"),
            ("client_secret", "other-secret"),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(proxied(&c, &token).await.status, 200);

    // The owner revokes, with a misleading hint: the hint is only a hint.
    let r = revoke(
        &c,
        &[
            ("token", &token),
            ("token_type_hint", "refresh_token"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    let r = proxied(&c, &token).await;
    assert_invalid_token(&r, "after revocation");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("the token has been revoked")
    );

    // With the right hint, on a session that has a refresh token: that ends too.
    let body = login(&c, "app", "app-secret", "offline_access read:items").await;
    let token = access(&body);
    let r = revoke(
        &c,
        &[
            ("token", &token),
            ("token_type_hint", "access_token"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_invalid_token(&proxied(&c, &token).await, "session with refresh");
    let r = post(
        &c,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "the session's refresh token died with it");

    // Tokens passgate did not issue, or did not sign, are no-ops.
    let forged = {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[2] = URL_SAFE_NO_PAD.encode([0u8; 64]);
        parts.join(".")
    };
    for junk in ["not.a.jwt", forged.as_str(), "x"] {
        let r = revoke(
            &c,
            &[
                ("token", junk),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
        )
        .await;
        assert_eq!((r.status.as_u16(), r.body.len()), (200, 0), "{junk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_expired_access_token_changes_nothing() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let body = login(&c, "app", "app-secret", "offline_access read:items").await;
    w.clock.advance(3600 + 120);
    let r = revoke(
        &c,
        &[
            ("token", &access(&body)),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    // The session lives on: its refresh token still works.
    let r = post(
        &c,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(proxied(&c, &access(&r.json())).await.status, 200);
}

// === finding 13: ID tokens are not access tokens ===

#[test]
fn an_audience_equal_to_a_client_id_is_refused() {
    let base = toml("http://127.0.0.1:9", 100).replace("{dir}", "/nonexistent");
    // An API whose identifier is a client id: its access tokens and the
    // client's ID tokens would carry the same `aud`.
    let api = base.replace(
        "[[realms]]",
        "[[apis]]\naudience = \"app\"\nscopes = [\"read:items\"]\n[[realms]]",
    );
    let err = Config::from_toml(&api).unwrap_err().to_string();
    assert!(err.contains("apis[1].audience"), "{err}");
    assert!(err.contains("clients[0]"), "{err}");
    // A route whose audience is a client id would accept that client's ID tokens.
    let route = base.replace(
        &format!("audience = \"{API}\"\nscopes = [\"read:items\"]\n[attack"),
        "audience = \"other\"\nscopes = [\"read:items\"]\n[attack",
    );
    assert_ne!(route, base);
    let err = Config::from_toml(&route).unwrap_err().to_string();
    assert!(err.contains("routes[0].audience"), "{err}");
    assert!(err.contains("clients[1]"), "{err}");
    assert!(Config::from_toml(&base).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_typed_at_jwt_and_id_tokens_jwt() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let body = login(&c, "app", "app-secret", "openid profile read:items").await;
    let token = access(&body);
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(part(&token, 0)["typ"], "at+jwt");
    assert_eq!(part(id_token, 0)["typ"], "JWT");

    // Verified independently, with the published key set.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&c.get("/.well-known/jwks.json").await.body).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[API]);
    v.set_issuer(&[ISS]);
    v.leeway = 5;
    let decoded =
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    assert_eq!(decoded.claims["azp"], "app");
    assert_eq!(proxied(&c, &token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_never_passes_the_gate_as_an_access_token() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    let body = login(&c, "app", "app-secret", "openid read:items").await;
    let id_token = body["id_token"].as_str().unwrap();
    // The config cannot have a route whose audience is the client id, so give
    // the ID token's own claims the route's audience and scope, as an ID
    // token with such an `aud` would have: signed by passgate, typed `JWT`.
    let mut claims = part(id_token, 1);
    claims["aud"] = json!(API);
    claims["scope"] = json!("read:items");
    let as_id = mint_own(&w.gw, "JWT", &claims);
    assert_invalid_token(&proxied(&c, &as_id).await, "a JWT-typed own token");
    // The same claims typed as an access token pass: only `typ` differs.
    let as_access = mint_own(&w.gw, "at+jwt", &claims);
    assert_eq!(proxied(&c, &as_access).await.status, 200);
    // Nor is the real ID token any use at /userinfo.
    let r = c
        .get_with(
            "/userinfo",
            &[("authorization", &format!("Bearer {id_token}"))],
        )
        .await;
    assert_invalid_token(&r, "an ID token at /userinfo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_jwt_typed_tokens_work_only_within_the_window() {
    let t0 = 1_800_000_000;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let clock = ManualClock::new(t0);
    let w = world_with(dir.clone(), clock.clone(), 100_000).await;
    let c = w.gw.client(Proto::H1);
    // Minted by the previous version before the cut-over (its first start, t0).
    let legacy = mint_own(&w.gw, "JWT", &own_claims(t0 - 60, t0 + 3600 - 60));
    // As if an older config had given tokens 10 h: the window still ends at t0 + 1 h.
    let long = mint_own(&w.gw, "JWT", &own_claims(t0 - 60, t0 + 36_000));
    // JWT-typed but issued after the cut-over: never an access token of this version.
    let after = mint_own(&w.gw, "JWT", &own_claims(t0 + 1, t0 + 3600));
    let untyped = {
        let ring = KeyRing::load(&dir.path().join("signing")).unwrap();
        let key = ring.current();
        let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": key.kid}).to_string());
        let p = URL_SAFE_NO_PAD.encode(own_claims(t0 - 60, t0 + 3000).to_string());
        let msg = format!("{h}.{p}");
        let sig =
            jsonwebtoken::crypto::sign(msg.as_bytes(), &key.encoding, Algorithm::ES256).unwrap();
        format!("{msg}.{sig}")
    };
    assert_eq!(proxied(&c, &legacy).await.status, 200);
    assert_eq!(proxied(&c, &long).await.status, 200, "cached now");
    assert_invalid_token(&proxied(&c, &after).await, "JWT-typed after the cut-over");
    assert_invalid_token(&proxied(&c, &untyped).await, "no typ at all");

    // The window closes at cut-over + the longest access-token lifetime (1 h):
    // refused then, cached or not.
    clock.set(t0 + 3600 + 1);
    assert_invalid_token(&proxied(&c, &long).await, "cached, past the window");
    let fresh_legacy = mint_own(&w.gw, "JWT", &own_claims(t0 - 10, t0 + 7200));
    assert_invalid_token(&proxied(&c, &fresh_legacy).await, "past the window");
    let typed = mint_own(&w.gw, "at+jwt", &own_claims(t0 + 3600, t0 + 7200));
    assert_eq!(proxied(&c, &typed).await.status, 200);
    w.gw.shutdown().await;

    // The cut-over is persistent: a restart does not open a new window.
    let w = world_with(dir, clock.clone(), 100_000).await;
    let c = w.gw.client(Proto::H2);
    assert_invalid_token(&proxied(&c, &long).await, "after a restart");
    assert_eq!(proxied(&c, &typed).await.status, 200);
    w.gw.shutdown().await;
}
