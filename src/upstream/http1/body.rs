//! The response body that carries its connection back to the pool.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::Conn;
use super::idle::Shared;

/// Where a connection goes when its response has been read.
pub(super) struct Back {
    pub(super) conn: Conn,
    pub(super) shared: Arc<Shared>,
    pub(super) key: Arc<str>,
}

/// An upstream response body that drives its connection while it is read,
/// and hands the connection back to the pool once it has been read to its end.
pub struct PooledBody {
    pub(super) body: Incoming,
    pub(super) back: Option<Back>,
    pub(super) ended: bool,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(Back { conn, shared, key }) = self.back.take() {
            shared.put_back(key, conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // Twice at most: reading the body may be what lets the connection
        // read more, which saves a wake-up of this task.
        for _ in 0..2 {
            if let Some(back) = &mut this.back {
                back.conn.drive(cx);
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => continue,
                Poll::Ready(None) => {
                    this.ended = true;
                    this.give_back();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.back = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if this.body.is_end_stream() {
                        this.ended = true;
                        this.give_back();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A body with nothing in it (a 204, a HEAD, `Content-Length: 0`) is
        // never polled; it has been read to its end all the same.
        if self.back.is_some() && self.body.is_end_stream() {
            self.give_back();
        }
    }
}
