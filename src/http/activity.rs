//! Per-connection activity: how many requests are in flight and since when the
//! connection has been idle. The idle timer in `conn.rs` reads it; each request
//! holds an [`InFlight`] guard until its response body is sent. Whether any
//! request has begun bounds a new connection's wait for its first one; since
//! when it has waited for its next request's head bounds that wait on
//! HTTP/1.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Activity of one client connection.
#[derive(Debug)]
pub struct ConnActivity {
    started: Instant,
    active: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// When the client spoke again after parking (`server/park.rs`).
    resumed_ms: AtomicU64,
    begun: AtomicBool,
}

impl ConnActivity {
    /// A new, idle connection.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            resumed_ms: AtomicU64::new(0),
            begun: AtomicBool::new(false),
        })
    }

    /// A request started; it counts until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.begun.store(true, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// When a connection on which no request has begun yet must close: the
    /// first request's headers get `header_read_timeout` from the handshake.
    /// `None` once a request has begun.
    pub fn first_request_deadline(&self, header_read_timeout: Duration) -> Option<Instant> {
        if self.begun.load(Ordering::Acquire) {
            return None;
        }
        Some(self.started + header_read_timeout)
    }

    /// When an HTTP/1.1 connection waiting for a request's head must close:
    /// `header_read_timeout` after it began to wait (its start, the end of
    /// the last request, or the client's first bytes after parking).
    /// `None` while a request is in flight.
    pub fn head_deadline(&self, header_read_timeout: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = (self.idle_since_ms.load(Ordering::Acquire))
            .max(self.resumed_ms.load(Ordering::Acquire));
        Some(self.started + Duration::from_millis(since) + header_read_timeout)
    }

    /// A parked connection's client spoke again: the wait for its next
    /// request's head starts now.
    pub fn resumed(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.resumed_ms.store(ms, Ordering::Release);
    }

    /// When the connection becomes idle-expired: `None` while requests are in flight.
    pub fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.started + since + idle_timeout)
    }
}

/// Held while a request is in flight on a connection.
#[derive(Debug)]
pub struct InFlight(Arc<ConnActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.started.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_moves_with_requests() {
        let a = ConnActivity::new();
        let t0 = Instant::now();
        assert_eq!(
            a.first_request_deadline(Duration::from_secs(1)),
            Some(t0 + Duration::from_secs(1))
        );
        assert_eq!(
            a.idle_deadline(Duration::from_secs(60)),
            Some(t0 + Duration::from_secs(60))
        );
        let guard = a.begin();
        assert_eq!(a.idle_deadline(Duration::from_secs(60)), None);
        assert_eq!(a.first_request_deadline(Duration::from_secs(1)), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        assert_eq!(
            a.idle_deadline(Duration::from_secs(60)),
            Some(t0 + Duration::from_secs(65))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_deadline_runs_from_the_last_wait_s_start() {
        let a = ConnActivity::new();
        let t0 = Instant::now();
        let hrt = Duration::from_secs(10);
        assert_eq!(a.head_deadline(hrt), Some(t0 + hrt));
        let guard = a.begin();
        assert_eq!(
            a.head_deadline(hrt),
            None,
            "no deadline while a request is in flight"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(guard);
        assert_eq!(a.head_deadline(hrt), Some(t0 + Duration::from_secs(13)));
        tokio::time::advance(Duration::from_secs(2)).await;
        a.resumed();
        assert_eq!(a.head_deadline(hrt), Some(t0 + Duration::from_secs(15)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let guard = a.begin();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(guard);
        assert_eq!(
            a.head_deadline(hrt),
            Some(t0 + Duration::from_secs(17)),
            "a request that ends after a resumption starts the next wait"
        );
    }
}
