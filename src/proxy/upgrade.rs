//! WebSocket (and other HTTP/1.1 upgrade) pass-through: once the upstream
//! answers 101, both upgraded connections are joined and bytes copied both
//! ways until either side closes, neither side has sent anything for
//! `server.tunnel_idle_timeout`, or the gateway shuts down.
//!
//! The tunnel keeps its client connection's slot under `max_connections`
//! until it closes: the HTTP connection ends at the upgrade, the socket does not.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http::connection::ConnContext;

/// Join the client's and the upstream's upgraded connections in a task of their own.
pub fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    context: Option<ConnContext>,
    request_id: String,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(request_id, error = %e, "upgrade failed");
                return;
            }
        };
        // Held until the tunnel closes.
        let (idle_timeout, mut shutdown, _slot) = match context {
            Some(c) => (c.tunnel_idle_timeout, Some(c.shutdown), Some(c.slot)),
            None => (Duration::MAX, None, None),
        };
        let last = Arc::new(LastTraffic::new());
        let mut client = Watched::new(TokioIo::new(client), Arc::clone(&last));
        let mut upstream = Watched::new(TokioIo::new(upstream), Arc::clone(&last));
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        let ended = tokio::select! {
            result = copy => result,
            () = last.idle(idle_timeout) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
            () = stopped(shutdown.as_mut()) => Err(io::Error::other("the gateway is shutting down")),
        };
        match ended {
            Ok((up, down)) => tracing::debug!(
                request_id,
                bytes_up = up,
                bytes_down = down,
                "upgraded connection closed"
            ),
            Err(e) => {
                tracing::debug!(request_id, error = %e, "upgraded connection ended")
            }
        }
    });
}

async fn stopped(shutdown: Option<&mut watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            let _ = rx.wait_for(|stop| *stop).await;
        }
        None => std::future::pending().await,
    }
}

// === impl LastTraffic ===

/// When bytes last moved through a tunnel, either way.
#[derive(Debug)]
struct LastTraffic {
    base: Instant,
    ms: AtomicU64,
}

impl LastTraffic {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ms.store(ms, Ordering::Release);
    }

    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        let since = Duration::from_millis(self.ms.load(Ordering::Acquire));
        self.base.checked_add(since)?.checked_add(timeout)
    }

    /// Returns once nothing has moved for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            match self.deadline(timeout) {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }
}

// === impl Watched ===

/// An I/O stream that records every successful read in a [`LastTraffic`].
struct Watched<T> {
    io: T,
    last: Arc<LastTraffic>,
}

impl<T> Watched<T> {
    fn new(io: T, last: Arc<LastTraffic>) -> Self {
        Self { io, last }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.last.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_quiet_in_both_directions() {
        let last = LastTraffic::new();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        tokio::time::advance(Duration::from_secs(3)).await;
        last.touch();
        last.idle(timeout).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(8));
    }
}
