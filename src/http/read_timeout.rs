//! A deadline on each wait for the next piece of a request body.
//!
//! [`TimedBody`] wraps a client's body: whenever it has to wait for the client,
//! a timer starts; a frame (or the end) stops it; if it fires first, the body
//! fails with [`BodyReadTimeout`]. A slow but steady client (a byte now and
//! then, each wait shorter than the timeout) is never cut off.
//!
//! [`Progress`] tells the proxy whose turn it is: while the body waits for the
//! client, a slow request is the client's fault (408), not the upstream's
//! (504), so the upstream's response deadline only runs while passgate is
//! not waiting on the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::BoxError;

/// The client sent no part of its body for the whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body stalled for longer than {0:?}")]
pub struct BodyReadTimeout(pub Duration);

/// Where a body being read stands, shared with whoever waits for its consumer.
#[derive(Debug)]
pub struct Progress {
    base: Instant,
    waiting_on_client: AtomicBool,
    last_moved_ms: AtomicU64,
    timed_out: AtomicBool,
}

impl Progress {
    /// A body that has not been read yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            waiting_on_client: AtomicBool::new(false),
            last_moved_ms: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
        })
    }

    /// Whether the body failed because the client stalled.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// When a wait of `timeout` for the body's consumer (the upstream) runs
    /// out, counted from the last piece that moved; `None` while the body is
    /// waiting for the client, whose own deadline applies then.
    pub fn consumer_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.waiting_on_client.load(Ordering::Acquire) {
            return None;
        }
        let since = Duration::from_millis(self.last_moved_ms.load(Ordering::Acquire));
        Some(self.base + since + timeout)
    }

    fn moved(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_moved_ms.store(ms, Ordering::Release);
        self.waiting_on_client.store(false, Ordering::Release);
    }
}

/// A body whose every wait for the client is bounded by a timeout.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    timeout: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    progress: Arc<Progress>,
}

impl<B> TimedBody<B> {
    /// Wrap `inner`; without a timeout only the progress is tracked.
    pub fn new(inner: B, timeout: Option<Duration>, progress: Arc<Progress>) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
            progress,
        }
    }

    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.progress.timed_out() {
            let timeout = this.timeout.unwrap_or_default();
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(timeout)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(polled) => {
                this.timer = None;
                this.progress.moved();
                Poll::Ready(polled.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                this.progress
                    .waiting_on_client
                    .store(true, Ordering::Release);
                let Some(timeout) = this.timeout else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.progress.timed_out.store(true, Ordering::Release);
                        Poll::Ready(Some(Err(Box::new(BodyReadTimeout(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    type Chan = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    type Feed = mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>;

    fn channel(timeout: Duration) -> (Feed, TimedBody<Chan>, Arc<Progress>) {
        let (tx, rx) = mpsc::channel(4);
        let progress = Progress::new();
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let body = StreamBody::new(frames).boxed();
        (
            tx,
            TimedBody::new(body, Some(timeout), Arc::clone(&progress)),
            progress,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_timeout() {
        let (tx, mut body, progress) = channel(Duration::from_millis(300));
        let t0 = Instant::now();
        let err = body.frame().await.and_then(Result::err);
        assert!(err.is_some_and(|e| e.is::<BodyReadTimeout>()));
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        assert!(progress.timed_out());
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_within_the_timeout_is_read_whole() {
        let (tx, body, progress) = channel(Duration::from_millis(300));
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
        });
        let bytes = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(bytes.ok().as_deref(), Some(&b"xxxxxxxxxx"[..]));
        assert!(!progress.timed_out());
    }

    #[tokio::test(start_paused = true)]
    async fn the_consumer_deadline_pauses_while_waiting_on_the_client() {
        let (tx, mut body, progress) = channel(Duration::from_secs(10));
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(progress.consumer_deadline(second), Some(t0 + second));
        let reader = tokio::spawn(async move {
            let _ = body.frame().await;
            body
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(progress.consumer_deadline(second), None);
        let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
        let _body = reader.await;
        let moved = t0 + Duration::from_secs(2);
        assert_eq!(progress.consumer_deadline(second), Some(moved + second));
    }
}
