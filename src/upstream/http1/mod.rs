//! passgate's own HTTP/1.1 upstream pool, used for every plain forwarded
//! request that goes over HTTP/1.1 (WebSocket tunnels, HTTP/2 and ALPN
//! upstreams keep hyper-util's pool, in `client.rs`).
//!
//! Each connection is driven by the request that uses it, inside that
//! request's task: while waiting for the response head, then through
//! [`PooledBody`] while the client reads the response body. Nothing is
//! spawned per request and no wake-up crosses tasks, which is where
//! hyper-util's pool spent its time (a spawned task to hand the connection
//! back, a channel to the connection's own task, a hashed pool key).
//!
//! - **Checkout** takes the most recently used idle connection of the
//!   upstream (its key is the upstream URL), polls it once so a connection
//!   the upstream has closed is noticed and dropped, and connects when none
//!   is left.
//! - **Return** happens when the response body has been read to its end. A
//!   connection that is not ready for the next request at that moment (the
//!   upstream answered before it had the whole request body) is driven by a
//!   task of its own until it is, then returned. A body dropped early closes
//!   its connection, as HTTP/1.1 leaves no other way to cancel.
//! - **Limits**: at most `upstream.pool_max_idle_per_host` idle connections
//!   per upstream and worker; an idle connection older than
//!   `upstream.pool_idle_timeout` is closed, at the next checkout or by a
//!   sweep that runs every half timeout while any are idle.
//! - **Retry**: a request hyper gives back unsent (the pooled connection
//!   closed under it) is sent again on another connection.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

use crate::config::UpstreamTarget;
use crate::http::body::{BoxError, RequestBody};

mod body;
mod idle;
#[cfg(test)]
mod tests;

use body::Back;
pub use body::PooledBody;
use idle::{Idle, Idles, Shared};

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Why a request could not be sent on the pool.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (the connector's error, which carries a
    /// timed-out `io::Error` when `upstream.connect_timeout` passed).
    Connect(BoxError),
    /// The connection failed while sending the request or reading the head.
    Request(hyper::Error),
}

/// One upstream connection: the handle requests are sent on and the
/// connection itself, which whoever uses it must keep polling.
struct Conn {
    send: SendRequest<RequestBody>,
    conn: Pin<Box<Connection<Io, RequestBody>>>,
    /// The connection future has finished (closed or failed).
    done: bool,
}

impl Conn {
    /// Let the connection do what it can (read, write, notice a close).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && self.conn.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Usable for a new request right now.
    fn is_ready(&self) -> bool {
        !self.done && self.send.is_ready()
    }
}

/// A worker's HTTP/1.1 connections, by upstream.
#[derive(Clone)]
pub struct Http1Pool {
    connector: HttpsConnector<HttpConnector>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("max_idle", &self.shared.max_idle)
            .field("idle_timeout", &self.shared.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Http1Pool {
    /// A pool connecting with `connector` (TCP, connect deadline, TLS).
    pub fn new(
        connector: HttpsConnector<HttpConnector>,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            connector,
            shared: Arc::new(Shared {
                idle: Mutex::new(Idles::default()),
                max_idle,
                idle_timeout,
            }),
        }
    }

    /// Send `req` (origin-form URI, `Host` set) to `target` and wait for the
    /// response head. The body that comes with it drives the connection.
    pub async fn send(
        &self,
        target: &UpstreamTarget,
        mut req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (idle, key) = self.checkout(&target.url);
            let (mut conn, reused) = match idle {
                Some(conn) => (conn, true),
                // Boxed: connecting holds a TLS session inline, and is rare.
                None => (Box::pin(self.connect(target)).await?, false),
            };
            let response = conn.send.try_send_request(req);
            let result = {
                let mut response = pin!(response);
                std::future::poll_fn(|cx| {
                    conn.drive(cx);
                    response.as_mut().poll(cx)
                })
                .await
            };
            match result {
                Ok(resp) => {
                    let shared = Arc::clone(&self.shared);
                    return Ok(resp.map(|body| PooledBody {
                        body,
                        back: Some(Back { conn, shared, key }),
                        ended: false,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: a pooled connection closed under it.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Request(e.into_error())),
                },
            }
        }
    }

    /// An idle connection to `url`, if one is usable, and the pool's key
    /// for `url` (made once per upstream, then shared).
    fn checkout(&self, url: &str) -> (Option<Conn>, Arc<str>) {
        let mut idle = self.shared.idle.lock().unwrap_or_else(|p| p.into_inner());
        let key = match idle.by_upstream.get_key_value(url) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(url),
        };
        let Some(list) = idle.by_upstream.get_mut(url) else {
            return (None, key);
        };
        let oldest_kept = Instant::now().checked_sub(self.shared.idle_timeout);
        let mut cx = Context::from_waker(Waker::noop());
        while let Some(Idle { mut conn, since }) = list.pop() {
            if oldest_kept.is_some_and(|t| since < t) {
                // Every older one is older still.
                list.clear();
                break;
            }
            // A closed connection finishes when polled; the waker is not
            // needed, as the request polls it again at once.
            conn.drive(&mut cx);
            if conn.is_ready() {
                return (Some(conn), key);
            }
        }
        (None, key)
    }

    async fn connect(&self, target: &UpstreamTarget) -> Result<Conn, SendError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(target.scheme.clone());
        parts.authority = Some(target.authority.clone());
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        let uri = Uri::from_parts(parts).map_err(|e| SendError::Connect(Box::new(e)))?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(SendError::Connect)?;
        let (send, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Request)?;
        Ok(Conn {
            send,
            conn: Box::pin(conn),
            done: false,
        })
    }
}
