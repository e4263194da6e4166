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
        let resp = pool.send(&target, get(&target)).await.unwrap();
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
        let resp = pool.send(&target, get(&target)).await.unwrap();
        assert_eq!(resp.status(), 204);
        drop(resp);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_half_read_closes_its_connection() {
    let (target, accepted) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", 0).await;
    let pool = pool(8, Duration::from_secs(30));
    let resp = pool.send(&target, get(&target)).await.unwrap();
    drop(resp);
    let resp = pool.send(&target, get(&target)).await.unwrap();
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
    let resp = pool.send(&target, get(&target)).await.unwrap();
    assert_eq!(read(resp).await, "ok");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = idle_count(&pool);
    assert_eq!(kept, 0);
    let resp = pool.send(&target, get(&target)).await.unwrap();
    assert_eq!(read(resp).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn at_most_max_idle_connections_are_kept() {
    let (target, accepted) = upstream(OK, 0).await;
    let pool = pool(2, Duration::from_secs(30));
    let responses: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| pool.send(&target, get(&target)))).await;
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
    match pool.send(&target, get(&target)).await {
        Err(SendError::Connect(_)) => {}
        other => panic!("expected a connect error, got {other:?}"),
    }
}
