//! Metrics names and labels after known traffic, `[metrics] enabled = false`,
//! the `/status` document, and the status page rendered by headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use passgate::clock::ManualClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use serde_json::Value;

async fn admin_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn status(addr: std::net::SocketAddr) -> Value {
    let (code, text) = admin_get(addr, "/status").await;
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn token(c: &TestClient, password: &str) -> Reply {
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", password),
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
    c.send(req).await
}

/// A gateway with passgate's issuer, user alice, and routes `/api/`
/// (protected), `/public/` and `/dead/` (nothing listens there).
async fn world(extra: &str) -> (TestGateway, Upstream) {
    let upstream = Upstream::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let gw = TestGateway::builder()
        .dir(dir.clone())
        .toml(&login_toml())
        .toml(extra)
        .toml(&format!(
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"{u}\"\nscopes = [\"read:items\"]\n\
             [[routes]]\nprefix = \"/public/\"\nupstream = \"{u}\"\npublic = true\n\
             [[routes]]\nprefix = \"/dead/\"\nupstream = \"http://127.0.0.1:1\"\npublic = true\n",
            u = upstream.url
        ))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&dir.path().join("passgate.db")).unwrap());
    Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        ManualClock::starting_now(),
    )
    .add(LOGIN_REALM, "alice", None, "correct horse battery")
    .await
    .unwrap();
    (gw, upstream)
}

/// Known traffic: 1 login, 1 wrong password, 2 proxied calls with the token,
/// 2 public GETs, 1 public POST answered 503, 1 call to a dead upstream, 1 404.
async fn known_traffic(gw: &TestGateway) {
    let c = gw.client(Proto::H1);
    let ok = token(&c, "correct horse battery").await;
    assert_eq!(ok.status, 200);
    assert_eq!(token(&c, "wrong").await.status, 403);
    let access = ok.json()["access_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let r = c
            .get_with(
                "/api/items",
                &[("authorization", &format!("Bearer {access}"))],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    for path in ["/public/x-7f3a9", "/public/y"] {
        assert_eq!(c.get(path).await.status, 200);
    }
    let post = c
        .req(Method::POST, "/public/status/503")
        .body(body("x"))
        .unwrap();
    assert_eq!(c.send(post).await.status, 503);
    assert_eq!(c.get("/dead/x").await.status, 502);
    assert_eq!(c.get("/nowhere").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_every_family_with_config_labels() {
    let (gw, _upstream) = world("").await;
    known_traffic(&gw).await;
    // One connection that is not TLS at all.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    }
    // The failed handshake closes the socket before it is counted: scrape
    // until the count is there (two seconds at most).
    let handshake = "passgate_tls_handshake_failures_total{reason=\"error\"} 1";
    let mut scrape = admin_get(gw.admin_addr, "/metrics").await;
    for _ in 0..40 {
        if scrape.1.contains(handshake) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        scrape = admin_get(gw.admin_addr, "/metrics").await;
    }
    let (code, text) = scrape;
    assert_eq!(code, 200);
    for want in [
        "passgate_http_requests_total{route=\"/public/\",method=\"read\",code=\"2xx\"} 2",
        "passgate_http_requests_total{route=\"/public/\",method=\"write\",code=\"5xx\"} 1",
        "passgate_http_requests_total{route=\"/api/\",method=\"read\",code=\"2xx\"} 2",
        "passgate_http_requests_total{route=\"/dead/\",method=\"read\",code=\"5xx\"} 1",
        "passgate_http_requests_total{route=\"auth\",method=\"write\",code=\"2xx\"} 1",
        "passgate_http_requests_total{route=\"-\",method=\"read\",code=\"4xx\"} 1",
        "passgate_http_request_duration_seconds_count{route=\"/public/\"} 3",
        "passgate_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/api/\"} 2",
        "passgate_upstream_duration_seconds_count{route=\"/public/\"} 3",
        "passgate_upstream_failures_total{route=\"/dead/\",kind=\"connect\"} 1",
        "passgate_token_requests_total{grant=\"password\",outcome=\"success\"} 1",
        "passgate_token_requests_total{grant=\"password\",outcome=\"invalid_grant\"} 1",
        "passgate_token_cache_events_total{event=\"hit\"} 1",
        "passgate_token_cache_events_total{event=\"miss\"} 1",
        "passgate_token_cache_events_total{event=\"eviction\"} 0",
        "passgate_password_checks_total{outcome=\"run\"} 2",
        "passgate_password_wait_seconds_count 2",
        "passgate_password_checks_in_flight 0",
        "passgate_attack_protection_total{kind=\"brute_force_block\"} 0",
        "passgate_access_log_dropped_total 0",
        "# TYPE passgate_connections_active gauge",
        handshake,
        "# EOF",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    // Every family printed is documented.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"),
    )
    .unwrap();
    for line in text.lines().filter(|l| l.starts_with("# TYPE passgate_")) {
        let name = line
            .split(' ')
            .nth(2)
            .unwrap()
            .trim_start_matches("passgate_");
        assert!(
            doc.contains(&format!("`{name}")),
            "{name} is not in docs/metrics.md"
        );
    }
    // Labels come from the config, never from the request.
    assert!(
        !text.contains("x-7f3a9") && !text.contains("nowhere"),
        "{text}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_routes_upstreams_tokens_sessions_and_keys() {
    let (gw, _upstream) = world("").await;
    known_traffic(&gw).await;
    let s = status(gw.admin_addr).await;
    let routes = s["routes"].as_array().unwrap();
    let public = routes.iter().find(|r| r["prefix"] == "/public/").unwrap();
    let w = &public["window"];
    assert_eq!(w["requests"], 3, "{s:#}");
    assert!(w["rate_per_second"].as_f64().unwrap() > 0.0);
    assert!((w["error_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!(w["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(w["p99_ms"].as_f64().unwrap() >= w["p50_ms"].as_f64().unwrap());
    assert_eq!(public["public"], true);
    assert_eq!(public["upstreams"][0]["health_checked"], false);
    assert_eq!(public["upstreams"][0]["healthy"], true);
    let outcomes = s["token_endpoint"]["outcomes"].as_array().unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o["grant"] == "password" && o["outcome"] == "success" && o["count"] == 1)
    );
    assert_eq!(s["sessions"]["active"], 1);
    assert_eq!(s["attack_protection"]["blocked_pairs"], 0);
    assert_eq!(s["attack_protection"]["throttled_ips"], 0);
    let keys = s["signing_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    assert!(keys[0]["age_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(s["config"]["generation"], 1);
    assert_eq!(s["config"]["last_reload"], "never reloaded");
    assert_eq!(s["metrics_enabled"], true);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_serves_no_metrics_and_a_status_without_figures() {
    let (gw, _upstream) = world("[metrics]\nenabled = false\n").await;
    known_traffic(&gw).await;
    assert_eq!(admin_get(gw.admin_addr, "/metrics").await.0, 404);
    let s = status(gw.admin_addr).await;
    assert_eq!(s["metrics_enabled"], false);
    assert!(s["routes"][0]["window"].is_null(), "{s:#}");
    assert_eq!(s["token_endpoint"]["outcomes"], serde_json::json!([]));
    assert_eq!(s["sessions"]["active"], 1);
    gw.shutdown().await;
}

/// The Chromium binary, or `None` (a failure under `CI=true`).
fn chromium() -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: chromium is not installed");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_routes_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let (gw, _upstream) = world("").await;
    known_traffic(&gw).await;
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://{}/", gw.admin_addr))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium did not finish within 90 s")
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page never rendered /status:\n{dom}\n{log}"
    );
    for prefix in ["/api/", "/public/", "/dead/"] {
        assert!(
            dom.contains(&format!("data-prefix=\"{prefix}\"")),
            "route {prefix} missing:\n{dom}"
        );
    }
    assert!(
        dom.contains("<svg class=\"spark\""),
        "no trend charts:\n{dom}"
    );
    assert!(
        dom.contains("<div id=\"error\"></div>"),
        "the page shows an error:\n{dom}"
    );
    for line in log.lines() {
        assert!(
            !(line.contains("Uncaught")
                || line.contains("SyntaxError")
                || line.contains("TypeError")),
            "script error: {line}"
        );
    }
    gw.shutdown().await;
}
