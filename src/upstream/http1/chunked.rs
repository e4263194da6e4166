//! A chunked response body (RFC 9112, section 7.1), read from the
//! connection's buffer as it arrives: chunk sizes (extensions ignored),
//! data, and the trailer section.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::codec::{MAX_HEAD, MAX_HEADERS, WireError};

/// A chunk-size line (the size and its extensions) longer than this is refused.
pub(super) const MAX_CHUNK_LINE: usize = 4096;

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, before the trailer section.
    Trailers,
}

/// One step of reading a body from the buffer.
#[derive(Debug)]
pub(super) enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    /// Nothing more can be read from what is buffered.
    More,
}

/// Read what `buf` holds of a chunked body at `state`.
pub(super) fn chunked_step(state: &mut Chunked, buf: &mut BytesMut) -> Result<Step, WireError> {
    loop {
        match *state {
            Chunked::Size => {
                match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        // httparse takes an empty size as 0, and any byte
                        // (a bare LF too) inside an extension.
                        if !buf[0].is_ascii_hexdigit() {
                            return Err(WireError::Chunk("a chunk size is missing"));
                        }
                        if buf[..used - 1].contains(&b'\n') {
                            return Err(WireError::Chunk("a bare LF in a chunk line"));
                        }
                        let _ = buf.split_to(used);
                        *state = if size == 0 {
                            Chunked::Trailers
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                        return Err(WireError::Chunk("a chunk line is too long"));
                    }
                    Ok(httparse::Status::Partial) => return Ok(Step::More),
                    Err(_) => return Err(WireError::Chunk("a chunk size is invalid")),
                }
            }
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let take = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                *state = if left == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left)
                };
                return Ok(Step::Data(data));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(WireError::Chunk("a chunk's data does not end in CRLF"));
                }
                let _ = buf.split_to(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers => return trailers(buf),
        }
    }
}

/// The trailer section after the last chunk: `End` when it is empty.
fn trailers(buf: &mut BytesMut) -> Result<Step, WireError> {
    if buf.len() < 2 {
        return Ok(Step::More);
    }
    if &buf[..2] == b"\r\n" {
        let _ = buf.split_to(2);
        return Ok(Step::End);
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (used, map) = match httparse::parse_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete((used, fields))) => {
            let mut map = HeaderMap::with_capacity(fields.len());
            for field in fields {
                let name = HeaderName::from_bytes(field.name.as_bytes())
                    .map_err(|_| WireError::Chunk("a trailer's name is invalid"))?;
                let value = HeaderValue::from_bytes(field.value)
                    .map_err(|_| WireError::Chunk("a trailer's value is invalid"))?;
                map.append(name, value);
            }
            (used, map)
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(WireError::Chunk("the trailer section is too long"));
        }
        Ok(httparse::Status::Partial) => return Ok(Step::More),
        Err(_) => return Err(WireError::Chunk("the trailer section is invalid")),
    };
    let _ = buf.split_to(used);
    Ok(Step::Trailers(map))
}
