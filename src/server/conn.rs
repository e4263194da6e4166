//! One client connection, from TCP socket to closed: TLS handshake under a
//! deadline, HTTP/1.1 or HTTP/2 (hyper-util's auto builder, upgrades allowed),
//! an idle timeout, and a graceful close when the gateway shuts down.

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

use super::activity::ConnActivity;
use crate::config::ServerConfig;
use crate::proxy::Proxy;
use crate::service::App;

/// What every connection of a listener shares.
pub struct ConnShared {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) builder: auto::Builder<TokioExecutor>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) app: Arc<App>,
    pub(crate) proxy: Proxy,
}

impl ConnShared {
    /// The HTTP settings from `[server]`.
    pub fn new(acceptor: TlsAcceptor, server: &ServerConfig, app: Arc<App>, proxy: Proxy) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(server.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_pending_accept_reset_streams(Some(64))
            .max_header_list_size(64 * 1024);
        Self {
            acceptor,
            builder,
            handshake_timeout: server.tls_handshake_timeout,
            idle_timeout: server.idle_timeout,
            app,
            proxy,
        }
    }
}

/// Serve one accepted TCP connection until it closes. The permit is the
/// connection's place under `max_connections`, released when this returns.
pub async fn serve(
    shared: Arc<ConnShared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let tls =
        match tokio::time::timeout(shared.handshake_timeout, shared.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };

    let activity = ConnActivity::new();
    let for_requests = Arc::clone(&shared);
    let conn_activity = Arc::clone(&activity);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let guard = conn_activity.begin();
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
