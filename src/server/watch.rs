//! What watches one client connection while hyper serves it
//! (`conn.rs`): the gateway's shutdown, the first request's deadline, the
//! idle timeout, and parking an idle HTTP/1.1 connection (`park.rs`): when
//! to park, and the wait on a parked socket. For a client that negotiated
//! no protocol by ALPN it also reads the first bytes that tell HTTP/2 from
//! HTTP/1.1.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::conn::ConnShared;
use super::park::{PARK_AFTER, ParkableIo, WAKE_READ};
use crate::http::activity::ConnActivity;

/// How hyper's connection ended under [`Watch::run`].
pub(super) enum Ended {
    /// Closed, by either side, or upgraded.
    Closed,
    /// Shut down to park, with the socket kept open.
    Parked,
}

/// What watches a connection while hyper serves it: shutdown, the first
/// request's deadline, the idle timeout, and parking.
pub(super) struct Watch<'a> {
    pub(super) shared: &'a ConnShared,
    pub(super) peer: SocketAddr,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) activity: &'a ConnActivity,
}

impl Watch<'_> {
    /// Drive `conn` until it ends; `graceful` starts its graceful close. With
    /// `park`, the connection is closed to park once idle for [`PARK_AFTER`],
    /// the switch turned on first so the socket stays open.
    pub(super) async fn run<C, E>(
        &mut self,
        mut conn: Pin<&mut C>,
        graceful: fn(Pin<&mut C>),
        park: Option<&AtomicBool>,
    ) -> Ended
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let (shared, peer, activity) = (self.shared, self.peer, self.activity);
        let idle_timeout = shared.idle_timeout;
        let mut closing = *self.shutdown.borrow();
        if closing {
            graceful(conn.as_mut());
        }
        let mut parking = false;
        let mut check_at = Instant::now() + idle_timeout;
        let mut park_at = park.map(|_| Instant::now() + PARK_AFTER);
        let mut first_request_by = activity.first_request_deadline(shared.header_read_timeout);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    return match result {
                        Ok(()) if parking => Ended::Parked,
                        Ok(()) => Ended::Closed,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                            Ended::Closed
                        }
                    };
                }
                changed = self.shutdown.changed(), if !closing => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        closing = true;
                        graceful(conn.as_mut());
                    }
                }
                _ = sleep_until_some(first_request_by) => {
                    first_request_by = None;
                    if activity.first_request_deadline(shared.header_read_timeout).is_some() {
                        tracing::debug!(%peer, "no request headers within header_read_timeout");
                        return Ended::Closed;
                    }
                }
                _ = sleep_until_some(park_at), if !closing => {
                    let now = Instant::now();
                    let begun = activity.first_request_deadline(Duration::ZERO).is_none();
                    match activity.idle_deadline(PARK_AFTER) {
                        Some(at) if at <= now && begun => {
                            if let Some(switch) = park {
                                switch.store(true, Ordering::Release);
                            }
                            parking = true;
                            closing = true;
                            park_at = None;
                            graceful(conn.as_mut());
                        }
                        Some(at) if at > now => park_at = Some(at),
                        _ => park_at = Some(now + PARK_AFTER),
                    }
                }
                _ = tokio::time::sleep_until(check_at), if !closing => {
                    match activity.idle_deadline(idle_timeout) {
                        Some(deadline) if deadline <= Instant::now() => {
                            tracing::debug!(%peer, "closing idle connection");
                            closing = true;
                            graceful(conn.as_mut());
                        }
                        Some(deadline) => check_at = deadline,
                        None => check_at = Instant::now() + idle_timeout,
                    }
                }
            }
        }
    }

    /// For a client that negotiated no protocol by ALPN: read until the first
    /// bytes are HTTP/2's connection preface or cannot be (one read, for
    /// HTTP/1.1). `(HTTP/2 or not, the bytes read)`; `None` when the client
    /// sent nothing within `header_read_timeout`, closed, or the gateway is
    /// shutting down.
    pub(super) async fn preface<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
    ) -> Option<(bool, Bytes)> {
        let mut seen = [0u8; PREFACE.len()];
        let mut n = 0;
        let reading = async {
            loop {
                match io.read(&mut seen[n..]).await {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => n += read,
                }
                if seen[..n] != PREFACE[..n] {
                    return Some(false);
                }
                if n == PREFACE.len() {
                    return Some(true);
                }
            }
        };
        let deadline = Instant::now() + self.shared.header_read_timeout;
        let h2 = tokio::select! {
            h2 = reading => h2?,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::debug!(peer = %self.peer, "no request headers within header_read_timeout");
                return None;
            }
            _ = self.shutdown.wait_for(|stop| *stop) => return None,
        };
        Some((h2, Bytes::copy_from_slice(&seen[..n])))
    }

    /// Wait on a parked connection for the client's next bytes, holding no
    /// buffer but [`WAKE_READ`] bytes in this future. `Some(bytes read)` to
    /// resume; `None` when the client has gone, or the connection is closed
    /// for being idle for `idle_timeout` or for the gateway's shutdown.
    pub(super) async fn parked<T>(&mut self, io: &mut ParkableIo<T>) -> Option<Bytes>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let idle_at = self
            .activity
            .idle_deadline(self.shared.idle_timeout)
            .unwrap_or_else(Instant::now);
        let mut wake = [0u8; WAKE_READ];
        let _parked = self.shared.app.metrics.parked();
        if !*self.shutdown.borrow() {
            tokio::select! {
                read = io.get_mut().read(&mut wake) => return match read {
                    Ok(n) if n > 0 => Some(Bytes::copy_from_slice(&wake[..n])),
                    _ => None,
                },
                _ = self.shutdown.changed() => {}
                _ = tokio::time::sleep_until(idle_at) => {
                    tracing::debug!(peer = %self.peer, "closing idle connection");
                }
            }
        }
        // Closed as hyper closes an idle connection: TLS close_notify, then FIN.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.get_mut().shutdown()).await;
        None
    }
}

/// HTTP/2's connection preface (RFC 9113, section 3.4), which a client that
/// negotiated nothing by ALPN sends first when it speaks HTTP/2.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest a parked connection's close waits for the client to take its
/// last bytes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Sleep until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
