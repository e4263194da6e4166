//! Issue 10, the transport part: stalled request bodies (408), the first
//! request's header deadline, WebSocket tunnels (connection slots, idle
//! close), header size (431) and Host presence / conflicts (400).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// The issuer, one client and a public route to `upstream`.
fn gateway(upstream: &str) -> Builder {
    TestGateway::builder()
        .public_route("/public/", upstream)
        .toml(
            r#"
[issuer]
url = "https://localhost/"
signing_keys = "{dir}/signing"
algorithm = "ES256"

[store]
path = "{dir}/passgate.db"

[[apis]]
audience = "https://api.example.com"
scopes = ["read:items"]

[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password"]
"#,
        )
}

/// A body whose frames the test sends by hand; it ends when the sender is dropped.
fn hand_fed() -> (mpsc::Sender<Bytes>, ClientBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(frames)))
}

/// A body of `n` bytes, one byte every `every`.
fn trickle(n: usize, every: Duration) -> ClientBody {
    let (tx, body) = hand_fed();
    tokio::spawn(async move {
        for _ in 0..n {
            tokio::time::sleep(every).await;
            if tx.send(Bytes::from_static(b"a")).await.is_err() {
                return;
            }
        }
    });
    body
}

/// Write `request` on a new HTTP/1.1 connection and read until the gateway closes it.
async fn raw_h1(gw: &TestGateway, request: &[u8], within: Duration) -> String {
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    // The gateway may answer and close before it has read the whole request
    // (a 431 for an oversized head): the write then fails with a broken pipe
    // or a reset, and what matters is the answer already sent.
    let _ = tls.write_all(request).await;
    let mut got = Vec::new();
    timeout(within, tls.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection stayed open; got so far: {}",
                String::from_utf8_lossy(&got)
            )
        })
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// An HTTP/2 connection of its own (so a test can tell one stream from the connection).
async fn h2_conn(gw: &TestGateway) -> hyper::client::conn::http2::SendRequest<ClientBody> {
    let tls = gw.tls_connect(&[b"h2"]).await;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default(),
    }
}

fn json_of(text: &str) -> serde_json::Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

// === finding 1: stalled bodies ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_token_body_is_a_408_that_closes_the_http1_connection() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.url)
        .server("body_read_timeout = \"300ms\"")
        .start()
        .await;
    for path in ["/oauth/token", "/oauth/revoke"] {
        let started = Instant::now();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type="
        );
        let text = raw_h1(&gw, request.as_bytes(), Duration::from_secs(3)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert_eq!(json_of(&text)["error"], "request_timeout", "{path}");
        assert!(started.elapsed() >= Duration::from_millis(250), "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_token_body_on_http2_ends_only_its_stream() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.url)
        .server("body_read_timeout = \"300ms\"")
        .start()
        .await;
    let mut send = h2_conn(&gw).await;
    let (tx, body) = hand_fed();
    tx.send(Bytes::from_static(b"grant_type=")).await.unwrap();
    let req = Request::post(format!("https://localhost:{}/oauth/token", gw.addr.port()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "100")
        .body(body)
        .unwrap();
    let resp = timeout(Duration::from_secs(3), send.send_request(req))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let reply = read(resp).await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(reply.json()["error"], "request_timeout");
    // The connection lives on.
    let req = Request::get(format!("https://localhost:{}/public/after", gw.addr.port()))
        .body(empty())
        .unwrap();
    let reply = read(send.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    drop(tx);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_the_client_s_408_not_the_upstream_s_504() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.url)
        .server("body_read_timeout = \"400ms\"")
        // Shorter than the body timeout: the upload must not count against it.
        .toml("[upstream]\nresponse_timeout = \"200ms\"")
        .start()
        .await;
    for proto in BOTH {
        let client = gw.client(proto);
        let (tx, body) = hand_fed();
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        let req = client
            .req(Method::POST, "/public/count-body")
            .body(body)
            .unwrap();
        let reply = timeout(Duration::from_secs(3), client.send(req))
            .await
            .unwrap_or_else(|_| panic!("{proto:?}: no answer to a stalled upload"));
        assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT, "{proto:?}");
        assert_eq!(reply.json()["error"], "request_timeout", "{proto:?}");
        drop(tx);
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_read_whole() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.url)
        .server("body_read_timeout = \"300ms\"")
        .toml("[upstream]\nresponse_timeout = \"200ms\"")
        .start()
        .await;
    let every = Duration::from_millis(100);
    for proto in BOTH {
        let client = gw.client(proto);
        let req = client
            .req(Method::POST, "/public/count-body")
            .body(trickle(8, every))
            .unwrap();
        let reply = client.send(req).await;
        assert_eq!(reply.status, StatusCode::OK, "{proto:?}: {:?}", reply.body);
        assert_eq!(reply.json()["body_len"], 8, "{proto:?}");

        // grant_type=x, a byte at a time: parsed and refused on its merits.
        let (tx, body) = hand_fed();
        tokio::spawn(async move {
            for b in b"grant_type=x" {
                tokio::time::sleep(every).await;
                let _ = tx.send(Bytes::copy_from_slice(&[*b])).await;
            }
        });
        let req = client
            .req(Method::POST, "/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .unwrap();
        let reply = client.send(req).await;
        assert_ne!(reply.status, StatusCode::REQUEST_TIMEOUT, "{proto:?}");
        assert!(
            reply.status.is_client_error(),
            "{proto:?}: {}",
            reply.status
        );
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_must_begin_within_header_read_timeout() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("header_read_timeout = \"300ms\"")
        .server("idle_timeout = \"30s\"")
        .public_route("/public/", &upstream.url)
        .start()
        .await;

    let h1_silent = async {
        let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
        let mut buf = [0u8; 64];
        let n = timeout(Duration::from_secs(3), tls.read(&mut buf))
            .await
            .expect("a silent HTTP/1.1 connection was kept")
            .unwrap_or(0);
        assert_eq!(n, 0);
    };
    let h1_partial = async {
        let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
        tls.write_all(b"GET /public/x HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        let mut got = Vec::new();
        timeout(Duration::from_secs(3), tls.read_to_end(&mut got))
            .await
            .expect("a partial HTTP/1.1 header was waited on")
            .ok();
    };
    let h2_no_request = async {
        let tls = gw.tls_connect(&[b"h2"]).await;
        let (_send, conn) = hyper::client::conn::http2::handshake::<_, _, ClientBody>(
            TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .unwrap();
        let _ = timeout(Duration::from_secs(3), conn)
            .await
            .expect("an HTTP/2 connection without requests was kept");
    };
    tokio::join!(h1_silent, h1_partial, h2_no_request);

    // A prompt client is not affected, and later requests wait for idle_timeout.
    let client = gw.client(Proto::H1);
    assert_eq!(client.get("/public/a").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.get("/public/b").await.status, StatusCode::OK);
    gw.shutdown().await;
}

// === finding 1: tunnels ===

async fn open_ws(
    gw: &TestGateway,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = gw.tls_connect(&[b"http/1.1"]).await;
    let url = format!("wss://127.0.0.1:{}/public/ws", gw.addr.port());
    let (ws, resp) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_keeps_its_connection_slot() {
    use tokio_tungstenite::tungstenite::Message;

    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("max_connections = 1")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let mut ws = open_ws(&gw).await;
    ws.send(Message::text("hi")).await.unwrap();
    assert!(ws.next().await.is_some());

    let client = gw.client(Proto::H1);
    let blocked = timeout(Duration::from_millis(700), client.get("/public/x")).await;
    assert!(
        blocked.is_err(),
        "a second connection was served beside the tunnel"
    );

    ws.close(None).await.unwrap();
    drop(ws);
    let reply = timeout(Duration::from_secs(5), client.get("/public/x"))
        .await
        .expect("the slot was not given back when the tunnel closed");
    assert_eq!(reply.status, StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed() {
    use tokio_tungstenite::tungstenite::Message;

    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("tunnel_idle_timeout = \"600ms\"")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let mut ws = open_ws(&gw).await;
    // Traffic every 200 ms keeps it open past the timeout.
    for i in 0..6 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
        let echoed = timeout(Duration::from_secs(2), ws.next()).await.unwrap();
        assert!(
            matches!(echoed, Some(Ok(_))),
            "closed while busy: {echoed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    let end = timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("the idle tunnel stayed open");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    gw.shutdown().await;
}

// === finding 7: header size ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_a_431_on_both_protocols() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    // Just over the default 64 KiB: passgate's JSON answer.
    let big = "v".repeat(70 * 1024);
    for proto in BOTH {
        let reply = gw
            .client(proto)
            .get_with("/public/big", &[("x-big", big.as_str())])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{proto:?}"
        );
        assert_eq!(
            reply.json()["error"],
            "request_header_fields_too_large",
            "{proto:?}"
        );
    }
    // Far over it, unfinished: refused without waiting for the end.
    let mut huge = b"GET /public/huge HTTP/1.1\r\nHost: localhost\r\nx-huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'v', 500 * 1024));
    let text = raw_h1(&gw, &huge, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(
        upstream.requests().is_empty(),
        "an oversized request was forwarded"
    );
    // Under the limit still passes.
    let fine = "v".repeat(60 * 1024);
    let reply = gw
        .client(Proto::H1)
        .get_with("/public/fine", &[("x-fine", fine.as_str())])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_header_size_is_configurable() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("max_header_size = \"8KiB\"")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let big = "v".repeat(10 * 1024);
    for proto in BOTH {
        let reply = gw
            .client(proto)
            .get_with("/public/big", &[("x-big", big.as_str())])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{proto:?}"
        );
    }
    gw.shutdown().await;
}

// === finding 8: Host ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_host_must_be_present_and_single() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream.url).start().await;
    for request in [
        &b"GET /public/x HTTP/1.1\r\n\r\n"[..],
        b"GET /public/x HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b",
    ] {
        let text = raw_h1(&gw, request, Duration::from_secs(3)).await;
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert_eq!(json_of(&text)["error"], "invalid_request");
    }
    assert!(upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_wins_over_host() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let text = raw_h1(
        &gw,
        b"GET https://target.example/public/x HTTP/1.1\r\nHost: header.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        upstream.last().headers["x-forwarded-host"],
        "target.example"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_host_must_match_authority() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let mut send = h2_conn(&gw).await;
    let uri = format!("https://localhost:{}/public/x", gw.addr.port());
    let conflicting = Request::get(&uri)
        .header("host", "other.example")
        .body(empty())
        .unwrap();
    let reply = read(send.send_request(conflicting).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert!(upstream.requests().is_empty());

    let same = Request::get(&uri)
        .header("host", format!("LOCALHOST:{}", gw.addr.port()))
        .body(empty())
        .unwrap();
    let reply = read(send.send_request(same).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    gw.shutdown().await;
}
