//! passgate's own HTTP/1.1 upstream client and pool, used for every plain
//! forwarded request that goes over HTTP/1.1 (WebSocket tunnels, HTTP/2 and
//! ALPN upstreams keep hyper-util's pool, in `client.rs`).
//!
//! The request is written and the response read by passgate itself
//! (`codec.rs` for the bytes, `wire.rs` for the connection), inside the
//! task of the request that uses the connection: while it waits for the
//! response head, then through [`PooledBody`] while the client reads the
//! response body. Nothing is spawned per request and no wake-up crosses
//! tasks. hyper's client reaches its connection through a channel and a
//! oneshot and keeps its own dispatcher state; taking it out saved about a
//! sixth of the HTTP/1.1 hop's instructions and a quarter of the HTTP/2
//! hop's (docs/benchmarks.md).
//!
//! - **Checkout** takes the most recently used idle connection of the
//!   upstream (its key is the upstream URL), reads it once so a connection
//!   the upstream has closed is noticed and dropped, and connects when none
//!   is left.
//! - **Return** happens when the response body has been read to its end,
//!   the request has been sent in full and the response allows it
//!   (`Connection`, HTTP/1.0, its framing). Otherwise the connection closes:
//!   a body dropped early, a request body the upstream answered before it
//!   had it all, a response read to the connection's close.
//! - **Limits**: at most `upstream.pool_max_idle_per_host` idle connections
//!   per upstream and worker; an idle connection older than
//!   `upstream.pool_idle_timeout` is closed, at the next checkout or by a
//!   sweep that runs every half timeout while any are idle.
//! - **Retry**: a request whose head could not be written at all on a
//!   pooled connection (it closed under it) is sent again on another one.

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use http::{Method, Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tower_service::Service;

use crate::config::UpstreamTarget;
use crate::http::body::{BoxError, RequestBody};
use crate::http::written::Written;

mod body;
mod chunked;
pub mod codec;
mod idle;
#[cfg(test)]
mod tests;
mod wire;

pub use body::PooledBody;
use body::{Back, Left};
pub use codec::WireError;
use idle::{Idle, Idles, Shared};
use wire::{Conn, SendFailure};

/// Why a request could not be sent on the pool.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made (the connector's error, which carries a
    /// timed-out `io::Error` when `upstream.connect_timeout` passed).
    Connect(BoxError),
    /// The connection failed while sending the request or reading the head.
    Request(WireError),
    /// The client's request body failed while it was being sent.
    ClientBody(BoxError),
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
    /// response head. The body that comes with it reads the connection.
    ///
    /// The request is taken apart before the future is made, and the future
    /// is an async block rather than an async fn, so that it holds the
    /// request's head and body once (rust-lang/rust#62958): it sits in every
    /// proxied request's future (docs/benchmarks.md, the handler's size).
    pub fn send(
        &self,
        target: &UpstreamTarget,
        req: Request<RequestBody>,
        written: &Written,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + Send {
        let (mut parts, body) = req.into_parts();
        async move {
            let encode = codec::request_framing(&parts.method, &mut parts.headers, &body);
            let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let (mut conn, key) = loop {
                let (idle, key) = self.checkout(&target.url);
                let (mut conn, reused) = match idle {
                    Some(conn) => (conn, true),
                    // Boxed: connecting holds a TLS session inline, and is rare.
                    None => (Box::pin(self.connect(target)).await?, false),
                };
                conn.queue_head(|dst| {
                    codec::write_head(dst, &parts.method, path, &parts.headers, written)
                });
                // The head alone first: if not a byte of it could be written
                // on a pooled connection, the request can go on another.
                match std::future::poll_fn(|cx| conn.poll_write_queued(cx)).await {
                    Ok(()) => break (conn, key),
                    Err(_) if reused && conn.nothing_written() => continue,
                    Err(e) => return Err(SendError::Request(WireError::Io(e))),
                }
            };
            conn.send_body(body, encode);
            let head_request = parts.method == Method::HEAD;
            let mut failed = None;
            let head = std::future::poll_fn(|cx| {
                if failed.is_none() && !conn.sent() {
                    match conn.poll_send(cx) {
                        Poll::Ready(Err(SendFailure::ClientBody(e))) => {
                            return Poll::Ready(Err(SendError::ClientBody(e)));
                        }
                        // The upstream is owed bytes it will wait for.
                        Poll::Ready(Err(SendFailure::Wire(e @ WireError::RequestLength))) => {
                            return Poll::Ready(Err(SendError::Request(e)));
                        }
                        // The upstream may have answered before it stopped
                        // reading: its answer is still read.
                        Poll::Ready(Err(SendFailure::Wire(e))) => {
                            conn.abandon();
                            failed = Some(e);
                        }
                        Poll::Ready(Ok(())) | Poll::Pending => {}
                    }
                }
                conn.poll_head(cx, head_request)
                    .map_err(|e| SendError::Request(failed.take().unwrap_or(e)))
            })
            .await?;
            let shared = Arc::clone(&self.shared);
            let back = Back {
                conn,
                shared,
                key,
                keep_alive: head.keep_alive,
            };
            Ok(head.response.map(|()| PooledBody {
                back: Some(back),
                left: Left::of(head.length),
            }))
        }
    }

    /// An idle connection to `url`, if one is usable, and the pool's key
    /// for `url` (made once per upstream, then shared).
    fn checkout(&self, url: &str) -> (Option<Box<Conn>>, Arc<str>) {
        let mut idle = self.shared.idle.lock().unwrap_or_else(|p| p.into_inner());
        let key = match idle.by_upstream.get_key_value(url) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(url),
        };
        let Some(list) = idle.by_upstream.get_mut(url) else {
            return (None, key);
        };
        let oldest_kept = Instant::now().checked_sub(self.shared.idle_timeout);
        while let Some(Idle { mut conn, since }) = list.pop() {
            if oldest_kept.is_some_and(|t| since < t) {
                // Every older one is older still.
                list.clear();
                break;
            }
            if conn.idle_and_open() {
                return (Some(conn), key);
            }
        }
        (None, key)
    }

    async fn connect(&self, target: &UpstreamTarget) -> Result<Box<Conn>, SendError> {
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
        Ok(Box::new(Conn::new(TokioIo::new(io))))
    }
}
