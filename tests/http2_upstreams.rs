//! HTTP/2 towards upstreams and WebSockets over HTTP/2 (issue 14): `h2c://`
//! upstreams (prior knowledge), `https` upstreams negotiating h2 by ALPN,
//! `upstream_protocol`, response trailers, and RFC 8441 extended CONNECT from
//! an HTTP/2 client to an HTTP/1.1 WebSocket upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

/// An upstream that answers every request with the HTTP version it spoke,
/// the `te` header it got, and a trailer `x-upstream-trailer: done`.
struct VersionUpstream {
    port: u16,
}

impl VersionUpstream {
    /// In cleartext (HTTP/1.1 or HTTP/2 with prior knowledge), or over TLS
    /// with ALPN `h2`, `http/1.1` when `tls` is given.
    async fn start(tls: Option<TlsAcceptor>) -> VersionUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(answer);
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        Some(tls) => {
                            let Ok(stream) = tls.accept(tcp).await else {
                                return;
                            };
                            builder.serve_connection(TokioIo::new(stream), svc).await
                        }
                        None => builder.serve_connection(TokioIo::new(tcp), svc).await,
                    };
                });
            }
        });
        VersionUpstream { port }
    }
}

async fn answer(
    req: Request<Incoming>,
) -> Result<
    Response<
        StreamBody<
            futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>,
        >,
    >,
    Infallible,
> {
    let te = req
        .headers()
        .get("te")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let body = format!("{:?} te={te}", req.version());
    let mut trailers = HeaderMap::new();
    trailers.insert("x-upstream-trailer", "done".parse().unwrap());
    let frames = vec![
        Ok(Frame::data(Bytes::from(body))),
        Ok(Frame::trailers(trailers)),
    ];
    Ok(Response::new(StreamBody::new(futures_util::stream::iter(
        frames,
    ))))
}

/// A TLS acceptor for `localhost` / `127.0.0.1` (ALPN h2, http/1.1); its
/// certificate is written to `{dir}/upstream-ca.pem` for `[upstream] ca_file`.
fn upstream_tls(dir: &Path) -> TlsAcceptor {
    passgate::tls::install_crypto_providers();
    let (cert, key) = (dir.join("upstream-ca.pem"), dir.join("upstream-key.pem"));
    passgate::tls::ensure_dev_certificate(&cert, &key).unwrap();
    TlsAcceptor::from(passgate::tls::server_config(&cert, &key).unwrap())
}

fn route(prefix: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\npublic = true\n{extra}\n"
    )
}

/// Send `GET path` over HTTP/2 to the gateway; the status, body and trailers.
async fn get_h2(gw: &TestGateway, path: &str, te: bool) -> (StatusCode, String, Option<HeaderMap>) {
    let tls = gw.tls_connect(&[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .uri(format!("https://127.0.0.1:{}{path}", gw.addr.port()))
        .version(Version::HTTP_2);
    if te {
        req = req.header("te", "trailers");
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let body = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
    (status, body, trailers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_speaks_http2_and_trailers_come_back() {
    let up = VersionUpstream::start(None).await;
    let gw = TestGateway::builder()
        .toml(&route("/h2c/", &format!("h2c://127.0.0.1:{}", up.port), ""))
        .toml(&route(
            "/plain/",
            &format!("http://127.0.0.1:{}", up.port),
            "",
        ))
        .start()
        .await;
    let (status, body, trailers) = get_h2(&gw, "/h2c/x", true).await;
    assert_eq!(status, 200);
    assert_eq!(body, "HTTP/2.0 te=trailers");
    let trailers = trailers.expect("the upstream's trailers");
    assert_eq!(trailers["x-upstream-trailer"], "done");

    // `te` other than `trailers` never goes on; plain http stays HTTP/1.1.
    let (_, body, _) = get_h2(&gw, "/h2c/y", false).await;
    assert_eq!(body, "HTTP/2.0 te=-");
    let (status, body, _) = get_h2(&gw, "/plain/z", false).await;
    assert_eq!(status, 200);
    assert_eq!(body, "HTTP/1.1 te=-");
    // An HTTP/1.1 client reaches the h2c upstream as well.
    let reply = gw.client(Proto::H1).get("/h2c/w").await;
    assert_eq!(reply.status, 200);
    assert_eq!(std::str::from_utf8(&reply.body).unwrap(), "HTTP/2.0 te=-");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_negotiates_h2_by_alpn_unless_told_otherwise() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let up = VersionUpstream::start(Some(upstream_tls(dir.path()))).await;
    let url = format!("https://localhost:{}", up.port);
    let gw = TestGateway::builder()
        .dir(Arc::clone(&dir))
        .toml("[upstream]\nca_file = \"{dir}/upstream-ca.pem\"\n")
        .toml(&route("/auto/", &url, ""))
        .toml(&route("/one/", &url, "upstream_protocol = \"http1\""))
        .toml(&route("/two/", &url, "upstream_protocol = \"http2\""))
        .start()
        .await;
    for (path, expected) in [
        ("/auto/a", "HTTP/2.0"),
        ("/one/a", "HTTP/1.1"),
        ("/two/a", "HTTP/2.0"),
    ] {
        let (status, body, _) = get_h2(&gw, path, false).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, format!("{expected} te=-"), "{path}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_protocol_is_checked_at_start() {
    let text = |extra: &str| {
        TestGateway::builder()
            .toml(&route("/r/", "h2c://127.0.0.1:9", extra))
            .config_text("/tmp")
    };
    assert!(passgate::config::Config::from_toml(&text("")).is_ok());
    let err = passgate::config::Config::from_toml(&text("upstream_protocol = \"http3\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("routes[0].upstream_protocol"), "{err}");
    assert!(err.contains("\"http3\" is not one of"), "{err}");
    let err = passgate::config::Config::from_toml(&text("upstream_protocol = \"http1\""))
        .unwrap_err()
        .to_string();
    assert!(err.contains("speaks only HTTP/2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_h2_extended_connect_reaches_an_http1_upstream() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&route("/public/", &upstream.url, ""))
        .start()
        .await;
    let tls = gw.tls_connect(&[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    // One round trip first, so that the server's SETTINGS (with
    // ENABLE_CONNECT_PROTOCOL) have arrived.
    let warm = Request::get(format!("{base}/public/warm"))
        .version(Version::HTTP_2)
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(send.send_request(warm).await.unwrap().status(), 200);

    let mut req = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("{base}/public/ws"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .expect("no answer")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-request-id").is_some());
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    for text in ["hello over h2", &"long ".repeat(20_000)] {
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
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.path, "/public/ws");
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(seen.headers["sec-websocket-version"], "13");
    assert!(seen.headers.get("sec-websocket-key").is_some());

    // Another `:protocol` is refused, and the connection goes on.
    let mut other = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("{base}/public/udp"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    other
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("connect-udp"));
    let resp = send.send_request(other).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    gw.shutdown().await;
}
