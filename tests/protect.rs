//! Attack protection end to end: brute-force blocks per (identifier, IP),
//! their lifting (unblock, password change, 30 days), durability across a
//! restart, suspicious-IP throttling and its allowlist, which IP counts
//! (`auth0-forwarded-for`, `X-Forwarded-For`), and the request rate limit's
//! 429 with its headers. Thresholds are Auth0's where the test is about them
//! and cheap elsewhere; time moves with a `ManualClock`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::*;
use http::Method;
use passgate::clock::ManualClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use serde_json::json;

const REALM: &str = "Username-Password-Authentication";
const PASSWORD: &str = "correct horse battery";
const BLOCKED: &str = "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it.";
const SUSPICIOUS: &str = "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.";
const DAY: i64 = 86_400;

/// An issuer, a store, one API, and four clients: `app` (secret), `backend`
/// (secret, trusted forwarded-for), `untrusted` (secret, not trusted) and
/// `spa` (public). `protection` is the `[attack_protection]` body.
fn toml(protection: &str) -> String {
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
scopes = ["read:items"]
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password"]
realms = ["{REALM}"]
[[clients]]
id = "backend"
secret = "backend-secret"
grant_types = ["password"]
realms = ["{REALM}"]
trust_forwarded_for = true
[[clients]]
id = "untrusted"
secret = "untrusted-secret"
grant_types = ["password"]
realms = ["{REALM}"]
[[clients]]
id = "spa"
grant_types = ["password"]
realms = ["{REALM}"]
[[realms]]
name = "{REALM}"
[attack_protection]
request_limit = 100000
user_ip_burst = 100000
user_ip_limit = 100000
{protection}
"#
    )
}

fn store_of(gw: &TestGateway) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap())
}

fn admin(store: &Arc<SqliteStore>) -> Admin {
    Admin::new(
        store.clone(),
        Hasher::new(Default::default(), 1).unwrap(),
        passgate::clock::system(),
    )
}

async fn start(builder: Builder, protection: &str) -> TestGateway {
    let gw = builder.toml(&toml(protection)).start().await;
    let store = store_of(&gw);
    if admin(&store).find(REALM, "alice").await.is_err() {
        admin(&store)
            .add(REALM, "alice", Some("alice@example.com"), PASSWORD)
            .await
            .unwrap();
    }
    gw
}

/// A password login as `client` (secret looked up by name), with extra headers.
async fn login_as(
    c: &TestClient,
    client: &str,
    user: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut pairs = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
        ("client_id", client),
    ];
    let secret = format!("{client}-secret");
    if client != "spa" {
        pairs.push(("client_secret", &secret));
    }
    let mut req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    c.send(
        req.body(body(serde_urlencoded::to_string(&pairs).unwrap()))
            .unwrap(),
    )
    .await
}

async fn login(c: &TestClient, user: &str, password: &str) -> Reply {
    login_as(c, "app", user, password, &[]).await
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
}

fn assert_wrong(reply: &Reply) {
    assert_error(reply, 403, "invalid_grant", "Wrong email or password.");
}

fn assert_blocked(reply: &Reply) {
    assert_error(reply, 429, "too_many_attempts", BLOCKED);
}

/// Ten wrong passwords for alice from this client's IP: all `invalid_grant`.
async fn ten_failures(c: &TestClient, client: &str, headers: &[(&str, &str)]) {
    for i in 0..10 {
        let r = login_as(c, client, "alice", "wrong password", headers).await;
        assert_eq!(r.status, 403, "failure {i}: {:?}", r.body);
    }
}

fn localhost() -> Option<IpAddr> {
    Some("127.0.0.1".parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleventh_failure_blocks_the_pair_but_not_another_ip() {
    let gw = start(TestGateway::builder(), "").await;
    let c = gw.client(Proto::H1);
    ten_failures(&c, "app", &[]).await;
    assert_blocked(&login(&c, "alice", "wrong password").await);
    assert_blocked(&login(&c, "alice", PASSWORD).await);
    assert_blocked(&login(&c, "ALICE", PASSWORD).await);
    // The same user from another IP (a trusted backend forwarding its user's IP).
    let other = login_as(
        &c,
        "backend",
        "alice",
        PASSWORD,
        &[("auth0-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(other.status, 200, "{:?}", other.body);
    // Another identifier from the blocked IP is not blocked.
    assert_wrong(&login(&c, "bob", "whatever pw").await);

    // The block and the refusals are counted for /metrics.
    let metrics = admin_metrics(gw.admin_addr).await;
    assert!(
        metrics.contains("passgate_attack_protection_total{kind=\"brute_force_block\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("passgate_attack_protection_total{kind=\"brute_force_refused\"} 3"),
        "{metrics}"
    );
}

async fn admin_metrics(addr: std::net::SocketAddr) -> String {
    use http_body_util::{BodyExt, Empty};
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = client
        .get(format!("http://{addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_resets_the_count() {
    let gw = start(TestGateway::builder(), "").await;
    let c = gw.client(Proto::H1);
    for _ in 0..9 {
        assert_wrong(&login(&c, "alice", "wrong password").await);
    }
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);
    ten_failures(&c, "app", &[]).await;
    assert_blocked(&login(&c, "alice", PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unblock_and_password_change_lift_the_block() {
    let gw = start(TestGateway::builder(), "").await;
    let c = gw.client(Proto::H1);
    let store = store_of(&gw);

    // The library function behind `passgate unblock`.
    ten_failures(&c, "app", &[]).await;
    assert_blocked(&login(&c, "alice", PASSWORD).await);
    let cleared = passgate::protect::unblock(store.as_ref(), "Alice", localhost(), "admin")
        .await
        .unwrap();
    assert_eq!(cleared, 1);
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);

    // The command itself, on a config file pointing at the test's store.
    ten_failures(&c, "app", &[]).await;
    assert_blocked(&login(&c, "alice", PASSWORD).await);
    let config = gw.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n",
            gw.dir.path().join("passgate.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["unblock", "--identifier", "alice", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unblocked alice"));
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);

    // A password change.
    ten_failures(&c, "app", &[]).await;
    assert_blocked(&login(&c, "alice", PASSWORD).await);
    admin(&store)
        .with_protect(store.clone())
        .set_password(REALM, "alice", "a brand new password")
        .await
        .unwrap();
    assert_eq!(login(&c, "alice", "a brand new password").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_survives_a_restart() {
    let gw = start(TestGateway::builder(), "").await;
    let dir = gw.dir.clone();
    let c = gw.client(Proto::H1);
    ten_failures(&c, "app", &[]).await;
    gw.shutdown().await;

    let gw = start(TestGateway::builder().dir(dir.clone()), "").await;
    let c = gw.client(Proto::H1);
    assert_blocked(&login(&c, "alice", PASSWORD).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_ends_thirty_days_after_the_last_failure() {
    let clock = ManualClock::new(1_800_000_000);
    let gw = start(TestGateway::builder().clock(clock.clone()), "").await;
    let c = gw.client(Proto::H1);
    ten_failures(&c, "app", &[]).await;
    clock.advance(30 * DAY - 1);
    assert_blocked(&login(&c, "alice", PASSWORD).await);
    clock.advance(1);
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_failing_across_100_identifiers_is_throttled() {
    let clock = ManualClock::new(1_800_000_000);
    let gw = start(TestGateway::builder().clock(clock.clone()), "").await;
    let c = gw.client(Proto::H2);
    let logins = (0..100).map(|i| {
        let c = c.clone();
        async move { login(&c, &format!("user{i}"), "wrong password").await }
    });
    for r in futures_util::future::join_all(logins).await {
        assert_wrong(&r);
    }
    // Throttled: even alice's right password, from this IP.
    assert_error(
        &login(&c, "alice", PASSWORD).await,
        429,
        "too_many_attempts",
        SUSPICIOUS,
    );
    // Another IP is not throttled.
    let other = login_as(
        &c,
        "backend",
        "alice",
        PASSWORD,
        &[("auth0-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert_eq!(other.status, 200);
    // One attempt regained after 864 s; failing it throttles again.
    clock.advance(863);
    assert_eq!(login(&c, "user1", "wrong password").await.status, 429);
    clock.advance(1);
    assert_wrong(&login(&c, "user1", "wrong password").await);
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 429);
    clock.advance(864);
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);

    // Throttled again, then an administrator lifts the throttle (`passgate unblock --ip`).
    let logins = (100..200).map(|i| {
        let c = c.clone();
        async move { login(&c, &format!("user{i}"), "wrong password").await }
    });
    futures_util::future::join_all(logins).await;
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 429);
    let store = store_of(&gw);
    assert!(
        passgate::protect::unblock_ip(store.as_ref(), "127.0.0.1".parse().unwrap(), "test")
            .await
            .unwrap()
    );
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_ip_is_not_throttled() {
    let gw = start(
        TestGateway::builder(),
        "suspicious_ip_threshold = 5\nsuspicious_ip_allowlist = [\"127.0.0.0/8\"]",
    )
    .await;
    let c = gw.client(Proto::H1);
    for i in 0..8 {
        assert_wrong(&login(&c, &format!("user{i}"), "wrong password").await);
    }
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);

    // The same numbers without the allowlist do throttle.
    let gw = start(TestGateway::builder(), "suspicious_ip_threshold = 5").await;
    let c = gw.client(Proto::H1);
    for i in 0..5 {
        assert_wrong(&login(&c, &format!("user{i}"), "wrong password").await);
    }
    assert_error(
        &login(&c, "alice", PASSWORD).await,
        429,
        "too_many_attempts",
        SUSPICIOUS,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_forwarded_for_only_from_a_trusted_secret_client() {
    let gw = start(TestGateway::builder(), "").await;
    let c = gw.client(Proto::H1);
    let forwarded = [("auth0-forwarded-for", "198.51.100.7")];
    // Blocked from the connection's own IP (127.0.0.1).
    ten_failures(&c, "app", &[]).await;
    // Ignored from a client that is not trusted, and from a public client.
    assert_blocked(&login_as(&c, "untrusted", "alice", PASSWORD, &forwarded).await);
    assert_blocked(&login_as(&c, "spa", "alice", PASSWORD, &forwarded).await);
    // Believed from the trusted backend.
    assert_eq!(
        login_as(&c, "backend", "alice", PASSWORD, &forwarded)
            .await
            .status,
        200
    );
    // The backend's failures count against the forwarded IP, by its /64 for IPv6.
    ten_failures(&c, "backend", &[("auth0-forwarded-for", "2001:db8:5:6::1")]).await;
    assert_blocked(
        &login_as(
            &c,
            "backend",
            "alice",
            PASSWORD,
            &[("auth0-forwarded-for", "2001:db8:5:6:ffff::9")],
        )
        .await,
    );
    assert_eq!(
        login_as(
            &c,
            "backend",
            "alice",
            PASSWORD,
            &[("auth0-forwarded-for", "2001:db8:5:7::1")]
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_only_from_a_trusted_proxy() {
    let xff = |ip: &'static str| [("x-forwarded-for", ip)];
    // Behind a trusted proxy (the test client connects from 127.0.0.1).
    let gw = start(
        TestGateway::builder().server("trusted_proxies = [\"127.0.0.1/32\"]"),
        "",
    )
    .await;
    let c = gw.client(Proto::H1);
    ten_failures(&c, "app", &xff("203.0.113.1")).await;
    assert_blocked(&login_as(&c, "app", "alice", PASSWORD, &xff("203.0.113.1")).await);
    assert_eq!(
        login_as(&c, "app", "alice", PASSWORD, &xff("203.0.113.2"))
            .await
            .status,
        200
    );
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);

    // Without it, the header is ignored: every attempt is 127.0.0.1's.
    let gw = start(TestGateway::builder(), "").await;
    let c = gw.client(Proto::H1);
    ten_failures(&c, "app", &xff("203.0.113.1")).await;
    assert_blocked(&login_as(&c, "app", "alice", PASSWORD, &xff("203.0.113.2")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_lockout_blocks_every_ip() {
    let gw = start(
        TestGateway::builder(),
        "account_lockout = true\nbrute_force_threshold = 3",
    )
    .await;
    let c = gw.client(Proto::H1);
    for _ in 0..3 {
        assert_wrong(&login(&c, "alice", "wrong password").await);
    }
    assert_blocked(
        &login_as(
            &c,
            "backend",
            "alice",
            PASSWORD,
            &[("auth0-forwarded-for", "198.51.100.7")],
        )
        .await,
    );
    let store = store_of(&gw);
    passgate::protect::unblock(store.as_ref(), "alice", None, "admin")
        .await
        .unwrap();
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_limit_answers_429_with_its_headers() {
    let clock = ManualClock::new(1_800_000_000);
    let gw = TestGateway::builder()
        .clock(clock.clone())
        .toml(&toml("").replace("request_limit = 100000", "request_limit = 3"))
        .start()
        .await;
    let c = gw.client(Proto::H1);
    assert_wrong(&login_as(&c, "untrusted", "bob", "wrong password", &[]).await);
    // A bad client secret counts too.
    let bad = c
        .send(
            c.req(Method::POST, "/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body(
                    "grant_type=password&username=a&password=b&client_id=app&client_secret=nope",
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(bad.status, 401);
    assert_wrong(&login(&c, "carol", "wrong password").await);
    let limited = login(&c, "alice", PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"], "too_many_requests");
    assert_eq!(limited.header("cache-control"), Some("no-store"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset: i64 = limited
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, 1_800_000_000 + retry as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_user_same_ip_is_rate_limited() {
    let gw = TestGateway::builder()
        .toml(
            &toml("")
                .replace("user_ip_burst = 100000", "user_ip_burst = 2")
                .replace("user_ip_limit = 100000", "user_ip_limit = 1"),
        )
        .start()
        .await;
    let c = gw.client(Proto::H1);
    assert_wrong(&login(&c, "bob", "wrong password").await);
    assert_wrong(&login(&c, "bob", "wrong password").await);
    let limited = login(&c, "bob", "wrong password").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"], "too_many_requests");
    assert!(limited.header("retry-after").is_some());
    // Another identifier from the same IP has its own allowance.
    assert_wrong(&login(&c, "carol", "wrong password").await);
}
