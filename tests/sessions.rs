//! Login sessions, rotating refresh tokens and revocation, end to end: the
//! refresh grant, `/oauth/revoke`, and the proxy refusing a revoked session's
//! still-unexpired access token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Method;
use passgate::clock::ManualClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";

fn toml(upstream: &str) -> String {
    format!(
        r#"
[issuer]
url = "https://localhost/"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "https://api.example.com"
default_realm = "{REALM}"
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items", "write:items"]
token_lifetime = "1h"
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "refresh_token"]
refresh_token_idle_lifetime = "2h"
refresh_token_absolute_lifetime = "5h"
refresh_token_max_families = 3
[[clients]]
id = "other"
secret = "other-secret"
grant_types = ["password", "refresh_token"]
[[clients]]
id = "norotate"
secret = "n-secret"
grant_types = ["password", "refresh_token"]
refresh_token_rotation = false
[[clients]]
id = "lenient"
secret = "l-secret"
grant_types = ["password", "refresh_token"]
refresh_token_reuse_leeway = "10s"
[[realms]]
name = "{REALM}"
[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "https://api.example.com"
scopes = ["read:items"]
"#
    )
}

struct World {
    gw: TestGateway,
    _upstream: Upstream,
    admin: Admin,
    clock: Arc<ManualClock>,
}

async fn world_in(dir: Arc<tempfile::TempDir>, clock: Arc<ManualClock>) -> World {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .clock(clock.clone())
        .toml(&toml(&upstream.url))
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
        admin
            .add(REALM, "alice", None, "correct horse battery")
            .await
            .unwrap();
    }
    World {
        gw,
        _upstream: upstream,
        admin,
        clock,
    }
}

async fn world() -> World {
    world_in(
        Arc::new(tempfile::tempdir().unwrap()),
        ManualClock::starting_now(),
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
            ("password", "correct horse battery"),
            ("client_id", client),
            ("client_secret", secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn refresh(
    c: &TestClient,
    client: &str,
    secret: &str,
    token: &str,
    scope: Option<&str>,
) -> Reply {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client),
        ("client_secret", secret),
    ];
    if let Some(s) = scope {
        pairs.push(("scope", s));
    }
    post(c, "/oauth/token", &pairs).await
}

fn rt(v: &Value) -> String {
    v["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string()
}

fn assert_invalid_refresh(r: &Reply) {
    assert_eq!(r.status, 403, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})
    );
}

async fn proxied(c: &TestClient, access: &str) -> Reply {
    c.get_with(
        "/api/items",
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_need_offline_access() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let plain = login(&c, "app", "app-secret", "read:items").await;
    assert!(plain.get("refresh_token").is_none());
    let full = login(&c, "app", "app-secret", "openid offline_access read:items").await;
    assert_eq!(full["scope"], "openid offline_access read:items");
    let token = rt(&full);
    assert_eq!(token.len(), 43, "256 bits, base64url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_chain_and_reuse_kills_the_family() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    let first = login(
        &c,
        "app",
        "app-secret",
        "openid offline_access read:items write:items",
    )
    .await;
    let sid = claims(first["access_token"].as_str().unwrap())["sid"].clone();
    let mut chain = vec![rt(&first)];
    for _ in 0..4 {
        w.clock.advance(1);
        let r = refresh(&c, "app", "app-secret", chain.last().unwrap(), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let body = r.json();
        let access = claims(body["access_token"].as_str().unwrap());
        assert_eq!(access["gty"], "refresh_token");
        assert_eq!(access["sid"], sid, "the session carries on");
        assert!(body["id_token"].is_string(), "the session had openid");
        assert_eq!(
            body["scope"],
            "openid offline_access read:items write:items"
        );
        let next = rt(&body);
        assert!(!chain.contains(&next));
        chain.push(next);
    }
    let newest_access = {
        w.clock.advance(1);
        let r = refresh(&c, "app", "app-secret", chain.last().unwrap(), None).await;
        let body = r.json();
        chain.push(rt(&body));
        body["access_token"].as_str().unwrap().to_string()
    };
    assert_eq!(proxied(&c, &newest_access).await.status, 200);

    // An old token comes back (after the 0 s leeway): the whole family dies.
    w.clock.advance(1);
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &chain[1], None).await);
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", chain.last().unwrap(), None).await);
    // ...and with it the session: its access token is refused at once.
    let r = proxied(&c, &newest_access).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("the token has been revoked")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_one_wins_and_the_family_survives_the_leeway() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    // A client with a 10 s leeway: of two concurrent exchanges one wins, and
    // the loser's replay is a race, not a theft. (tests/races.rs makes the
    // loser reach the store after the winner deterministically.)
    let token = rt(&login(&c, "lenient", "l-secret", "offline_access").await);
    let (a, b) = tokio::join!(
        refresh(&c, "lenient", "l-secret", &token, None),
        refresh(&c, "lenient", "l-secret", &token, None)
    );
    let (winner, loser) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(winner.status, 200);
    assert_invalid_refresh(&loser);
    let r = refresh(&c, "lenient", "l-secret", &rt(&winner.json()), None).await;
    assert_eq!(r.status, 200);

    // A retired token 5 s later is still a race.
    let token = rt(&login(&c, "lenient", "l-secret", "offline_access").await);
    let next = rt(&refresh(&c, "lenient", "l-secret", &token, None)
        .await
        .json());
    w.clock.advance(5);
    assert_invalid_refresh(&refresh(&c, "lenient", "l-secret", &token, None).await);
    assert_eq!(
        refresh(&c, "lenient", "l-secret", &next, None).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_leeway_refuses_a_replay_in_the_same_second() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    // Log in, refresh, and replay the first token at once (the clock does not move).
    let first = rt(&login(&c, "app", "app-secret", "offline_access read:items").await);
    let r = refresh(&c, "app", "app-secret", &first, None).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let (newest, access) = (
        rt(&body),
        body["access_token"].as_str().unwrap().to_string(),
    );
    assert_eq!(proxied(&c, &access).await.status, 200);
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &first, None).await);
    // The replay was a reuse: the family and its session are gone.
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &newest, None).await);
    assert_eq!(proxied(&c, &access).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_narrows_but_never_widens() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let token = rt(&login(&c, "app", "app-secret", "offline_access read:items").await);
    let r = refresh(&c, "app", "app-secret", &token, Some("read:items")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["scope"], "read:items");
    let token = rt(&r.json());
    let r = refresh(
        &c,
        "app",
        "app-secret",
        &token,
        Some("read:items write:items"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_scope");
    // An empty scope (as one SDK sends) means "as granted".
    let r = refresh(&c, "app", "app-secret", &token, Some("")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_lifetimes() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    // Idle: 2 h without use ends the family.
    let token = rt(&login(&c, "app", "app-secret", "offline_access").await);
    w.clock.advance(2 * 3600 + 1);
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &token, None).await);

    // Absolute: used every hour, the family still ends 5 h after login.
    let mut token = rt(&login(&c, "app", "app-secret", "offline_access").await);
    for _ in 0..4 {
        w.clock.advance(3600);
        let r = refresh(&c, "app", "app-secret", &token, None).await;
        assert_eq!(r.status, 200);
        token = rt(&r.json());
    }
    w.clock.advance(3600 + 1);
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &token, None).await);

    // Without rotation the same token keeps working, and use keeps it from idling out.
    let token = rt(&login(&c, "norotate", "n-secret", "offline_access").await);
    for _ in 0..3 {
        w.clock.advance(3600);
        let r = refresh(&c, "norotate", "n-secret", &token, None).await;
        assert_eq!(r.status, 200);
        assert!(r.json().get("refresh_token").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_family_is_dropped_past_the_cap() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    let mut tokens = Vec::new();
    for _ in 0..4 {
        w.clock.advance(1);
        tokens.push(rt(&login(&c, "app", "app-secret", "offline_access").await));
    }
    // The cap for "app" is 3 in this config (200 by default).
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &tokens[0], None).await);
    for t in &tokens[1..] {
        assert_eq!(refresh(&c, "app", "app-secret", t, None).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_ends_the_session_everywhere_at_once() {
    let w = world().await;
    let c = w.gw.client(Proto::H2);
    let body = login(&c, "app", "app-secret", "offline_access read:items").await;
    let access = body["access_token"].as_str().unwrap().to_string();
    let token = rt(&body);
    assert_eq!(
        proxied(&c, &access).await.status,
        200,
        "cached as valid first"
    );

    // Another client's revocation answers 200 and changes nothing.
    let r = post(
        &c,
        "/oauth/revoke",
        &[
            ("token", &token),
            ("client_id", "other"),
            ("client_secret", "other-secret"),
        ],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(proxied(&c, &access).await.status, 200);
    // Unknown tokens: 200 too; bad client credentials: 401.
    let r = post(
        &c,
        "/oauth/revoke",
        &[
            ("token", "nope"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(
        &c,
        "/oauth/revoke",
        &[
            ("token", &token),
            ("client_id", "app"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(r.status, 401);

    // The owner revokes (JSON body): the proxy refuses the session's access token at once.
    let req = c
        .req(Method::POST, "/oauth/revoke")
        .header("content-type", "application/json")
        .body(common::body(
            json!({"token": token, "client_id": "app", "client_secret": "app-secret"}).to_string(),
        ))
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);
    let r = proxied(&c, &access).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &token, None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_or_a_new_password_ends_sessions() {
    let w = world().await;
    let c = w.gw.client(Proto::H1);
    for change in ["password", "block"] {
        let body = login(&c, "app", "app-secret", "offline_access read:items").await;
        let access = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(proxied(&c, &access).await.status, 200);
        // As the CLI does it: another store connection, as another process would have.
        match change {
            "password" => drop(
                w.admin
                    .set_password(REALM, "alice", "correct horse battery")
                    .await
                    .unwrap(),
            ),
            _ => drop(w.admin.set_blocked(REALM, "alice", true).await.unwrap()),
        }
        // The gateway follows the store's revocation log every second.
        let mut status = 0;
        for _ in 0..40 {
            status = proxied(&c, &access).await.status.as_u16();
            if status == 401 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 401, "after {change}");
        assert_invalid_refresh(&refresh(&c, "app", "app-secret", &rt(&body), None).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_refresh_tokens_and_revocations() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let clock = ManualClock::starting_now();
    let w = world_in(dir.clone(), clock.clone()).await;
    let c = w.gw.client(Proto::H1);
    let kept = login(&c, "app", "app-secret", "offline_access read:items").await;
    let gone = login(&c, "app", "app-secret", "offline_access read:items").await;
    let r = post(
        &c,
        "/oauth/revoke",
        &[
            ("token", &rt(&gone)),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    w.gw.shutdown().await;

    let w = world_in(dir, clock).await;
    let c = w.gw.client(Proto::H2);
    assert_eq!(
        proxied(&c, gone["access_token"].as_str().unwrap())
            .await
            .status,
        401,
        "revocation survives"
    );
    assert_eq!(
        proxied(&c, kept["access_token"].as_str().unwrap())
            .await
            .status,
        200
    );
    assert_eq!(
        refresh(&c, "app", "app-secret", &rt(&kept), None)
            .await
            .status,
        200,
        "refresh token survives"
    );
    assert_invalid_refresh(&refresh(&c, "app", "app-secret", &rt(&gone), None).await);
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
