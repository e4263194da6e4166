//! The pool against a scripted upstream over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pool(max_idle: usize, idle_timeout: Duration) -> Http1Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Http1Pool::new(https, max_idle, idle_timeout)
}

/// An upstream answering every request on a connection with `reply`,
/// counting connections; `close_after` closes each after that many.
async fn upstream(reply: &'static str, close_after: usize) -> (UpstreamTarget, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                let mut answered = 0;
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if socket.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        answered += 1;
                        if answered == close_after {
                            return;
                        }
                    }
                }
            });
        }
    });
    let target = crate::config::validate_upstream_for_tests(&format!("http://127.0.0.1:{port}"));
    (target, accepted)
}

fn get(target: &UpstreamTarget) -> Request<RequestBody> {
    Request::builder()
        .uri("/x")
        .header("host", target.authority.as_str())
        .body(RequestBody::empty())
        .unwrap()
}

/// A GET of `target` through `pool`, without fields of passgate's own.
async fn send_get(
    pool: &Http1Pool,
    target: &UpstreamTarget,
) -> Result<Response<PooledBody>, SendError> {
    pool.send(target, get(target), &Written::default()).await
}

async fn read(resp: Response<PooledBody>) -> Bytes {
    http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes()
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Idle connections the pool holds, for every upstream.
fn idle_count(pool: &Http1Pool) -> usize {
    let idle = pool.shared.idle.lock().unwrap();
    idle.by_upstream.values().map(Vec::len).sum()
}

/// The connections an upstream answering `reply` (closing after
/// `close_after` answers, 0: never) accepts for `requests` requests one after
/// another, `pause` apart, each answered `ok`.
async fn connections_for(
    reply: &'static str,
    close_after: usize,
    requests: usize,
    pause: Duration,
) -> usize {
    let (target, accepted) = upstream(reply, close_after).await;
    let pool = pool(8, Duration::from_secs(30));
    for _ in 0..requests {
        let resp = send_get(&pool, &target).await.unwrap();
        assert_eq!(read(resp).await, "ok");
        tokio::time::sleep(pause).await;
    }
    accepted.load(Ordering::SeqCst)
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    assert_eq!(connections_for(OK, 0, 5, Duration::ZERO).await, 1);
}

#[tokio::test]
async fn an_empty_body_never_read_still_returns_its_connection() {
    let (target, accepted) = upstream("HTTP/1.1 204 No Content\r\n\r\n", 0).await;
    let pool = pool(8, Duration::from_secs(30));
    for _ in 0..3 {
        let resp = send_get(&pool, &target).await.unwrap();
        assert_eq!(resp.status(), 204);
        drop(resp);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_half_read_closes_its_connection() {
    let (target, accepted) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", 0).await;
    let pool = pool(8, Duration::from_secs(30));
    let resp = send_get(&pool, &target).await.unwrap();
    drop(resp);
    let resp = send_get(&pool, &target).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_used_again() {
    // The pause lets the upstream's close arrive.
    assert_eq!(
        connections_for(OK, 1, 3, Duration::from_millis(20)).await,
        3
    );
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let close = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
    assert_eq!(connections_for(close, 0, 3, Duration::ZERO).await, 3);
}

#[tokio::test]
async fn idle_connections_past_the_timeout_are_closed() {
    let (target, accepted) = upstream(OK, 0).await;
    let pool = pool(8, Duration::from_millis(100));
    let resp = send_get(&pool, &target).await.unwrap();
    assert_eq!(read(resp).await, "ok");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = idle_count(&pool);
    assert_eq!(kept, 0);
    let resp = send_get(&pool, &target).await.unwrap();
    assert_eq!(read(resp).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn at_most_max_idle_connections_are_kept() {
    let (target, accepted) = upstream(OK, 0).await;
    let pool = pool(2, Duration::from_secs(30));
    let responses: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| send_get(&pool, &target))).await;
    for resp in responses {
        assert_eq!(read(resp.unwrap()).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    let kept = idle_count(&pool);
    assert_eq!(kept, 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = crate::config::validate_upstream_for_tests(&format!("http://127.0.0.1:{port}"));
    let pool = pool(8, Duration::from_secs(30));
    match send_get(&pool, &target).await {
        Err(SendError::Connect(_)) => {}
        other => panic!("expected a connect error, got {other:?}"),
    }
}

fn head_request(target: &UpstreamTarget) -> Request<RequestBody> {
    let mut req = get(target);
    *req.method_mut() = Method::HEAD;
    req
}

/// Every frame of a body: its data joined, its trailers, or its error.
async fn frames(resp: Response<PooledBody>) -> Result<(Bytes, Option<http::HeaderMap>), BoxError> {
    let collected = http_body_util::BodyExt::collect(resp.into_body()).await?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

/// What two requests one after another get from an upstream answering
/// `reply` (`head`: as `HEAD` requests), and the connections they took.
async fn twice(
    reply: &'static str,
    head: bool,
) -> (Vec<Result<(Bytes, Option<http::HeaderMap>), String>>, usize) {
    let (target, accepted) = upstream(reply, 0).await;
    let pool = pool(8, Duration::from_secs(30));
    let mut out = Vec::new();
    for _ in 0..2 {
        let req = if head {
            head_request(&target)
        } else {
            get(&target)
        };
        let got = match pool.send(&target, req, &Written::default()).await {
            Ok(resp) => frames(resp).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:?}")),
        };
        out.push(got);
    }
    (out, accepted.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_chunked_body_with_trailers_is_read_and_its_connection_kept() {
    let reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nx-sum: 5\r\n\r\n";
    let (got, connections) = twice(reply, false).await;
    for got in got {
        let (data, trailers) = got.unwrap();
        assert_eq!(data, "abcde");
        assert_eq!(trailers.unwrap()["x-sum"], "5");
    }
    assert_eq!(connections, 1);
}

#[tokio::test]
async fn a_body_read_to_the_close_ends_there_and_takes_its_connection() {
    let (target, accepted) = upstream("HTTP/1.1 200 OK\r\n\r\nto the end", 1).await;
    let pool = pool(8, Duration::from_secs(30));
    for _ in 0..2 {
        let resp = send_get(&pool, &target).await.unwrap();
        assert_eq!(read(resp).await, "to the end");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_head_response_has_no_body_whatever_its_length_says() {
    let (got, connections) = twice("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).await;
    for got in got {
        assert_eq!(got.unwrap().0, "");
    }
    assert_eq!(connections, 1);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let (got, connections) = twice(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        false,
    )
    .await;
    for got in got {
        assert_eq!(got.unwrap().0, "ok");
    }
    assert_eq!(connections, 1);
}

#[tokio::test]
async fn both_framings_lose_the_length_and_the_connection() {
    let (target, accepted) = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        0,
    )
    .await;
    let pool = pool(8, Duration::from_secs(30));
    for _ in 0..2 {
        let resp = send_get(&pool, &target).await.unwrap();
        assert!(!resp.headers().contains_key("content-length"));
        assert_eq!(read(resp).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http_1_0_keeps_the_connection_only_when_asked() {
    let (_, plain) = twice("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
    assert_eq!(plain, 2);
    let (got, kept) = twice(
        "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
        false,
    )
    .await;
    assert_eq!(got[1].as_ref().unwrap().0, "ok");
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn bytes_after_a_response_cost_the_connection() {
    let (got, connections) = twice(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        false,
    )
    .await;
    for got in got {
        assert_eq!(got.unwrap().0, "ok");
    }
    assert_eq!(connections, 2);
}

#[tokio::test]
async fn broken_answers_are_errors() {
    for reply in [
        "HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "not http at all\r\n\r\n",
    ] {
        let (got, _) = twice(reply, false).await;
        let e = got[0].as_ref().unwrap_err();
        assert!(e.contains("Request("), "{reply:?}: {e}");
    }
    // Cut short: the head is fine, the body is an error.
    let (target, _) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", 1).await;
    let pool = pool(8, Duration::from_secs(30));
    let resp = send_get(&pool, &target).await.unwrap();
    let e = frames(resp).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("before the end of the response body"),
        "{e}"
    );
    let (target, _) = upstream(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        0,
    )
    .await;
    let resp = send_get(&pool, &target).await.unwrap();
    let e = frames(resp).await.unwrap_err();
    assert!(e.to_string().contains("chunked body is invalid"), "{e}");
}

#[tokio::test]
async fn an_upstream_closing_without_an_answer_is_an_error() {
    let (target, _) = upstream("", 1).await;
    let pool = pool(8, Duration::from_secs(30));
    match send_get(&pool, &target).await {
        Err(SendError::Request(WireError::Closed)) => {}
        other => panic!("expected the upstream's close, got {other:?}"),
    }
}
