//! The response body: read from its connection as the client takes it,
//! which also sends what is left of the request body, and the connection
//! carried back to the pool once the body has been read to its end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{self, Chunked, Step};
use super::codec::{Length, WireError};
use super::idle::Shared;
use super::wire::{Conn, SendFailure};
use crate::http::body::BoxError;

/// Where a connection goes when its response has been read.
pub(super) struct Back {
    pub(super) conn: Box<Conn>,
    pub(super) shared: Arc<Shared>,
    pub(super) key: Arc<str>,
    /// The response allows another request on the connection.
    pub(super) keep_alive: bool,
}

/// How much of the body is left to read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Left {
    Bytes(u64),
    Chunked(Chunked),
    ToClose,
    Done,
}

impl Left {
    pub(super) fn of(length: Length) -> Self {
        match length {
            Length::Known(0) => Left::Done,
            Length::Known(n) => Left::Bytes(n),
            Length::Chunked => Left::Chunked(Chunked::Size),
            Length::ToClose => Left::ToClose,
        }
    }
}

/// An upstream response body that reads its connection while it is read,
/// and hands the connection back to the pool once it has been read to its
/// end. Dropped before that, it closes the connection, as HTTP/1.1 leaves
/// no other way to cancel.
pub struct PooledBody {
    pub(super) back: Option<Back>,
    pub(super) left: Left,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(Back {
            conn,
            shared,
            key,
            keep_alive,
        }) = self.back.take()
            && keep_alive
        {
            shared.put_back(key, conn);
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.back = None;
        self.left = Left::Done;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(back) = this.back.as_mut() else {
                return Poll::Ready(None);
            };
            let conn = &mut back.conn;
            // The upstream answered before it had the whole request: keep
            // sending it, as the upstream may still be reading it.
            if !conn.sent() {
                match conn.poll_send(cx) {
                    Poll::Ready(Err(SendFailure::ClientBody(e))) => return this.fail(e),
                    Poll::Ready(Err(SendFailure::Wire(e @ WireError::RequestLength))) => {
                        return this.fail(e);
                    }
                    Poll::Ready(Err(SendFailure::Wire(_))) => conn.abandon(),
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                }
            }
            let step = match &mut this.left {
                Left::Done => Step::End,
                Left::Bytes(_) | Left::ToClose if conn.read.is_empty() => Step::More,
                Left::Bytes(n) => {
                    let take =
                        usize::try_from(*n).map_or(conn.read.len(), |n| n.min(conn.read.len()));
                    *n -= take as u64;
                    if *n == 0 {
                        this.left = Left::Done;
                    }
                    Step::Data(conn.read.split_to(take).freeze())
                }
                Left::Chunked(state) => match chunked::chunked_step(state, &mut conn.read) {
                    Ok(Step::Trailers(t)) => {
                        this.left = Left::Done;
                        Step::Trailers(t)
                    }
                    Ok(Step::End) => {
                        this.left = Left::Done;
                        Step::End
                    }
                    Ok(step) => step,
                    Err(e) => return this.fail(e),
                },
                Left::ToClose => Step::Data(conn.read.split().freeze()),
            };
            match step {
                Step::Data(data) => {
                    if matches!(this.left, Left::Done) {
                        this.give_back();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Trailers(t) => {
                    this.give_back();
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Step::End => {
                    this.give_back();
                    return Poll::Ready(None);
                }
                Step::More => {}
            }
            let Some(back) = this.back.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(back.conn.poll_fill(cx)) {
                Ok(0) if matches!(this.left, Left::ToClose) => {
                    // The end of the body, and of the connection.
                    this.back = None;
                    this.left = Left::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(WireError::BodyCut),
                Ok(_) => {}
                Err(e) => return this.fail(WireError::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.left, Left::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Left::Bytes(n) => SizeHint::with_exact(n),
            Left::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing in it (a 204, a HEAD, `Content-Length: 0`) is
        // never polled; it has been read to its end all the same.
        if matches!(self.left, Left::Done) {
            self.give_back();
        }
    }
}
