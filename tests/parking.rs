//! Idle HTTP/1.1 connections are parked (`server/park.rs`): after 500 ms
//! without a request, hyper's connection and its buffers are given back and
//! the socket waits alone; the client's next bytes start a new one. The
//! client must see one ordinary keep-alive connection throughout: requests
//! after a park, a request split across the park, pipelined requests, a
//! WebSocket after a park, the idle timeout and shutdown while parked, and
//! the deadline for a later request's head, before and after a park.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

/// Longer than passgate's park delay (500 ms), with room for a busy machine.
const PARKED: Duration = Duration::from_millis(900);

const GET: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Read one HTTP/1.1 response (head and `content-length` body) from `io`;
/// its head.
async fn read_response<T: AsyncRead + Unpin>(io: &mut T) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = timeout(Duration::from_secs(5), io.read(&mut byte))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    io.read_exact(&mut body).await.unwrap();
    head
}

async fn parked_count(gw: &TestGateway) -> f64 {
    let (_, text) = admin_text(gw.admin_addr, "/metrics").await;
    metric_value(&text, "passgate_connections_parked")
}

/// The parked-connections gauge once it reads `want`, or what it reads
/// after 5 s: a connection parks (or lets go of its place in the gauge
/// when it closes) on the server's own time, which a busy machine stretches.
async fn parked_settles_at(gw: &TestGateway, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = parked_count(gw).await;
        if now == want || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gateway(server: &str) -> (Upstream, TestGateway) {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server(server)
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    (upstream, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_serves_the_next_request() {
    init_logs();
    let (upstream, gw) = gateway("idle_timeout = \"30s\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    for round in 0..3 {
        tls.write_all(GET).await.unwrap();
        let head = read_response(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        tokio::time::sleep(PARKED).await;
        assert_eq!(
            parked_settles_at(&gw, 1.0).await,
            1.0,
            "round {round}: not parked"
        );
    }
    assert_eq!(upstream.requests().len(), 3);
    // The client's next bytes take it out of the park.
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    assert_eq!(parked_count(&gw).await, 0.0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_split_across_the_park_is_whole() {
    let (upstream, gw) = gateway("idle_timeout = \"30s\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    tokio::time::sleep(PARKED).await;
    assert_eq!(parked_settles_at(&gw, 1.0).await, 1.0);
    // Longer than the 64 bytes read while parked, sent in three pieces.
    let request = b"POST /public/count-body HTTP/1.1\r\nHost: localhost\r\nX-Long: \
        aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\
        Content-Length: 5\r\n\r\nhello";
    let (a, rest) = request.split_at(3);
    let (b, c) = rest.split_at(80);
    for piece in [a, b, c] {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(upstream.last().path, "/public/count-body");
    let seen = upstream.bodies();
    assert_eq!(seen.last().map(|b| (b.len, b.complete)), Some((5, true)));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_survive_a_park() {
    let (upstream, gw) = gateway("idle_timeout = \"30s\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    tokio::time::sleep(PARKED).await;
    // Two whole requests and the start of a third in one write; the third's
    // end after another park.
    let mut burst = [GET, GET].concat();
    burst.extend_from_slice(b"GET /public/third HTTP/1.1\r\nHo");
    tls.write_all(&burst).await.unwrap();
    read_response(&mut tls).await;
    read_response(&mut tls).await;
    tokio::time::sleep(PARKED).await;
    tls.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(upstream.requests().len(), 4);
    assert_eq!(upstream.last().path, "/public/third");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_closes_at_the_idle_timeout() {
    let (_upstream, gw) = gateway("idle_timeout = \"1500ms\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    // TLS close_notify, then EOF.
    timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("closed within the idle timeout")
        .unwrap();
    let waited = idle_from.elapsed();
    assert!(rest.is_empty());
    assert!(waited >= Duration::from_millis(1300), "{waited:?}");
    // The close reaches the client just before the server's task ends.
    assert_eq!(parked_settles_at(&gw, 0.0).await, 0.0);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_parked_connections_at_once() {
    let (_upstream, mut gw) = gateway("idle_timeout = \"60s\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    tokio::time::sleep(PARKED).await;
    assert_eq!(parked_settles_at(&gw, 1.0).await, 1.0);
    let started = Instant::now();
    let stopping = gw.begin_shutdown();
    let mut rest = Vec::new();
    timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("closed at shutdown")
        .unwrap();
    timeout(Duration::from_secs(5), stopping)
        .await
        .expect("drained")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opens_on_a_parked_connection() {
    use tokio_tungstenite::tungstenite::Message;

    let (_upstream, gw) = gateway("idle_timeout = \"30s\"").await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    read_response(&mut tls).await;
    tokio::time::sleep(PARKED).await;
    assert_eq!(parked_settles_at(&gw, 1.0).await, 1.0);
    let url = format!("wss://127.0.0.1:{}/public/ws", gw.addr.port());
    let (mut ws, resp) = timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    use futures_util::{SinkExt, StreamExt};
    ws.send(Message::text("after the park")).await.unwrap();
    let echoed = timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(
        matches!(&echoed, Some(Ok(Message::Text(t))) if t.as_str() == "after the park"),
        "{echoed:?}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_alpn_is_parked_too() {
    // No ALPN: passgate tells HTTP/1.1 from HTTP/2 by the first bytes, then
    // serves and parks the connection as any HTTP/1.1 one.
    let (upstream, gw) = gateway("idle_timeout = \"30s\"").await;
    let mut tls = gw.tls_connect(&[]).await;
    tls.write_all(GET).await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::time::sleep(PARKED).await;
    assert_eq!(parked_settles_at(&gw, 1.0).await, 1.0);
    // A request whose first bytes come one at a time, before and after a park.
    tls.write_all(b"G").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tls.write_all(&GET[1..]).await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(upstream.requests().len(), 2);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_without_alpn_is_closed_at_the_header_deadline() {
    let (_upstream, gw) = gateway("header_read_timeout = \"400ms\"").await;
    let mut tls = gw.tls_connect(&[]).await;
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .expect("closed at the header deadline");
    assert!(started.elapsed() >= Duration::from_millis(300));
    gw.shutdown().await;
}

/// Send `head` one byte every `every` until the gateway closes the
/// connection; how long after the first byte it closed, or `None` if the
/// whole head went out first.
async fn trickle_until_closed<T>(tls: &mut T, head: &[u8], every: Duration) -> Option<Duration>
where
    T: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut byte = [0u8; 1];
    for b in head {
        // A closed connection fails the write, or the read that follows.
        if tls.write_all(&[*b]).await.is_err() || tls.flush().await.is_err() {
            return Some(started.elapsed());
        }
        match timeout(every, tls.read(&mut byte)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => panic!("an answer to a head that is not finished"),
        }
    }
    None
}

/// A head that takes 40 × 150 ms = 6 s to trickle in.
const SLOW_HEAD: &[u8] = b"GET /public/slow HTTP/1.1\r\nHost: localhost\r\n";

/// A gateway with `[server]` settings `server`, and an HTTP/1.1 connection
/// to it that has had one answer.
async fn after_one_request(
    server: &str,
) -> (
    Upstream,
    TestGateway,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let (upstream, gw) = gateway(server).await;
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(GET).await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (upstream, gw, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_request_s_head_gets_header_read_timeout_before_parking() {
    // Shorter than the park delay: the wait after a response is cut off
    // while hyper's connection is still up.
    let (upstream, gw, mut tls) =
        after_one_request("header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"").await;
    let closed = trickle_until_closed(&mut tls, SLOW_HEAD, Duration::from_millis(150))
        .await
        .expect("closed before the head was in");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    assert_eq!(upstream.requests().len(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_after_a_park_gets_header_read_timeout() {
    // Parking restarts hyper's connection, and the head may span parks: the
    // deadline runs from the client's first bytes after the park, whatever
    // happens to hyper's connection meanwhile.
    let (upstream, gw, mut tls) =
        after_one_request("header_read_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    tokio::time::sleep(PARKED).await;
    assert_eq!(parked_settles_at(&gw, 1.0).await, 1.0);
    let closed = trickle_until_closed(&mut tls, SLOW_HEAD, Duration::from_millis(150))
        .await
        .expect("closed before the head was in");
    assert!(
        closed >= Duration::from_millis(800),
        "closed after {closed:?}"
    );
    assert!(closed < Duration::from_secs(4), "closed after {closed:?}");
    assert_eq!(upstream.requests().len(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_outlives_header_read_timeout() {
    // Waiting with nothing sent is idleness, bounded by idle_timeout once
    // parked, not by the head deadline.
    let (upstream, gw, mut tls) =
        after_one_request("header_read_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tls.write_all(GET).await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // And a head sent whole, quickly, after a park is served.
    tokio::time::sleep(PARKED).await;
    tls.write_all(GET).await.unwrap();
    let head = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(upstream.requests().len(), 3);
    gw.shutdown().await;
}
