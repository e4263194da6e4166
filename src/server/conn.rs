//! One client connection, from TCP socket to closed: TLS handshake under a
//! deadline, HTTP/1.1 or HTTP/2 as ALPN chose (by the first bytes when the
//! client negotiated nothing: HTTP/2's preface or not; upgrades allowed),
//! a deadline for the first request's headers (and on HTTP/1.1 for every
//! request's), an idle timeout, parking an idle HTTP/1.1 connection
//! (`park.rs`), and a graceful close when the gateway shuts down.
//!
//! HTTP/2 has no header read timeout of its own: a client that sends nothing
//! (or only the HTTP/2 preface) would wait out the idle timeout. So the first
//! request must begin within `header_read_timeout` of the handshake, on both
//! protocols. On HTTP/1.1, `watch.rs` also gives each later request's head
//! `header_read_timeout` from the moment the connection began to wait for it.
//!
//! Header size: passgate itself answers a JSON 431 past `max_header_size`
//! (`http::request_head`); hyper (HTTP/1.1 read buffer) and h2 (header list
//! size) stop reading at [`HEADER_BACKSTOP`] more, with a bare 431, so an
//! unfinished or huge header section costs a bounded amount of memory.
//!
//! Every request is handed the connection's [`ConnContext`] (body read timeout,
//! tunnel settings, the connection's slot under `max_connections`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::listener::Open;
use super::park::ParkableIo;
use super::watch::{Ended, Watch};
use crate::config::ServerConfig;
use crate::http::activity::ConnActivity;
use crate::http::body::ResponseBody;
use crate::http::connection::{ConnClient, ConnContext, ConnSlot};
use crate::proxy::Proxy;
use crate::service::App;

/// What every connection of a listener shares.
pub struct ConnShared {
    pub(crate) acceptor: TlsAcceptor,
    /// hyper's own builders rather than hyper-util's `auto`, whose 24-byte
    /// look-ahead, handed back to hyper, doubled hyper's HTTP/1.1 read
    /// buffer to 16 KiB on every connection (docs/benchmarks.md).
    pub(crate) h1: http1::Builder,
    pub(crate) h2: http2::Builder<TokioExecutor>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) tunnel_idle_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) app: Arc<App>,
    pub(crate) proxy: Arc<Proxy>,
}

/// How far past `max_header_size` hyper and h2 keep reading a header section
/// (so that passgate can answer a JSON 431) before they give up with a bare 431.
pub const HEADER_BACKSTOP: usize = 16 * 1024;

/// hyper's smallest allowed HTTP/1.1 read buffer.
const MIN_H1_BUFFER: usize = 8192;

impl ConnShared {
    /// The HTTP settings from `[server]`.
    pub fn new(acceptor: TlsAcceptor, server: &ServerConfig, app: Arc<App>, proxy: Proxy) -> Self {
        let backstop = server.max_header_size.saturating_add(HEADER_BACKSTOP);
        // One list of settings per protocol.
        macro_rules! h1_settings {
            ($b:expr) => {
                // No timer: `watch.rs` keeps each request head's deadline
                // with the connection's one timer; hyper's own boxed a new
                // timer per request (docs/benchmarks.md).
                $b.header_read_timeout(None)
                    .max_buf_size(backstop.max(MIN_H1_BUFFER))
                    .keep_alive(true)
            };
        }
        macro_rules! h2_settings {
            ($b:expr) => {
                $b.timer(TokioTimer::new())
                    .max_concurrent_streams(server.max_concurrent_streams)
                    .keep_alive_interval(Some(Duration::from_secs(20)))
                    .keep_alive_timeout(Duration::from_secs(20))
                    .max_pending_accept_reset_streams(Some(64))
                    // RFC 8441: WebSockets over HTTP/2 (`proxy/websocket_h2.rs`).
                    .enable_connect_protocol()
                    .max_header_list_size(u32::try_from(backstop).unwrap_or(u32::MAX))
            };
        }
        let mut h1 = http1::Builder::new();
        h1_settings!(h1);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2_settings!(h2);
        Self {
            acceptor,
            h1,
            h2,
            handshake_timeout: server.tls_handshake_timeout,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            body_read_timeout: server.body_read_timeout,
            tunnel_idle_timeout: server.tunnel_idle_timeout,
            max_header_size: server.max_header_size,
            app,
            proxy: Arc::new(proxy),
        }
    }
}

/// Serve one accepted TCP connection until it closes. The permit is the
/// connection's place under `max_connections`, released when this returns
/// and every tunnel opened on the connection has closed; `_open` counts the
/// connection among the open ones until this returns.
pub async fn serve(
    shared: Arc<ConnShared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    _open: Open,
) {
    let slot = ConnSlot::new(permit);
    let _gauge = shared.app.metrics.connection();
    let tls =
        match tokio::time::timeout(shared.handshake_timeout, shared.acceptor.accept(tcp)).await {
            // Boxed: each move of the stream (into hyper, back out when
            // parking) would otherwise cost the connection's task another
            // slot of its size (docs/benchmarks.md).
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                shared.app.metrics.tls_handshake_failed(false);
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                shared.app.metrics.tls_handshake_failed(true);
                return;
            }
        };

    let activity = ConnActivity::new();
    let for_requests = Arc::clone(&shared);
    let conn_activity = Arc::clone(&activity);
    let context = ConnContext {
        body_read_timeout: shared.body_read_timeout,
        tunnel_idle_timeout: shared.tunnel_idle_timeout,
        max_header_size: shared.max_header_size,
        slot,
        shutdown: shutdown.clone(),
        client: Arc::new(ConnClient::new(peer.ip())),
    };
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let guard = conn_activity.begin();
        let shared = &for_requests;
        // Boxed: hyper keeps a slot the size of the service's future for the
        // connection's whole life; a box there is a pointer on an idle
        // connection instead of the whole request path's state
        // (docs/benchmarks.md, memory per idle connection). The handler's own
        // future is what is boxed, with no async block around it: each level
        // of wrapping would copy (and hold) the whole state once more.
        let handling = Box::pin(shared.app.handle(
            req,
            peer,
            Arc::clone(&shared.proxy),
            context.clone(),
        ));
        handling.map(move |resp| Ok::<_, Infallible>(resp.map(|body| body.with_guard(guard))))
    });

    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let mut io = ParkableIo::new(tls);
    let mut watcher = Watch {
        shared: &shared,
        peer,
        shutdown,
        activity: &activity,
    };
    let h2 = match alpn.as_deref() {
        Some(b"h2") => true,
        Some(b"http/1.1") => false,
        // No protocol by ALPN: the first bytes tell, and are read again by
        // hyper (`ParkableIo::resume`).
        _ => match watcher.preface(&mut io).await {
            Some((h2, first)) => {
                io.resume(first);
                h2
            }
            None => return,
        },
    };
    match h2 {
        true => {
            // Boxed, like HTTP/1.1's: the task's own allocation is sized
            // by its largest state, which every connection pays for.
            let mut conn = Box::pin(shared.h2.serve_connection(TokioIo::new(io), service));
            watcher
                .run(conn.as_mut(), |c| c.graceful_shutdown(), None)
                .await;
        }
        false => serve_h1(&shared, io, service, watcher).await,
    }
}

/// Serve an HTTP/1.1 connection, parking it whenever it has been idle for
/// [`PARK_AFTER`] (`park.rs`): hyper's connection, with its buffers, is
/// closed and a new one started on the same socket when the client speaks again.
async fn serve_h1<S>(
    shared: &ConnShared,
    mut io: ParkableIo<Box<TlsStream<TcpStream>>>,
    mut service: S,
    mut watcher: Watch<'_>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = ResponseBody> + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    loop {
        let parking = io.switch();
        // Boxed, so that a parked connection gives back hyper's state too.
        let mut conn = Box::pin(
            shared
                .h1
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades(),
        );
        let ended = watcher
            .run(conn.as_mut(), |c| c.graceful_shutdown(), Some(&parking))
            .await;
        // `None` once upgraded: the tunnel has the socket.
        let parts = match ended {
            Ended::Parked => Pin::into_inner(conn).into_parts(),
            Ended::Closed => None,
        };
        let Some(parts) = parts else { return };
        io = parts.io.into_inner();
        service = parts.service;
        // hyper's read buffer, even empty, still holds its whole allocation:
        // it must not live on while parked.
        let unread = parts.read_buf;
        let first = match unread.is_empty() {
            // Bytes hyper had read and not parsed: the next request's start,
            // copied out of that allocation.
            false => Bytes::copy_from_slice(&unread),
            true => {
                drop(unread);
                match watcher.parked(&mut io).await {
                    Some(first) => first,
                    None => return,
                }
            }
        };
        io.resume(first);
    }
}
