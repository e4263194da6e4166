//! What watches one client connection while hyper serves it
//! (`conn.rs`): the gateway's shutdown, the first request's deadline (every
//! request head's on HTTP/1.1), the idle timeout, and parking an idle
//! HTTP/1.1 connection (`park.rs`): when to park, and the wait on a parked
//! socket. For a client that negotiated no protocol by ALPN it also reads
//! the first bytes that tell HTTP/2 from HTTP/1.1.

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
    /// `park` (HTTP/1.1), the connection is closed to park once idle for
    /// [`PARK_AFTER`], the switch turned on first so the socket stays open,
    /// and closed when a request's head is not in within
    /// `header_read_timeout` of the connection starting to wait for it.
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
        let peer = self.peer;
        let mut closing = *self.shutdown.borrow();
        if closing {
            graceful(conn.as_mut());
        }
        let mut parking = false;
        let mut deadlines = Deadlines::new(self.shared, self.activity, park.is_some());
        // One timer for every deadline, moved rather than made anew: each
        // wake of the connection polls it, and each timer polled costs
        // (docs/benchmarks.md).
        let timer = tokio::time::sleep_until(Instant::now() + self.shared.idle_timeout);
        tokio::pin!(timer);
        loop {
            let next = deadlines.next(closing);
            if let Some(next) = next
                && (timer.deadline() != next || timer.is_elapsed())
            {
                timer.as_mut().reset(next);
            }
            tokio::select! {
                biased;
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
                () = timer.as_mut(), if next.is_some() => {
                    match deadlines.due(Instant::now(), closing) {
                        Due::Nothing => {}
                        Due::Head => {
                            tracing::debug!(%peer, "no request headers within header_read_timeout");
                            return Ended::Closed;
                        }
                        Due::Park => {
                            if let Some(switch) = park {
                                switch.store(true, Ordering::Release);
                            }
                            parking = true;
                            closing = true;
                            graceful(conn.as_mut());
                        }
                        Due::Idle => {
                            tracing::debug!(%peer, "closing idle connection");
                            closing = true;
                            graceful(conn.as_mut());
                        }
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
                    Ok(n) if n > 0 => {
                        self.activity.resumed();
                        Some(Bytes::copy_from_slice(&wake[..n]))
                    }
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

/// What [`Watch::run`] does when its timer fires.
enum Due {
    /// Nothing yet: the timer moves to the next deadline.
    Nothing,
    /// A request's head is late: close.
    Head,
    /// Idle for [`PARK_AFTER`]: park.
    Park,
    /// Idle for `idle_timeout`: close gracefully.
    Idle,
}

/// The deadlines [`Watch::run`] keeps with its one timer. Each `*_at` is when
/// to look next, not the deadline itself: the connection's activity says
/// where the deadline has moved since (a request came, or ended), so a
/// request costs the timer nothing.
struct Deadlines<'a> {
    activity: &'a ConnActivity,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// HTTP/2: until the first request begins. On HTTP/1.1 the head
    /// deadline covers the first request too (it runs from the start).
    first_request_by: Option<Instant>,
    /// HTTP/1.1: each request's head.
    head_at: Option<Instant>,
    /// HTTP/1.1: when to park.
    park_at: Option<Instant>,
    idle_at: Instant,
}

impl<'a> Deadlines<'a> {
    fn new(shared: &ConnShared, activity: &'a ConnActivity, http1: bool) -> Self {
        let now = Instant::now();
        let header_read_timeout = shared.header_read_timeout;
        Self {
            activity,
            header_read_timeout,
            idle_timeout: shared.idle_timeout,
            first_request_by: match http1 {
                true => None,
                false => activity.first_request_deadline(header_read_timeout),
            },
            // The deadline itself to begin with: a head may span parks, each
            // a new `run`.
            head_at: http1.then(|| {
                activity
                    .head_deadline(header_read_timeout)
                    .unwrap_or(now + header_read_timeout)
            }),
            park_at: http1.then_some(now + PARK_AFTER),
            idle_at: now + shared.idle_timeout,
        }
    }

    /// The earliest time to look; parking and the idle timeout do not count
    /// once the connection is closing.
    fn next(&self, closing: bool) -> Option<Instant> {
        let open = |at: Option<Instant>| at.filter(|_| !closing);
        [
            self.first_request_by,
            self.head_at,
            open(self.park_at),
            open(Some(self.idle_at)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Look at every deadline that has come by `now`, moving each on.
    fn due(&mut self, now: Instant, closing: bool) -> Due {
        let activity = self.activity;
        if self.first_request_by.is_some_and(|at| at <= now) {
            self.first_request_by = None;
            if activity
                .first_request_deadline(self.header_read_timeout)
                .is_some()
            {
                return Due::Head;
            }
        }
        if self.head_at.is_some_and(|at| at <= now) {
            match activity.head_deadline(self.header_read_timeout) {
                Some(deadline) if deadline <= now => return Due::Head,
                Some(deadline) => self.head_at = Some(deadline),
                None => self.head_at = Some(now + self.header_read_timeout),
            }
        }
        if closing {
            return Due::Nothing;
        }
        if self.park_at.is_some_and(|at| at <= now) {
            let begun = activity.first_request_deadline(Duration::ZERO).is_none();
            match activity.idle_deadline(PARK_AFTER) {
                Some(at) if at <= now && begun => {
                    self.park_at = None;
                    return Due::Park;
                }
                Some(at) if at > now => self.park_at = Some(at),
                _ => self.park_at = Some(now + PARK_AFTER),
            }
        }
        if self.idle_at <= now {
            match activity.idle_deadline(self.idle_timeout) {
                Some(deadline) if deadline <= now => return Due::Idle,
                Some(deadline) => self.idle_at = deadline,
                None => self.idle_at = now + self.idle_timeout,
            }
        }
        Due::Nothing
    }
}

/// HTTP/2's connection preface (RFC 9113, section 3.4), which a client that
/// negotiated nothing by ALPN sends first when it speaks HTTP/2.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest a parked connection's close waits for the client to take its
/// last bytes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
