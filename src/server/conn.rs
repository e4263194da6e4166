//! One client connection, from TCP socket to closed: TLS handshake under a
//! deadline, HTTP/1.1 or HTTP/2 (hyper-util's auto builder, upgrades allowed),
//! a deadline for the first request's headers, an idle timeout, and a
//! graceful close when the gateway shuts down.
//!
//! hyper starts its HTTP/1.1 `header_read_timeout` only once hyper-util has
//! told HTTP/1.1 from HTTP/2 by the first bytes, and HTTP/2 has no such
//! timeout: a client that sends nothing (or only the HTTP/2 preface) would
//! wait out the idle timeout. So the first request must begin within
//! `header_read_timeout` of the handshake, on both protocols.
//!
//! Header size: passgate itself answers a JSON 431 past `max_header_size`
//! (`http::request_head`); hyper (HTTP/1.1 read buffer) and h2 (header list
//! size) stop reading at [`HEADER_BACKSTOP`] more, with a bare 431, so an
//! unfinished or huge header section costs a bounded amount of memory.
//!
//! Every request carries the connection's [`ConnContext`] (body read timeout,
//! tunnel settings, the connection's slot under `max_connections`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::http::activity::ConnActivity;
use crate::http::connection::{ConnContext, ConnSlot};
use crate::proxy::Proxy;
use crate::service::App;

/// What every connection of a listener shares.
pub struct ConnShared {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) builder: auto::Builder<TokioExecutor>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) tunnel_idle_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) app: Arc<App>,
    pub(crate) proxy: Proxy,
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout)
            .max_buf_size(backstop.max(MIN_H1_BUFFER))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(server.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_pending_accept_reset_streams(Some(64))
            // RFC 8441: WebSockets over HTTP/2 (`proxy/websocket_h2.rs`).
            .enable_connect_protocol()
            .max_header_list_size(u32::try_from(backstop).unwrap_or(u32::MAX));
        Self {
            acceptor,
            builder,
            handshake_timeout: server.tls_handshake_timeout,
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            body_read_timeout: server.body_read_timeout,
            tunnel_idle_timeout: server.tunnel_idle_timeout,
            max_header_size: server.max_header_size,
            app,
            proxy,
        }
    }
}

/// Serve one accepted TCP connection until it closes. The permit is the
/// connection's place under `max_connections`, released when this returns
/// and every tunnel opened on the connection has closed.
pub async fn serve(
    shared: Arc<ConnShared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let slot = ConnSlot::new(permit);
    let _open = shared.app.metrics.connection();
    let tls =
        match tokio::time::timeout(shared.handshake_timeout, shared.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
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
    };
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        let guard = conn_activity.begin();
        req.extensions_mut().insert(context.clone());
        let shared = Arc::clone(&for_requests);
        async move {
            let resp = shared.app.handle(req, peer, &shared.proxy).await;
            Ok::<_, Infallible>(resp.map(|body| body.with_guard(guard)))
        }
    });

    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(conn);

    let idle_timeout = shared.idle_timeout;
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    let mut check_at = Instant::now() + idle_timeout;
    let mut first_request_by = activity.first_request_deadline(shared.header_read_timeout);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = sleep_until_some(first_request_by) => {
                first_request_by = None;
                if activity.first_request_deadline(shared.header_read_timeout).is_some() {
                    tracing::debug!(%peer, "no request headers within header_read_timeout");
                    return;
                }
            }
            _ = tokio::time::sleep_until(check_at), if !closing => {
                match activity.idle_deadline(idle_timeout) {
                    Some(deadline) if deadline <= Instant::now() => {
                        tracing::debug!(%peer, "closing idle connection");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(deadline) => check_at = deadline,
                    None => check_at = Instant::now() + idle_timeout,
                }
            }
        }
    }
}

/// Sleep until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
