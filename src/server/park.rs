//! Parking an idle HTTP/1.1 connection: giving back hyper's buffers while the
//! client says nothing.
//!
//! hyper's HTTP/1.1 connection holds an 8 KiB read buffer and an 8 KiB buffer
//! for response heads for as long as it lives, and offers no way to release
//! them while idle. So once a keep-alive connection has been idle for
//! [`PARK_AFTER`] (`watch.rs` decides), `conn.rs` closes hyper's side of it
//! gracefully (hyper has nothing in flight, so nothing is cut short) with
//! the socket kept open
//! ([`ParkableIo`]), takes the socket back, and waits for the client's next
//! bytes with nothing but the TLS session held. The first bytes that arrive
//! start a new hyper connection on the same socket, with those bytes
//! ([`ParkableIo::resume`]) read first. The client sees one keep-alive
//! connection throughout.
//!
//! hyper keeps any bytes it had read but not yet parsed (a pipelined request's
//! beginning) and hands them back with the socket; they are the next
//! connection's first bytes, so nothing is lost.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a keep-alive connection is idle before its HTTP buffers are given
/// back. Long enough that a connection carrying steady traffic never parks
/// (a request every few hundred milliseconds keeps it as it is), short enough
/// that a pool of mostly idle connections costs little memory.
pub const PARK_AFTER: Duration = Duration::from_millis(500);

/// The bytes read while waiting on a parked connection: enough for a short
/// request line; the rest is read by hyper.
pub const WAKE_READ: usize = 64;

/// A client connection's stream as hyper sees it: bytes to be read first, and
/// a switch that keeps the stream open when hyper shuts its side down to park.
#[derive(Debug)]
pub struct ParkableIo<T> {
    io: T,
    first: Bytes,
    parking: Arc<AtomicBool>,
}

impl<T> ParkableIo<T> {
    /// `io`, nothing to read first, not parking.
    pub fn new(io: T) -> Self {
        Self {
            io,
            first: Bytes::new(),
            parking: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The switch: while it is on, shutting the stream down only flushes it,
    /// so the socket outlives hyper's connection.
    pub fn switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.parking)
    }

    /// Back in service after parking: `first` (bytes already read from the
    /// client) is read before the stream, and a shutdown shuts down again.
    pub fn resume(&mut self, first: Bytes) {
        self.first = first;
        self.parking.store(false, Ordering::Release);
    }

    /// The stream itself.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParkableIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.first.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.first.len().min(buf.remaining());
        buf.put_slice(&this.first[..n]);
        this.first.advance(n);
        if this.first.is_empty() {
            // Read: let its allocation go.
            this.first = Bytes::new();
            // And what has arrived since, in the same read: hyper then sees
            // a whole request at once, rather than reading a second time and
            // growing its buffer for it. Whatever this read finds (nothing
            // yet, an error) is found again by the next one.
            if buf.remaining() > 0 {
                let _ = Pin::new(&mut this.io).poll_read(cx, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParkableIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.parking.load(Ordering::Acquire) {
            true => Pin::new(&mut this.io).poll_flush(cx),
            false => Pin::new(&mut this.io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn the_first_bytes_are_read_before_the_stream() {
        let (near, mut far) = duplex(64);
        let mut io = ParkableIo::new(near);
        io.resume(Bytes::from_static(b"GET "));
        far.write_all(b"/x HTTP/1.1\r\n").await.unwrap();
        let mut got = vec![0u8; 17];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"GET /x HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn what_follows_the_first_bytes_comes_in_the_same_read() {
        let (near, mut far) = duplex(64);
        let mut io = ParkableIo::new(near);
        io.resume(Bytes::from_static(b"GET "));
        far.write_all(b"/x HTTP/1.1\r\n").await.unwrap();
        let mut got = [0u8; 32];
        assert_eq!(io.read(&mut got).await.unwrap(), 17);
        assert_eq!(&got[..17], b"GET /x HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_short_read_buffer_takes_the_first_bytes_in_pieces() {
        let (near, _far) = duplex(64);
        let mut io = ParkableIo::new(near);
        io.resume(Bytes::from_static(b"abcdef"));
        let mut two = [0u8; 2];
        assert_eq!(io.read(&mut two).await.unwrap(), 2);
        assert_eq!(&two, b"ab");
        let mut rest = [0u8; 8];
        assert_eq!(io.read(&mut rest).await.unwrap(), 4);
        assert_eq!(&rest[..4], b"cdef");
    }

    #[tokio::test]
    async fn a_shutdown_while_parking_keeps_the_stream_open() {
        let (near, mut far) = duplex(64);
        let mut io = ParkableIo::new(near);
        io.switch().store(true, Ordering::Release);
        io.write_all(b"kept").await.unwrap();
        io.shutdown().await.unwrap();
        io.write_all(b" open").await.unwrap();
        let mut got = [0u8; 9];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"kept open");

        // Resumed, a shutdown is a shutdown again: the far end reads EOF.
        io.resume(Bytes::new());
        io.shutdown().await.unwrap();
        let mut end = [0u8; 1];
        assert_eq!(far.read(&mut end).await.unwrap(), 0);
    }
}
