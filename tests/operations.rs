//! Operations on the proxied path, end to end: W3C trace context, per-consumer
//! rate limits on routes, and active health checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Method;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use passgate::clock::ManualClock;
use passgate::config::LogFormat;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use tokio::net::TcpListener;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

/// Everything this test process logs, in the text format. Every test calls
/// it first, so it is installed before the harness's own logger would be.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::registry().with(
            passgate::telemetry::layer(LogFormat::Text, move || writer.clone(), false)
                .with_filter(tracing_subscriber::EnvFilter::new("info")),
        );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// The access-log lines logged so far.
fn access_lines() -> Vec<String> {
    String::from_utf8_lossy(&logs().0.lock().unwrap())
        .lines()
        .filter(|l| l.contains("passgate::access"))
        .map(str::to_string)
        .collect()
}

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn traceparent_is_valid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && v.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && parts[1].chars().any(|c| c != '0')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_kept_or_started_and_passed_upstream() {
    logs();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    for proto in BOTH {
        let c = gw.client(proto);
        let r = c
            .get_with("/public/a", &[("traceparent", GOOD), ("tracestate", "v=1")])
            .await;
        assert_eq!(r.status, 200);
        let seen = upstream.last();
        assert_eq!(seen.headers["traceparent"], GOOD, "{proto:?}");
        assert_eq!(seen.headers["tracestate"], "v=1");

        assert_eq!(c.get("/public/b").await.status, 200);
        let started = upstream.last().headers["traceparent"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(traceparent_is_valid(&started), "{started}");
        assert_ne!(started, GOOD);

        // An invalid header is replaced, and its tracestate dropped.
        let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        c.get_with("/public/c", &[("traceparent", bad), ("tracestate", "v=1")])
            .await;
        let seen = upstream.last();
        let replaced = seen.headers["traceparent"].to_str().unwrap();
        assert!(
            traceparent_is_valid(replaced) && replaced != bad,
            "{replaced}"
        );
        assert!(seen.headers.get("tracestate").is_none());

        // The access log names each trace: the kept one and the started one.
        for trace in [&GOOD[3..35], &started[3..35]] {
            let lines = access_lines();
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&format!("trace_id=\"{trace}\""))),
                "no access line with trace {trace}: {lines:#?}"
            );
        }
    }
    gw.shutdown().await;
}

// === rate limits ===

const REALM: &str = LOGIN_REALM;

async fn login(c: &TestClient, user: &str) -> String {
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", user),
        ("password", "correct horse battery"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
        ("scope", "read:items"),
    ])
    .unwrap();
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(form))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

async fn get_as(c: &TestClient, path: &str, token: &str) -> Reply {
    c.get_with(path, &[("authorization", &format!("Bearer {token}"))])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_by_subject_limits_one_user_not_the_other() {
    logs();
    let upstream = Upstream::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .toml(&login_toml())
        .toml(&format!(
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"{}\"\nscopes = [\"read:items\"]\n\
             rate_limit = {{ key = \"subject\", rate = 3, per = \"60s\", burst = 3 }}\n\
             [[routes]]\nprefix = \"/open/\"\nupstream = \"{}\"\npublic = true\n\
             rate_limit = {{ key = \"ip\", rate = 1, per = \"60s\", methods = [\"POST\"] }}\n",
            upstream.url, upstream.url
        ))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        ManualClock::starting_now(),
    );
    for user in ["alice", "bob"] {
        admin
            .add(REALM, user, None, "correct horse battery")
            .await
            .unwrap();
    }
    let c = gw.client(Proto::H2);
    let alice = login(&c, "alice").await;
    let bob = login(&c, "bob").await;

    for left in [2, 1, 0] {
        let r = get_as(&c, "/api/items", &alice).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"subject\";q=3;w=60"));
        let rl = r.header("ratelimit").unwrap();
        assert!(rl.starts_with(&format!("\"subject\";r={left};t=")), "{rl}");
    }
    let before = upstream.requests().len();
    let limited = get_as(&c, "/api/items", &alice).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"], "too_many_requests");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(
        limited.header("ratelimit"),
        Some(&*format!("\"subject\";r=0;t={retry}"))
    );
    assert_eq!(
        upstream.requests().len(),
        before,
        "a limited request reaches nobody"
    );

    // Bob has his own allowance, on HTTP/1.1 too.
    let h1 = gw.client(Proto::H1);
    assert_eq!(get_as(&h1, "/api/items", &bob).await.status, 200);
    assert_eq!(get_as(&h1, "/api/items", &alice).await.status, 429);

    // By IP, counting only POST on the public route.
    for _ in 0..3 {
        assert_eq!(c.get("/open/x").await.status, 200);
    }
    let post = |c: TestClient| async move {
        c.send(c.req(Method::POST, "/open/x").body(body("x")).unwrap())
            .await
    };
    assert_eq!(post(c.clone()).await.status, 200);
    assert_eq!(post(c.clone()).await.status, 429);
    gw.shutdown().await;
}

// === active health checks ===

/// An upstream whose `/healthz` answers 200 or 503 as `up` says, and whose
/// other paths answer 200 with `x-upstream: flaky`.
async fn flaky_upstream(up: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let up = Arc::clone(&up);
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let healthy = up.load(Ordering::SeqCst);
                    async move {
                        let status = if req.uri().path() == "/healthz" && !healthy {
                            503
                        } else {
                            200
                        };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("x-upstream", "flaky")
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_failing_upstream_out_and_put_it_back() {
    logs();
    let steady = Upstream::start_named("steady").await;
    let up = Arc::new(AtomicBool::new(true));
    let flaky = flaky_upstream(Arc::clone(&up)).await;
    let alone = Arc::new(AtomicBool::new(true));
    let only = flaky_upstream(Arc::clone(&alone)).await;
    let check = "health_check = { path = \"/healthz\", interval = \"100ms\", timeout = \"100ms\", unhealthy_after = 2, healthy_after = 2 }";
    let gw = TestGateway::builder()
        .toml(&format!(
            "[[routes]]\nprefix = \"/pool/\"\nupstreams = [\"{}\", \"{flaky}\"]\npublic = true\n{check}\n\
             [[routes]]\nprefix = \"/single/\"\nupstream = \"{only}\"\npublic = true\n{check}\n",
            steady.url
        ))
        .start()
        .await;
    let c = gw.client(Proto::H1);
    let who = async |c: &TestClient| {
        let mut seen = Vec::new();
        for _ in 0..6 {
            let r = c.get("/pool/x").await;
            assert_eq!(r.status, 200);
            seen.push(r.header("x-upstream").unwrap_or("?").to_string());
        }
        seen
    };
    assert!(who(&c).await.iter().any(|u| u == "flaky"));

    up.store(false, Ordering::SeqCst);
    until("the flaky upstream to leave", async || {
        who(&c).await.iter().all(|u| u == "up" || u == "steady")
    })
    .await;
    // It stays out while it fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(who(&c).await.iter().all(|u| u != "flaky"));

    up.store(true, Ordering::SeqCst);
    until("the flaky upstream to return", async || {
        who(&c).await.iter().any(|u| u == "flaky")
    })
    .await;

    // Every upstream down: 503 at once, nothing forwarded.
    alone.store(false, Ordering::SeqCst);
    until("the single upstream to leave", async || {
        c.get("/single/x").await.status == 503
    })
    .await;
    let r = gw.client(Proto::H2).get("/single/x").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "service_unavailable");
    alone.store(true, Ordering::SeqCst);
    until("the single upstream to return", async || {
        c.get("/single/x").await.status == 200
    })
    .await;
    gw.shutdown().await;
}
