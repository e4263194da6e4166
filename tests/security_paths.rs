//! Issue 10, the trust boundary: paths the router and an upstream would read
//! differently (`..;`, path parameters), gateway error bodies that name no
//! internals and carry the request id, log lines a client cannot forge, and a
//! protected route's body limit judged only after its token.
//!
//! Every test here starts with [`logs`], which installs one process-wide
//! subscriber writing passgate's text and JSON formats into buffers (the
//! gateway's worker threads log through the global subscriber only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use http::Method;
use passgate::config::LogFormat;
use serde_json::Value;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

const AUD: &str = "https://api.example.com";

// === log capture ===

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything logged by this test process: (text format, JSON format).
struct Logs {
    text: Buffer,
    json: Buffer,
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs {
            text: Buffer::default(),
            json: Buffer::default(),
        };
        let (text, json) = (logs.text.clone(), logs.json.clone());
        let filter = || tracing_subscriber::EnvFilter::new("info");
        let subscriber = tracing_subscriber::registry()
            .with(
                passgate::telemetry::layer(LogFormat::Text, move || text.clone(), false)
                    .with_filter(filter()),
            )
            .with(
                passgate::telemetry::layer(LogFormat::Json, move || json.clone(), false)
                    .with_filter(filter()),
            );
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

fn gateway() -> Builder {
    logs();
    TestGateway::builder()
}

// === config ===

fn public(prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\npublic = true\n{extra}\n"
    )
}

fn protected(prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\naudience = \"{AUD}\"\n{extra}\n"
    )
}

/// A gateway error as docs/architecture.md has it: exactly `error`,
/// `error_description` and `request_id`, the latter the response's `X-Request-Id`.
fn assert_gateway_error(reply: &Reply, status: u16, code: &str, what: &str) -> Value {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let json = reply.json();
    assert_eq!(json["error"], code, "{what}: {json}");
    assert!(json["error_description"].is_string(), "{what}: {json}");
    let id = reply.header("x-request-id").expect("an X-Request-Id");
    assert_eq!(json["request_id"], id, "{what}: {json}");
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["error", "error_description", "request_id"], "{what}");
    json
}

// === finding 3: dot segments with path parameters ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_with_parameters_are_refused() {
    let public_up = Upstream::start_named("public").await;
    let api_up = Upstream::start_named("api").await;
    let gw = gateway()
        .toml(&public("/public/", &public_up.url, ""))
        .toml(&protected("/api/", &api_up.url, ""))
        .start()
        .await;
    let tricks = [
        "/public/..;/api/items",
        "/public/%2e%2e;/api/items",
        "/public/%2E.;/api/items",
        "/public/..;jsessionid=x/api/items",
        "/public/x/..;/..;/api/items",
        "/public/..%3B/api/items",
        "/public/.;/items",
        "/public/%2e;x=1/items",
    ];
    for proto in BOTH {
        for path in tricks {
            let what = format!("{path} over {proto:?}");
            let reply = gw.client(proto).get(path).await;
            assert_gateway_error(&reply, 400, "invalid_request", &what);
        }
        // Parameters on ordinary segments are the upstream's business.
        for path in ["/public/items;v=1", "/public/a;b=..;c/x", "/public/..x;y/z"] {
            let reply = gw.client(proto).get(path).await;
            assert_eq!(reply.status, 200, "{path} over {proto:?}");
            assert_eq!(reply.json()["path"], path, "{path} over {proto:?}");
        }
        let reply = gw.client(proto).get("/api/items;v=1").await;
        assert_eq!(reply.status, 401, "a parameter on a protected path");
    }
    assert!(api_up.requests().is_empty(), "{:?}", api_up.requests());
    assert!(
        public_up.requests().iter().all(|r| !r.path.contains("api")),
        "{:?}",
        public_up.requests()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_cannot_move_a_path_to_another_route() {
    // A catch-all public route and a protected one on the same upstream:
    // Tomcat reads `/api;jsessionid=x/items` as `/api/items`.
    let up = Upstream::start().await;
    let gw = gateway()
        .toml(&public("/", &up.url, ""))
        .toml(&protected("/api/", &up.url, ""))
        .start()
        .await;
    for proto in BOTH {
        for path in ["/api;jsessionid=x/items", "/api;/items", "/%61pi;x/items"] {
            let reply = gw.client(proto).get(path).await;
            assert_gateway_error(&reply, 400, "invalid_request", path);
        }
        // Still routed as they read: a parameter elsewhere, or no route change.
        assert_eq!(gw.client(proto).get("/apix;v=1/items").await.status, 200);
        assert_eq!(gw.client(proto).get("/api/items;v=1").await.status, 401);
    }
    assert!(
        up.requests().iter().all(|r| r.path == "/apix;v=1/items"),
        "{:?}",
        up.requests()
    );
    gw.shutdown().await;
}

// === finding 11: a protected route checks the token before the body size ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_body_limit_is_not_revealed_before_the_token() {
    let up = Upstream::start().await;
    let gw = gateway()
        .toml(&protected("/api/", &up.url, "max_body = 16"))
        .toml(&public("/public/", &up.url, "max_body = 16"))
        .start()
        .await;
    for proto in BOTH {
        let client = gw.client(proto);
        let post = |path: &str| {
            client
                .req(Method::POST, path)
                .body(body(vec![b'a'; 1024]))
                .unwrap()
        };
        let reply = client.send(post("/api/items")).await;
        assert_eq!(reply.status, 401, "{proto:?}: {:?}", reply.body);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{proto:?}"
        );
        let reply = client.send(post("/public/items")).await;
        assert_eq!(reply.status, 413, "public route over {proto:?}");
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    gw.shutdown().await;
}

// === finding 10: generic error bodies with the request id ===

/// A local port with nothing listening.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_name_no_internals_and_carry_the_request_id() {
    let port = dead_port().await;
    let up = Upstream::start().await;
    let gw = gateway()
        .toml("[upstream]\nresponse_timeout = \"300ms\"")
        .toml(&public("/dead/", &format!("http://127.0.0.1:{port}"), ""))
        .toml(&public("/public/", &up.url, "max_body = 16"))
        .start()
        .await;
    let leaks = [
        "127.0.0.1".to_string(),
        port.to_string(),
        up.addr.port().to_string(),
        "os error".to_string(),
        "refused".to_string(),
        "http://".to_string(),
    ];
    for proto in BOTH {
        let client = gw.client(proto);
        let cases = [
            ("/dead/x", 502, "bad_gateway", None),
            ("/public/slow", 504, "gateway_timeout", None),
            ("/nowhere", 404, "not_found", None),
            ("/public/a%2Fb", 400, "invalid_request", None),
            ("/public/x", 413, "payload_too_large", Some(vec![b'a'; 64])),
        ];
        for (path, status, code, payload) in cases {
            let what = format!("{path} over {proto:?}");
            let req = match payload {
                Some(p) => client.req(Method::POST, path).body(body(p)),
                None => client.req(Method::GET, path).body(empty()),
            };
            let reply = client.send(req.unwrap()).await;
            let json = assert_gateway_error(&reply, status, code, &what);
            let description = json["error_description"].as_str().unwrap();
            for leak in &leaks {
                assert!(!description.contains(leak.as_str()), "{what}: {json}");
            }
        }
        // A request id the client chose is the one in the body.
        let reply = client
            .get_with("/dead/x", &[("x-request-id", "probe-42")])
            .await;
        let json = assert_gateway_error(&reply, 502, "bad_gateway", "chosen id");
        assert_eq!(json["request_id"], "probe-42");
    }
    // The detail went to the log, under the same request id.
    let log = logs().text.text();
    let line = log
        .lines()
        .find(|l| l.contains("probe-42") && l.contains("forwarding failed"))
        .unwrap_or_else(|| panic!("no log line for probe-42 in:\n{log}"));
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("refused"), "{line}");
    gw.shutdown().await;
}

// === finding 6: log lines a client cannot forge ===

fn auth_toml() -> String {
    format!(
        r#"{}
[attack_protection]
brute_force_threshold = 1
"#,
        login_toml()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_values_cannot_forge_log_lines() {
    let up = Upstream::start().await;
    let gw = gateway()
        .toml(&auth_toml())
        .toml(&public("/public/", &up.url, ""))
        .start()
        .await;
    let client = gw.client(Proto::H1);
    let login = serde_json::json!({
        "grant_type": "password",
        "client_id": "app",
        "client_secret": "app-secret",
        "username": "bob\nFAKE LINE forged\r\u{1b}[31mred\u{85}nel",
        "password": "wrong",
    });
    let reply = client
        .send(
            client
                .req(Method::POST, "/oauth/token")
                .header("content-type", "application/json")
                .body(body(login.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 403, "{:?}", reply.body);
    let reply = client
        .get_with("/public/a%0Ab%1B%7F", &[("x-request-id", "forge-path")])
        .await;
    assert_eq!(reply.status, 200);

    let text = logs().text.text();
    assert!(
        !text
            .lines()
            .any(|l| l.to_lowercase().starts_with("fake") || l.contains('\u{1b}')),
        "a forged line or escape sequence:\n{text}"
    );
    let block = text
        .lines()
        .find(|l| l.contains("brute_force_block") && l.contains("bob"))
        .unwrap_or_else(|| panic!("no block line in:\n{text}"));
    // Failures are counted under the identifier's lookup key (case-folded),
    // which is what the block line names.
    assert!(
        block.contains(r"name:bob\nfake line forged\r\u{1b}[31mred\u{85}nel"),
        "{block}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("forge-path") && l.contains("/public/a%0Ab%1B%7F")),
        "{text}"
    );

    // JSON: one object per line, the value intact inside it.
    let json = logs().json.text();
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "brute_force_block"
            && e["identifier"] == "name:bob\nfake line forged\r\u{1b}[31mred\u{85}nel"),
        "{json}"
    );
    gw.shutdown().await;
}
