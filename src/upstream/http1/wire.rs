//! One upstream connection: its socket, what is waiting to be written, what
//! has been read, and the request body still on its way out.
//!
//! Everything happens in the polls of the request that holds the connection
//! (its send, then its response body): writing the head and the body, reading
//! the head, then the body. Nothing is spawned and no channel is crossed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::BytesMut;
use http_body::Body;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::codec::{self, Encode, Head, LAST_CHUNK, WireError};
use crate::http::body::{BoxError, RequestBody};

/// The socket, plain or TLS, with tokio's I/O traits.
pub(super) type Io = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// Read this much at a time at least.
const READ_SIZE: usize = 8192;

/// The write buffer's most capacity kept between writes.
const MAX_KEPT_WRITE: usize = 64 * 1024;

/// Why sending a request stopped.
#[derive(Debug)]
pub(super) enum SendFailure {
    /// The connection failed (or the body broke its `Content-Length`).
    Wire(WireError),
    /// The client's body failed (too large, too slow, cut off).
    ClientBody(BoxError),
}

/// A request body on its way out.
struct Outgoing {
    body: RequestBody,
    encode: Encode,
    /// For [`Encode::Length`]: the bytes the body still owes.
    left: u64,
}

pub(super) struct Conn {
    io: Io,
    /// Read from the upstream, not yet taken.
    pub(super) read: BytesMut,
    /// To write; `written` of it is written.
    write: Vec<u8>,
    written: usize,
    outgoing: Option<Outgoing>,
    /// All that was written has been flushed.
    flushed: bool,
    /// The connection can carry no other request (it failed, or a body was
    /// cut short on it).
    pub(super) broken: bool,
}

impl Conn {
    pub(super) fn new(io: Io) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            written: 0,
            outgoing: None,
            flushed: true,
            broken: false,
        }
    }

    /// Queue a request head (written by `head`) in place of anything queued.
    pub(super) fn queue_head(&mut self, head: impl FnOnce(&mut Vec<u8>)) {
        self.write.clear();
        self.written = 0;
        self.outgoing = None;
        self.flushed = false;
        head(&mut self.write);
    }

    /// Write what is queued (not flushed: [`Self::poll_send`] flushes).
    pub(super) fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.write.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.written = 0;
        if self.write.capacity() > MAX_KEPT_WRITE {
            // A large body piece went out: an idle connection keeps no more.
            self.write = Vec::new();
        } else {
            self.write.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Send `body` after the head, framed by `encode`.
    pub(super) fn send_body(&mut self, body: RequestBody, encode: Encode) {
        let left = match encode {
            Encode::Length(n) => n,
            Encode::Chunked => 0,
        };
        self.outgoing = (encode != Encode::Length(0)).then_some(Outgoing { body, encode, left });
    }

    /// The whole request has been written and flushed.
    pub(super) fn sent(&self) -> bool {
        self.flushed && self.outgoing.is_none() && self.written == self.write.len()
    }

    /// Nothing of the request has reached the socket yet.
    pub(super) fn nothing_written(&self) -> bool {
        self.written == 0
    }

    /// Write what is queued, pulling the body as the socket takes it;
    /// ready once all of the request is written and flushed.
    pub(super) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendFailure>> {
        let failed = |e: io::Error| SendFailure::Wire(WireError::Io(e));
        loop {
            ready!(self.poll_write_queued(cx)).map_err(failed)?;
            let Some(out) = self.outgoing.as_mut() else {
                break;
            };
            match Pin::new(&mut out.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        // Trailers: never sent (passgate removes `Trailer`).
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if let Encode::Length(_) = out.encode {
                        let Some(left) = out.left.checked_sub(data.len() as u64) else {
                            return Poll::Ready(Err(SendFailure::Wire(WireError::RequestLength)));
                        };
                        out.left = left;
                    }
                    codec::write_data(&mut self.write, out.encode, &data);
                    if matches!(out.encode, Encode::Length(_)) && out.left == 0 {
                        // All the length owed is queued: done, without waiting
                        // for the client's end of stream (which may come later).
                        self.outgoing = None;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(SendFailure::ClientBody(e))),
                Poll::Ready(None) => {
                    match out.encode {
                        Encode::Chunked => self.write.extend_from_slice(LAST_CHUNK),
                        Encode::Length(_) if out.left != 0 => {
                            return Poll::Ready(Err(SendFailure::Wire(WireError::RequestLength)));
                        }
                        Encode::Length(_) => {}
                    }
                    self.outgoing = None;
                }
                Poll::Pending => {
                    // Whatever TLS holds goes out while the body waits.
                    ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(failed)?;
                    return Poll::Pending;
                }
            }
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx)).map_err(failed)?;
        self.flushed = true;
        Poll::Ready(Ok(()))
    }

    /// Read until a whole final response head is buffered, and parse it.
    pub(super) fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head_request: bool,
    ) -> Poll<Result<Head, WireError>> {
        loop {
            if !self.read.is_empty()
                && let Some(head) = codec::parse_head(&mut self.read, head_request)?
            {
                return Poll::Ready(Ok(head));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(WireError::Closed));
            }
        }
    }

    /// Read more into [`Self::read`]; 0 at the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 4 {
            self.read.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    /// An idle connection is still open and has said nothing: reading it
    /// finds nothing to read. A close, an error or unasked-for bytes all
    /// mean it cannot be used.
    pub(super) fn idle_and_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.broken && self.read.is_empty() && self.poll_fill(&mut cx).is_pending()
    }

    /// Ready for another request once this response is read: the request
    /// fully sent, nothing unread, nothing broken.
    pub(super) fn reusable(&self) -> bool {
        !self.broken && self.sent() && self.read.is_empty()
    }

    /// Stop sending: the request failed or its connection is given up.
    pub(super) fn abandon(&mut self) {
        self.outgoing = None;
        self.broken = true;
    }
}
