//! The two body types on the proxy path. Neither ever collects a body: frames
//! stream through as they arrive.
//!
//! - [`RequestBody`]: a client's body on its way upstream, with the route's
//!   size limit enforced as bytes pass (a `Content-Length` over the limit is
//!   refused before this point) and each wait for the client bounded by
//!   `server.body_read_timeout` ([`super::read_timeout`]).
//! - [`ResponseBody`]: what goes back to the client: an upstream's body or a
//!   small body passgate wrote, carrying the connection's in-flight guard so
//!   the idle timer starts only when the response is fully sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::read_timeout::{Progress, TimedBody};
use crate::http::activity::InFlight;

/// At most this much of a refused request body is read and discarded.
const DRAIN_BYTES: u64 = 8 << 20;
/// For at most this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Read and discard the rest of a refused request body in a task of its own
/// (at most 8 MiB and 10 s), so hyper can finish the HTTP/1.1 exchange and the
/// client sees the error response instead of a connection reset.
pub fn drain_in_background(body: Incoming) {
    if body.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let mut body = body;
        let mut seen = 0u64;
        let drain = async {
            while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    });
}

/// A boxed error (bodies, the upstream clients).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body was larger than the route allows.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds the route's limit of {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// A client's request body on its way upstream (or an empty one).
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<TimedBody<Incoming>>,
    limit: u64,
    seen: u64,
    exceeded: Option<Arc<AtomicBool>>,
}

impl RequestBody {
    /// No body.
    pub fn empty() -> Self {
        Self {
            inner: None,
            limit: u64::MAX,
            seen: 0,
            exceeded: None,
        }
    }

    /// Stream `inner`; with a limit, fail once more than `limit` bytes pass and set `exceeded`;
    /// with a read timeout, fail when the client sends nothing for that long. `progress`
    /// follows the reading.
    pub fn streaming(
        inner: Incoming,
        limit: Option<(u64, Arc<AtomicBool>)>,
        read_timeout: Option<Duration>,
        progress: Arc<Progress>,
    ) -> Self {
        let inner = TimedBody::new(inner, read_timeout, progress);
        match limit {
            Some((limit, flag)) => Self {
                inner: Some(inner),
                limit,
                seen: 0,
                exceeded: Some(flag),
            },
            None => Self {
                inner: Some(inner),
                limit: u64::MAX,
                seen: 0,
                exceeded: None,
            },
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limit {
                        if let Some(flag) = &this.exceeded {
                            flag.store(true, Ordering::Release);
                        }
                        if let Some(rest) = this.inner.take() {
                            drain_in_background(rest.into_inner());
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A streamed body passgate does not name here (the upstream pool's, which
/// reads its connection as it is read).
pub type DynBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

enum Kind {
    Upstream(Incoming),
    Dyn(DynBody),
    Full(Option<Bytes>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Upstream(body) => f.debug_tuple("Upstream").field(body).finish(),
            Kind::Dyn(_) => f.write_str("Dyn"),
            Kind::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
        }
    }
}

/// A response body: streamed from an upstream, or a small one passgate wrote.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
    guard: Option<InFlight>,
}

impl ResponseBody {
    /// An upstream's body, streamed.
    pub fn upstream(body: Incoming) -> Self {
        Self {
            kind: Kind::Upstream(body),
            guard: None,
        }
    }

    /// An upstream's body of another type, streamed.
    pub fn streamed(body: impl Body<Data = Bytes, Error = BoxError> + Send + 'static) -> Self {
        Self {
            kind: Kind::Dyn(Box::pin(body)),
            guard: None,
        }
    }

    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            guard: None,
        }
    }

    /// No body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            guard: None,
        }
    }

    /// Keep `guard` alive until the body has been sent (or dropped).
    pub fn with_guard(mut self, guard: InFlight) -> Self {
        self.guard = Some(guard);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Kind::Dyn(body) => body.as_mut().poll_frame(cx),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
            this.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Dyn(body) => body.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(body) => body.size_hint(),
            Kind::Dyn(body) => body.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
