//! Issue 11, item 3: the password hasher keeps no cancelled work.
//!
//! A login whose client goes away (here: 200 cancelled HTTP/2 streams) leaves
//! the hashing queue without being checked, so the next login waits for at
//! most the one hash already running. Counted, not timed: the admin
//! listener's `passgate_password_checks_total{outcome="run"}` says how many
//! checks a worker actually ran. Beyond `passwords.queue` a login is refused
//! at once with 503 `temporarily_unavailable` and `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Method;
use passgate::identity::password::{HashParams, Hasher};
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REALM: &str = LOGIN_REALM;
const PASSWORD: &str = "correct horse battery";

/// Cheap argon2 for the gateway (and so for unknown users' dummy hash).
fn cheap() -> HashParams {
    HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// A stored hash slow enough (about a second per 10 `iterations`) that
/// checks pile up behind its check: verification uses the stored hash's own
/// parameters.
fn slow(iterations: u32) -> HashParams {
    HashParams {
        memory_kib: 64 * 1024,
        iterations,
        parallelism: 1,
    }
}

/// One realm, one client, one hashing worker, no floor, and
/// limits high enough that only the hashing pool refuses.
fn toml(queue: usize) -> String {
    format!(
        r#"{}
[attack_protection]
request_limit = 100000
user_ip_burst = 100000
user_ip_limit = 100000
suspicious_ip_threshold = 100000
[passwords]
memory = "64KiB"
iterations = 1
workers = 1
queue = {queue}
verify_floor = "0s"
"#,
        login_toml()
    )
}

/// The gateway, with alice (cheap hash) and slowpoke (a hash of `slowness`
/// argon2 passes over 64 MiB).
async fn start(queue: usize, slowness: u32) -> TestGateway {
    let gw = TestGateway::builder().toml(&toml(queue)).start().await;
    let dir = gw.dir.path().to_path_buf();
    tokio::spawn(async move {
        let store = Arc::new(SqliteStore::open(&dir.join("passgate.db")).unwrap());
        for (user, params) in [("alice", cheap()), ("slowpoke", slow(slowness))] {
            Admin::new(
                store.clone(),
                Hasher::new(params, 1).unwrap(),
                passgate::clock::system(),
            )
            .add(REALM, user, None, PASSWORD)
            .await
            .unwrap();
        }
    })
    .await
    .unwrap();
    gw
}

/// slowpoke's login, holding the only worker for its long check.
async fn occupy_the_worker(gw: &TestGateway, c: &TestClient) -> tokio::task::JoinHandle<Reply> {
    let c = c.clone();
    let task = tokio::spawn(async move { login(&c, "slowpoke", PASSWORD).await });
    until_in_flight(gw, |n| n >= 1, "1").await;
    task
}

async fn login(c: &TestClient, user: &str, password: &str) -> Reply {
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ])
    .unwrap();
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(form))
        .unwrap();
    c.send(req).await
}

/// One sample of the admin listener's `/metrics`.
async fn metric(gw: &TestGateway, name: &str) -> u64 {
    let mut tcp = tokio::net::TcpStream::connect(gw.admin_addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

const RUN: &str = "passgate_password_checks_total{outcome=\"run\"}";
const IN_FLIGHT: &str = "passgate_password_checks_in_flight";

async fn until_in_flight(gw: &TestGateway, done: impl Fn(u64) -> bool, what: &str) {
    for _ in 0..30_000 {
        if done(metric(gw, IN_FLIGHT).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("checks in flight never reached {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_logins_do_not_delay_the_next_by_more_than_one_hash() {
    // slowpoke's check must outlast queueing 200 logins one by one.
    let gw = start(1_000, 40).await;
    let c = gw.client(Proto::H2);
    let mut cancelled = vec![occupy_the_worker(&gw, &c).await];
    // 200 logins on one HTTP/2 connection queue behind slowpoke's check,
    // one at a time so that the queue holds them in this order...
    for i in 0..200u64 {
        let c = c.clone();
        cancelled.push(tokio::spawn(async move {
            login(&c, &format!("ghost{i}"), "wrong").await
        }));
        until_in_flight(&gw, |n| n >= i + 2, "the next login").await;
    }
    // ...then the client cancels every stream in the same order, the one at
    // the head of the queue first, giving the gateway a moment between two.
    for task in &cancelled {
        task.abort();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in cancelled {
        let _ = task.await;
    }
    // Once the gateway has seen every cancellation, at most one check (the
    // one running) is left; nothing cancelled stays queued.
    until_in_flight(&gw, |n| n <= 1, "at most one").await;
    let ran_before = metric(&gw, RUN).await;
    let reply = login(&c, "alice", PASSWORD).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let ran = metric(&gw, RUN).await;
    // alice's check, and at most one that started as the count was read: no
    // cancelled login was hashed ahead of her (at worst she waited for
    // slowpoke's hash, already running).
    assert!(
        ran <= ran_before + 2,
        "{} checks ran before alice's login was answered: cancelled logins were hashed",
        ran - ran_before
    );
    assert_eq!(metric(&gw, IN_FLIGHT).await, 0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_with_retry_after_and_recovers() {
    let gw = start(0, 8).await;
    let c = gw.client(Proto::H2);
    let busy = occupy_the_worker(&gw, &c).await;
    let refused = login(&c, "alice", PASSWORD).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(
        refused.json(),
        serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "The service is temporarily unavailable. Try again later."
        })
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    assert_eq!(busy.await.unwrap().status, 200);
    // The refusal did no hashing and counted no failure: alice logs in.
    assert_eq!(login(&c, "alice", PASSWORD).await.status, 200);
    assert_eq!(
        metric(&gw, "passgate_password_checks_total{outcome=\"refused\"}").await,
        1
    );
    gw.shutdown().await;
}

#[test]
fn the_queue_defaults_to_128_per_worker_and_is_validated() {
    let parse = |text: &str| passgate::config::Config::from_toml(text);
    let config = parse("[passwords]\nworkers = 3\n").unwrap();
    assert_eq!(config.passwords.queue, 3 * 128);
    let config = parse("[passwords]\nqueue = 0\n").unwrap();
    assert_eq!(config.passwords.queue, 0);
    for bad in ["-1", "1000001"] {
        let err = parse(&format!("[passwords]\nqueue = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("passwords.queue"), "{err}");
    }
}
