//! The gateway core end to end: header hygiene, path normalisation and routing,
//! body limits, upstream failures, streaming, WebSocket pass-through, graceful
//! shutdown and the idle timeout — over HTTP/1.1 and HTTP/2 where both apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

/// A public route, with extra `key = value` lines.
fn route(prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\npublic = true\n{extra}\n"
    )
}

/// The gateway's own error body: status, `error` code and the request id.
fn assert_gateway_error(reply: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let json = reply.json();
    assert_eq!(json["error"], code, "{what}: {json}");
    assert_eq!(
        json["request_id"].as_str(),
        reply.header("x-request-id"),
        "{what}: {json}"
    );
}

// === header hygiene ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;

    // HTTP/2 clients cannot send connection-specific headers at all (hyper
    // drops them), so over HTTP/2 only the ones legal there are tried.
    let h1: &[(&str, &str)] = &[
        ("connection", "x-listed-a"),
        ("connection", "X-Listed-B, keep-alive"),
        ("x-listed-a", "1"),
        ("x-listed-b", "2"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic c2VjcmV0"),
        ("upgrade", "h2c"),
        ("proxy-connection", "keep-alive"),
        ("x-kept", "yes"),
    ];
    let h2: &[(&str, &str)] = &[
        ("te", "trailers"),
        ("proxy-authorization", "Basic c2VjcmV0"),
        ("x-kept", "yes"),
    ];
    let gone = [
        "connection",
        "x-listed-a",
        "x-listed-b",
        "keep-alive",
        "te",
        "proxy-authorization",
        "upgrade",
        "proxy-connection",
    ];
    for (proto, sent) in [(Proto::H1, h1), (Proto::H2, h2)] {
        let reply = gw.client(proto).get_with("/public/hop", sent).await;
        assert_eq!(reply.status, 200, "{proto:?}");
        let seen = upstream.last();
        assert_eq!(seen.path, "/public/hop", "{proto:?}");
        assert_eq!(seen.headers["x-kept"], "yes", "{proto:?}");
        for name in gone {
            assert!(
                seen.headers.get(name).is_none(),
                "{proto:?}: {name} reached the upstream: {:?}",
                seen.headers
            );
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_say_who_the_client_was() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let host = format!("127.0.0.1:{}", gw.addr.port());
    let ours = format!("for=127.0.0.1;proto=https;host=\"{host}\"");

    struct Case {
        name: &'static str,
        protos: &'static [Proto],
        sent: &'static [(&'static str, &'static str)],
        xff: &'static str,
        forwarded_before: &'static str,
    }
    let cases = [
        Case {
            name: "nothing sent",
            protos: &BOTH,
            sent: &[],
            xff: "127.0.0.1",
            forwarded_before: "",
        },
        Case {
            name: "client lists and lies",
            protos: &BOTH,
            sent: &[
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "evil.example"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
            xff: "203.0.113.9, 127.0.0.1",
            forwarded_before: "for=203.0.113.9, ",
        },
        Case {
            name: "two header lines each",
            protos: &BOTH,
            sent: &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "198.51.100.7"),
                ("forwarded", "for=203.0.113.9"),
                ("forwarded", "for=198.51.100.7"),
            ],
            xff: "203.0.113.9, 198.51.100.7, 127.0.0.1",
            forwarded_before: "for=203.0.113.9, for=198.51.100.7, ",
        },
    ];
    for case in &cases {
        for &proto in case.protos {
            let what = format!("{} over {proto:?}", case.name);
            let reply = gw.client(proto).get_with("/public/fwd", case.sent).await;
            assert_eq!(reply.status, 200, "{what}");
            let seen = upstream.last().headers;
            let all = |name: &str| -> Vec<&str> {
                seen.get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect()
            };
            assert_eq!(all("x-forwarded-for"), [case.xff], "{what}");
            assert_eq!(all("x-forwarded-proto"), ["https"], "{what}");
            assert_eq!(all("x-forwarded-host"), [host.as_str()], "{what}");
            assert_eq!(
                all("forwarded"),
                [format!("{}{ours}", case.forwarded_before)],
                "{what}"
            );
            // One trace: the client's valid one kept, else a new one.
            let traces = all("traceparent");
            assert_eq!(traces.len(), 1, "{what}");
            if let Some((_, sent)) = case.sent.iter().find(|(n, _)| *n == "traceparent") {
                assert_eq!(traces[0], *sent, "{what}");
            }
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_kept_generated_or_replaced() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let long = "a".repeat(201);
    // (what the client sends, whether it is kept)
    let cases: [(Option<&str>, bool); 5] = [
        (None, false),
        (Some("req-123_abc.DEF"), true),
        (Some("has space"), false),
        (Some(""), false),
        (Some(long.as_str()), false),
    ];
    for proto in BOTH {
        for (sent, kept) in cases {
            let what = format!("{sent:?} over {proto:?}");
            let headers: Vec<(&str, &str)> =
                sent.map(|v| ("x-request-id", v)).into_iter().collect();
            let reply = gw.client(proto).get_with("/public/id", &headers).await;
            assert_eq!(reply.status, 200, "{what}");
            let answered = reply.header("x-request-id").expect("no id on the response");
            let seen = upstream.last().headers;
            let upstream_ids: Vec<_> = seen.get_all("x-request-id").iter().collect();
            assert_eq!(upstream_ids.len(), 1, "{what}");
            assert_eq!(upstream_ids[0], answered, "{what}");
            if kept {
                assert_eq!(Some(answered), sent, "{what}");
            } else {
                assert_eq!(answered.len(), 32, "{what}: {answered}");
                assert!(
                    answered.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{what}: {answered}"
                );
            }
        }
        // Every request gets its own id.
        let a = gw.client(proto).get("/public/id").await;
        let b = gw.client(proto).get("/public/id").await;
        assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
        // The gateway's own answers carry one too.
        let nf = gw.client(proto).get("/nowhere").await;
        assert_eq!(nf.status, 404);
        assert_eq!(nf.header("x-request-id").map(str::len), Some(32));
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_never_reach_the_client() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    for proto in BOTH {
        let reply = gw.client(proto).get("/public/resp").await;
        assert_eq!(reply.status, 200, "{proto:?}");
        // The upstream did send them (and this header proves it answered).
        assert_eq!(reply.header("x-upstream"), Some("up"), "{proto:?}");
        for name in ["x-upstream-private", "keep-alive"] {
            assert!(
                reply.headers.get(name).is_none(),
                "{proto:?}: {name} reached the client: {:?}",
                reply.headers
            );
        }
        for v in reply.headers.get_all("connection") {
            assert!(
                !v.to_str().unwrap().contains("x-upstream-private"),
                "{proto:?}: {v:?}"
            );
        }
    }
    gw.shutdown().await;
}

// === paths and routes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_before_routing() {
    let public = Upstream::start_named("public").await;
    let admin = Upstream::start_named("admin").await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &public.url, ""))
        .toml(&route("/admin/", &admin.url, ""))
        .start()
        .await;
    // The same tricks against a gateway where /admin/ needs a token.
    let guarded_admin = Upstream::start_named("guarded").await;
    let guarded = TestGateway::builder()
        .toml(&route("/public/", &public.url, ""))
        .toml(&format!(
            "[[routes]]\nprefix = \"/admin/\"\nupstream = \"{}\"\naudience = \"https://api.example.com\"\n",
            guarded_admin.url
        ))
        .start()
        .await;

    let tricks = [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "//admin//x",
        "/%61dmin/x",
        "/public/./../admin/./x",
    ];
    for proto in BOTH {
        for path in tricks {
            let what = format!("{path} over {proto:?}");
            let reply = gw.client(proto).get(path).await;
            assert_eq!(reply.status, 200, "{what}");
            assert_eq!(reply.json()["upstream"], "admin", "{what}");
            assert_eq!(reply.json()["path"], "/admin/x", "{what}");

            let reply = guarded.client(proto).get(path).await;
            assert_eq!(reply.status, 401, "{what} (protected)");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{what}"
            );
        }
        // Encoded separators are refused, not guessed at.
        for path in ["/public/a%2Fb", "/a%2fb", "/public/a%5Cb"] {
            let reply = gw.client(proto).get(path).await;
            assert_gateway_error(&reply, 400, "invalid_request", path);
        }
        let reply = gw.client(proto).get("/nowhere/x").await;
        assert_gateway_error(&reply, 404, "not_found", "unmatched");
    }
    assert!(
        guarded_admin.requests().is_empty(),
        "a protected route forwarded a request without a token"
    );
    gw.shutdown().await;
    guarded.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_the_upstream_and_rewrite_the_path() {
    let a = Upstream::start_named("a").await;
    let b = Upstream::start_named("b").await;
    let gw = TestGateway::builder()
        .toml(&route("/api/", &a.url, ""))
        .toml(&route("/api/admin/", &b.url, ""))
        .toml(&route("/strip/", &a.url, "strip_prefix = true"))
        .toml(&route("/based/", &format!("{}/base", b.url), ""))
        .toml(&route(
            "/based-strip/",
            &format!("{}/base/", b.url),
            "strip_prefix = true",
        ))
        .start()
        .await;
    // (request path, upstream, path the upstream sees)
    let cases = [
        ("/api/items", "a", "/api/items"),
        ("/api", "a", "/api"),
        ("/api/admin/users", "b", "/api/admin/users"),
        ("/api/admin", "b", "/api/admin"),
        ("/api/administrator", "a", "/api/administrator"),
        ("/api/items?x=1&y=%20z", "a", "/api/items?x=1&y=%20z"),
        ("/api/admin/u?q", "b", "/api/admin/u?q"),
        ("/strip/items/1", "a", "/items/1"),
        ("/strip/", "a", "/"),
        ("/strip/x?keep=me", "a", "/x?keep=me"),
        ("/based/x", "b", "/base/based/x"),
        ("/based/x?q=1", "b", "/base/based/x?q=1"),
        ("/based-strip/x?q=1", "b", "/base/x?q=1"),
    ];
    for proto in BOTH {
        for (path, upstream, seen) in cases {
            let what = format!("{path} over {proto:?}");
            let reply = gw.client(proto).get(path).await;
            assert_eq!(reply.status, 200, "{what}");
            assert_eq!(reply.json()["upstream"], upstream, "{what}");
            assert_eq!(reply.json()["path"], seen, "{what}");
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_is_the_upstream_s_unless_asked_otherwise() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/default/", &upstream.url, ""))
        .toml(&route(
            "/upstream/",
            &upstream.url,
            "host_header = \"upstream\"",
        ))
        .toml(&route(
            "/client/",
            &upstream.url,
            "host_header = \"client\"",
        ))
        .start()
        .await;
    let client_host = format!("127.0.0.1:{}", gw.addr.port());
    let upstream_host = format!("127.0.0.1:{}", upstream.addr.port());
    let cases = [
        ("/default/x", &upstream_host),
        ("/upstream/x", &upstream_host),
        ("/client/x", &client_host),
    ];
    for proto in BOTH {
        for (path, want) in cases {
            let reply = gw.client(proto).get(path).await;
            assert_eq!(reply.status, 200, "{path} over {proto:?}");
            let seen = upstream.last().headers;
            let hosts: Vec<_> = seen.get_all("host").iter().collect();
            assert_eq!(hosts, [want.as_str()], "{path} over {proto:?}");
            // The client's host is always in X-Forwarded-Host.
            assert_eq!(seen["x-forwarded-host"], client_host.as_str());
        }
    }
    gw.shutdown().await;
}

// === body limits ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_is_enforced_declared_or_streamed() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/limited/", &upstream.url, "max_body = 1024"))
        .start()
        .await;

    for proto in BOTH {
        let client = gw.client(proto);
        let post = |b: ClientBody| {
            client
                .req(Method::POST, "/limited/count-body")
                .body(b)
                .unwrap()
        };

        // Under and at the limit: forwarded whole.
        let bodies_before = upstream.bodies().len();
        for (what, b, len) in [
            ("declared 1000", body(vec![b'a'; 1000]), 1000),
            ("declared 1024", body(vec![b'a'; 1024]), 1024),
            ("streamed 2x500", chunks(500, 2), 1000),
            ("streamed 4x256", chunks(256, 4), 1024),
        ] {
            let reply = client.send(post(b)).await;
            assert_eq!(reply.status, 200, "{what} over {proto:?}");
            assert_eq!(reply.json()["body_len"], len, "{what} over {proto:?}");
        }
        // Only whole bodies count here: the upstream records a broken body
        // when it notices the break, which may be after the previous
        // protocol's refused bodies have had their 413s.
        let whole: Vec<u64> = upstream.bodies()[bodies_before..]
            .iter()
            .filter(|b| b.complete)
            .map(|b| b.len)
            .collect();
        assert_eq!(whole, [1000, 1024, 1000, 1024], "{proto:?}");

        // Declared too large: refused before anything is forwarded.
        let before = upstream.requests().len();
        let reply = client.send(post(body(vec![b'a'; 2048]))).await;
        assert_gateway_error(&reply, 413, "payload_too_large", "declared");
        assert_eq!(upstream.requests().len(), before, "{proto:?}");

        // Streamed too large: refused, and the upstream never gets all of it.
        let bodies_before = upstream.bodies().len();
        let reply = client.send(post(chunks(512, 8))).await;
        assert_gateway_error(&reply, 413, "payload_too_large", "streamed");
        // Give the upstream a moment to notice the broken body.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for seen in &upstream.bodies()[bodies_before..] {
            assert!(!seen.complete, "{proto:?}: the upstream got a whole body");
            assert!(seen.len <= 1024, "{proto:?}: {seen:?}");
        }

        // The gateway still serves this client afterwards.
        let reply = client.send(post(body(vec![b'a'; 10]))).await;
        assert_eq!(reply.status, 200, "{proto:?}");

        // Large refused bodies: the client still gets the 413, not a reset
        // (the rest of the body is read and discarded in the background).
        for i in 0..6 {
            let reply = client.try_send(post(body(vec![b'a'; 2 << 20]))).await;
            let status = reply
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"));
            assert_eq!(status, Ok(413), "declared 2 MiB, try {i} over {proto:?}");
            let reply = client.try_send(post(chunks(64 * 1024, 32))).await;
            let status = reply
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"));
            assert_eq!(status, Ok(413), "streamed 2 MiB, try {i} over {proto:?}");
        }
        // Let the upstream finish reading the bodies cut off above (each
        // request it saw ends in a recorded body) before the next protocol
        // counts requests and bodies.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while upstream.requests().len() != upstream.bodies().len() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{proto:?}: bodies never ended"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    gw.shutdown().await;
}

// === upstream failures ===

/// A local port with nothing listening.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_a_502() {
    let port = dead_port().await;
    let gw = TestGateway::builder()
        .toml(&route("/dead/", &format!("http://127.0.0.1:{port}"), ""))
        .start()
        .await;
    for proto in BOTH {
        let reply = gw.client(proto).get("/dead/x").await;
        assert_gateway_error(&reply, 502, "bad_gateway", "refused");
        assert!(reply.header("x-request-id").is_some());
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_a_504() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml("[upstream]\nresponse_timeout = \"500ms\"")
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let (h1, h2) = tokio::join!(
        async {
            let started = Instant::now();
            (
                gw.client(Proto::H1).get("/public/slow").await,
                started.elapsed(),
            )
        },
        async {
            let started = Instant::now();
            (
                gw.client(Proto::H2).get("/public/slow").await,
                started.elapsed(),
            )
        },
    );
    for (reply, took) in [h1, h2] {
        assert_gateway_error(&reply, 504, "gateway_timeout", "slow");
        assert!(took < Duration::from_millis(2500), "took {took:?}");
    }
    // A quick answer on the same route is unaffected.
    assert_eq!(gw.client(Proto::H1).get("/public/fast").await.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_upstream_is_skipped() {
    let live = Upstream::start_named("live").await;
    let port = dead_port().await;
    let gw = TestGateway::builder()
        .toml(&format!(
            "[[routes]]\nprefix = \"/pool/\"\nupstreams = [\"http://127.0.0.1:{port}\", \"{}\"]\npublic = true\n",
            live.url
        ))
        .start()
        .await;
    for proto in BOTH {
        for i in 0..20 {
            let reply = gw.client(proto).get("/pool/x").await;
            assert_eq!(reply.status, 200, "request {i} over {proto:?}");
            assert_eq!(reply.header("x-upstream"), Some("live"), "request {i}");
        }
    }
    assert_eq!(live.requests().len(), 40);
    gw.shutdown().await;
}

// === streaming ===

const BIG: usize = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let mut tasks = Vec::new();
    for proto in BOTH {
        let client = gw.client(proto);
        tasks.push(tokio::spawn(async move {
            let req = client
                .req(Method::POST, "/public/count-body")
                .body(streamed(BIG))
                .unwrap();
            let reply = client.send(req).await;
            assert_eq!(reply.status, 200, "{proto:?}");
            assert_eq!(reply.json()["body_len"], BIG, "upload over {proto:?}");
        }));
        let client = gw.client(proto);
        tasks.push(tokio::spawn(async move {
            let reply = client.get(&format!("/public/stream-bytes/{BIG}")).await;
            assert_eq!(reply.status, 200, "{proto:?}");
            assert_eq!(reply.body.len(), BIG, "download over {proto:?}");
            assert!(reply.body.iter().all(|&b| b == b'x'));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(upstream.bodies().iter().all(|b| b.complete));
    gw.shutdown().await;
}

// === WebSocket ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_gateway() {
    use tokio_tungstenite::tungstenite::Message;

    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let tls = gw.tls_connect(&[b"http/1.1"]).await;
    let url = format!("wss://127.0.0.1:{}/public/ws", gw.addr.port());
    let (mut ws, resp) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(resp.headers().get("x-request-id").is_some());

    for text in ["hello", "second message", &"long ".repeat(20_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no echo")
            .expect("stream ended")
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();

    let seen = upstream.last();
    assert_eq!(seen.path, "/public/ws");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert!(seen.headers.get("x-forwarded-for").is_some());
    gw.shutdown().await;
}

// === shutdown and idle ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    for proto in BOTH {
        let upstream = Upstream::start().await;
        let mut gw = TestGateway::builder()
            .toml("[upstream]\nresponse_timeout = \"10s\"")
            .toml(&route("/public/", &upstream.url, ""))
            .start()
            .await;
        let addr = gw.addr;
        // An idle keep-alive connection must not hold up the drain.
        let idle = gw.client(proto);
        assert_eq!(idle.get("/public/warm").await.status, 200);
        let client = gw.client(proto);
        let in_flight = tokio::spawn(async move {
            let started = Instant::now();
            (client.get("/public/slow").await, started.elapsed())
        });
        // Wait until the upstream has the request.
        let deadline = Instant::now() + Duration::from_secs(3);
        while upstream.requests().len() < 2 {
            assert!(Instant::now() < deadline, "the request never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let serve = gw.begin_shutdown();
        // New connections are refused soon after.
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => panic!("{proto:?}: still accepting after shutdown: {other:?}"),
            }
        }
        assert!(
            !serve.is_finished(),
            "{proto:?}: did not wait for the request"
        );

        let (reply, took) = in_flight.await.unwrap();
        assert_eq!(reply.status, 200, "{proto:?}");
        assert_eq!(reply.json()["path"], "/public/slow");
        assert!(took >= Duration::from_secs(2), "{proto:?}: {took:?}");
        // Drained well before the 5 s shutdown_timeout.
        timeout(Duration::from_secs(2), serve)
            .await
            .expect("the serve task did not end after draining")
            .unwrap();
        drop(idle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("idle_timeout = \"1s\"")
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let at_least = Duration::from_millis(900);

    let h2_no_requests = async {
        let started = Instant::now();
        let tls = gw.tls_connect(&[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (_send, conn) = hyper::client::conn::http2::handshake::<_, _, ClientBody>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        timeout(Duration::from_secs(3), conn)
            .await
            .expect("the idle HTTP/2 connection was not closed")
            .unwrap();
        let took = started.elapsed();
        assert!(took >= at_least, "HTTP/2 closed too early: {took:?}");
    };

    let h1_no_requests = async {
        let started = Instant::now();
        let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
        let mut buf = [0u8; 64];
        let n = timeout(Duration::from_secs(3), tls.read(&mut buf))
            .await
            .expect("the idle HTTP/1.1 connection was not closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "{:?}", &buf[..n]);
        let took = started.elapsed();
        assert!(took >= at_least, "HTTP/1.1 closed too early: {took:?}");
    };

    let h1_after_a_request = async {
        let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
        tls.write_all(b"GET /public/once HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        timeout(Duration::from_secs(4), tls.read_to_end(&mut got))
            .await
            .expect("the HTTP/1.1 connection stayed open after going idle")
            .ok();
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            took >= at_least,
            "closed too early after a request: {took:?}"
        );
    };

    tokio::join!(h2_no_requests, h1_no_requests, h1_after_a_request);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_spares_a_busy_connection() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("idle_timeout = \"1s\"")
        .toml("[upstream]\nresponse_timeout = \"10s\"")
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    // /slow takes 3 s, three idle timeouts: the connection must stay up.
    let (c1, c2) = (gw.client(Proto::H1), gw.client(Proto::H2));
    let (h1, h2) = tokio::join!(c1.get("/public/slow"), c2.get("/public/slow"));
    assert_eq!(h1.status, 200);
    assert_eq!(h2.status, 200);
    gw.shutdown().await;
}

/// The protocol comes from ALPN when the client negotiated one (hyper's own
/// HTTP/1.1 or HTTP/2 connection), and from the first bytes when it did not
/// (prior-knowledge HTTP/2 and plain HTTP/1.1 both still work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alpn_choice_is_served() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let request = || {
        let body: ClientBody = Empty::new().map_err(|e| match e {}).boxed();
        http::Request::get(format!("https://localhost:{}/public/alpn", gw.addr.port()))
            .header("host", "localhost")
            .body(body)
            .unwrap()
    };
    for (alpn, h2) in [
        (&[&b"h2"[..]][..], true),
        (&[&b"http/1.1"[..]][..], false),
        (&[][..], true),
        (&[][..], false),
    ] {
        let tls = gw.tls_connect(alpn).await;
        let io = TokioIo::new(tls);
        let resp = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut req = request();
            req.headers_mut().remove("host");
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(request()).await.unwrap()
        };
        assert_eq!(resp.status(), StatusCode::OK, "alpn {alpn:?}, h2 {h2}");
        assert_eq!(
            resp.version(),
            if h2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["path"], "/public/alpn", "alpn {alpn:?}, h2 {h2}");
    }
}

// === the upstream connection pool ===

/// An HTTP/1.1 upstream answering each request head with `reply`, counting
/// the connections it accepts; with `close_each`, it closes every connection
/// after one answer, without saying so.
async fn counting_upstream(
    reply: &'static str,
    close_each: bool,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut buf, mut seen) = (vec![0u8; 8192], Vec::new());
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if socket.write_all(reply.as_bytes()).await.is_err() || close_each {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

/// A gateway with one worker (so one pool) and a public route `/pool/` to `url`.
async fn pool_gateway(url: &str) -> TestGateway {
    TestGateway::builder()
        .server("workers = 1")
        .toml(&route("/pool/", url, ""))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upstream_connection_serves_one_request_after_another() {
    use std::sync::atomic::Ordering;
    let chunked =
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let sized = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabcde";
    let empty = "HTTP/1.1 204 No Content\r\n\r\n";
    for (what, reply) in [("chunked", chunked), ("sized", sized), ("empty", empty)] {
        let (url, accepted) = counting_upstream(reply, false).await;
        let gw = pool_gateway(&url).await;
        for proto in BOTH {
            let client = gw.client(proto);
            for _ in 0..5 {
                let reply = client.get("/pool/x").await;
                if what == "empty" {
                    assert_eq!(reply.status, 204, "{what} {proto:?}");
                } else {
                    assert_eq!(reply.status, 200, "{what} {proto:?}");
                    assert_eq!(reply.body, "abcde", "{what} {proto:?}");
                }
            }
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "{what}: ten requests one after another need one upstream connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_fails_no_request() {
    use std::sync::atomic::Ordering;
    let (url, accepted) =
        counting_upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true).await;
    let gw = pool_gateway(&url).await;
    for proto in BOTH {
        let client = gw.client(proto);
        for i in 0..4 {
            let reply = client.get("/pool/x").await;
            assert_eq!(
                reply.status, 200,
                "request {i} over {proto:?}: {:?}",
                reply.body
            );
            assert_eq!(reply.body, "ok");
            // Let the upstream's close arrive before the next request.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_answered_before_its_upload_ended_is_reused_once_it_has() {
    use std::sync::atomic::Ordering;
    // The upstream answers each request as soon as its head arrives, and
    // reads the body (which has no blank line in it) only after.
    let (url, accepted) =
        counting_upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
    let gw = pool_gateway(&url).await;
    let client = gw.client(Proto::H1);
    // Four 16 KiB pieces, 100 ms apart: the answer comes back long before
    // the last of them.
    let pieces = futures_util::stream::unfold(0, |i| async move {
        if i == 4 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let piece = bytes::Bytes::from(vec![b'a'; 16 * 1024]);
        Some((Ok::<_, BoxError>(hyper::body::Frame::data(piece)), i + 1))
    });
    let upload = client
        .req(Method::POST, "/pool/upload")
        .header("content-length", (64 * 1024).to_string())
        .body(http_body_util::BodyExt::boxed(
            http_body_util::StreamBody::new(pieces),
        ))
        .unwrap();
    let reply = client.send(upload).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    // The pool drives the connection until the upload has gone (the client
    // is still sending it), then keeps it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply = client.get("/pool/after").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_upstream_answer_is_a_502_and_never_reaches_the_client() {
    for (what, reply) in [
        (
            "two lengths",
            "HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok",
        ),
        ("no status line", "ok\r\n\r\n"),
        (
            "chunked on HTTP/1.0",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ),
    ] {
        let (url, _) = counting_upstream(reply, false).await;
        let gw = pool_gateway(&url).await;
        for proto in BOTH {
            let reply = gw.client(proto).get("/pool/x").await;
            assert_gateway_error(&reply, 502, "bad_gateway", what);
        }
    }
}
