//! HTTP/1.1 towards an upstream, as bytes: how a request's body is framed
//! and its head written, how a response head is parsed and how long its body
//! is (RFC 9112, sections 6 and 7), and how a chunked body is read.
//!
//! The rules are hyper's client's, with two stricter ones where a response
//! could otherwise desynchronise the connection: a response framed both by
//! `Transfer-Encoding` and `Content-Length` loses the `Content-Length` and
//! its connection, and a chunk line must end in CRLF with no bare LF
//! (`chunked.rs`).

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::Body;
use std::mem::MaybeUninit;

use crate::http::body::RequestBody;
use crate::http::headers::list_tokens;
use crate::http::written::Written;

/// At most this many header fields in a response head or a trailer section
/// (hyper's default).
pub(super) const MAX_HEADERS: usize = 100;
/// How many fields passgate adds to a forwarded response's head: the
/// request id (`service.rs`). The parsed map is made with room for them.
const ADDED_TO_RESPONSE: usize = 1;
// A head's offsets are kept as u32 (`parse_head`).
const _: () = assert!(MAX_HEAD <= u32::MAX as usize);

/// A response head (or trailer section) longer than this is refused
/// (hyper's client's default read buffer limit).
pub(super) const MAX_HEAD: usize = 8192 + 4096 * 100;

/// What went wrong on an upstream connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading or writing failed.
    #[error("the upstream connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection before a whole response head.
    #[error("the upstream closed the connection before answering")]
    Closed,
    /// The response head is not HTTP/1.1.
    #[error("the upstream's response head is invalid: {0}")]
    Head(httparse::Error),
    /// The response head is longer than [`MAX_HEAD`].
    #[error("the upstream's response head is longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The response's framing headers contradict themselves.
    #[error("the upstream's response framing is invalid: {0}")]
    Framing(&'static str),
    /// The chunked response body is malformed.
    #[error("the upstream's chunked body is invalid: {0}")]
    Chunk(&'static str),
    /// The upstream closed the connection before the end of the body.
    #[error("the upstream closed the connection before the end of the response body")]
    BodyCut,
    /// The request body did not match its `Content-Length`.
    #[error("the request body did not match its Content-Length")]
    RequestLength,
}

/// How a request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encode {
    /// Exactly this many bytes (no body: 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Decide how `body` is framed and make `headers` say so, as hyper's client
/// does: a body that has ended sends nothing; a valid `Content-Length` is
/// kept; a body of known size gets one; an unknown size is chunked, except on
/// `GET`, `HEAD` and `CONNECT`, which send no body. passgate has already
/// removed the client's `Transfer-Encoding` (hop-by-hop); one left is removed.
pub(super) fn request_framing(
    method: &Method,
    headers: &mut HeaderMap,
    body: &RequestBody,
) -> Encode {
    if body.is_end_stream() {
        headers.remove(header::TRANSFER_ENCODING);
        return Encode::Length(0);
    }
    if headers.remove(header::TRANSFER_ENCODING).is_none()
        && let Some(length) = content_length(headers).ok().flatten()
    {
        return Encode::Length(length);
    }
    if let Some(length) = body.size_hint().exact() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return Encode::Length(length);
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) {
        return Encode::Length(0);
    }
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    Encode::Chunked
}

/// Append the request head: request line (origin form), the client's fields,
/// the fields passgate adds, blank line.
pub fn write_head(
    dst: &mut Vec<u8>,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    written: &Written,
) {
    dst.reserve(32 + path_and_query.len() + (headers.len() + written.len()) * 32);
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(path_and_query.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers.iter().chain(written.iter()) {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Append one piece of a request body, framed by `encode`.
pub(super) fn write_data(dst: &mut Vec<u8>, encode: Encode, data: &[u8]) {
    match encode {
        Encode::Length(_) => dst.extend_from_slice(data),
        Encode::Chunked => {
            let mut size = [0u8; 16];
            let digits = hex(data.len(), &mut size);
            dst.reserve(digits.len() + data.len() + 4);
            dst.extend_from_slice(digits);
            dst.extend_from_slice(b"\r\n");
            dst.extend_from_slice(data);
            dst.extend_from_slice(b"\r\n");
        }
    }
}

/// The end of a chunked body (no trailers: passgate removes `Trailer` from
/// requests, and hyper wrote none without it).
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn hex(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// How long a response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Exactly this many bytes.
    Known(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes the connection.
    ToClose,
}

/// A parsed final response head.
#[derive(Debug)]
pub struct Head {
    pub(super) response: Response<()>,
    pub(super) length: Length,
    /// The connection may carry another request after this response.
    pub(super) keep_alive: bool,
}

/// Parse a final response head from the start of `buf`, taking its bytes
/// (and those of any informational `1xx` heads before it, which are
/// skipped). `None`: not all there yet.
pub fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, WireError> {
    loop {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(WireError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Head(e)),
        };
        if len > MAX_HEAD {
            return Err(WireError::HeadTooLarge);
        }
        let code = parsed.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
        let version = match parsed.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        // Where each field's name and value lie in the head, so that the
        // values can share the head's bytes once it is split off. On the
        // stack: a head of `MAX_HEADERS` fields allocates nothing for this.
        let base = buf.as_ptr() as usize;
        let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let fields = parsed.headers.len();
        for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
            let name = field.name.as_ptr() as usize - base;
            let value = field.value.as_ptr() as usize - base;
            // Offsets within a head of at most `MAX_HEAD` bytes fit in a u32.
            *span = (
                name as u32,
                (name + field.name.len()) as u32,
                value as u32,
                (value + field.value.len()) as u32,
            );
        }
        let bytes = buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        // Room for the fields passgate adds to every response (`X-Request-Id`).
        let mut headers = HeaderMap::with_capacity(fields + ADDED_TO_RESPONSE);
        for &(name_start, name_end, start, end) in &spans[..fields] {
            let name = HeaderName::from_bytes(&bytes[name_start as usize..name_end as usize])
                .map_err(|_| WireError::Head(httparse::Error::HeaderName))?;
            let value = HeaderValue::from_maybe_shared(bytes.slice(start as usize..end as usize))
                .map_err(|_| WireError::Head(httparse::Error::HeaderValue))?;
            headers.append(name, value);
        }
        let (length, framed_to_keep) = body_length(status, version, head_request, &mut headers)?;
        let keep_alive = framed_to_keep && connection_persists(version, &headers);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            length,
            keep_alive,
        }));
    }
}

/// RFC 9112, 6.3: the body's length, and whether the framing leaves the
/// connection usable afterwards.
fn body_length(
    status: StatusCode,
    version: Version,
    head_request: bool,
    headers: &mut HeaderMap,
) -> Result<(Length, bool), WireError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The connection is no longer HTTP.
        return Ok((Length::Known(0), false));
    }
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Length::Known(0), true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(WireError::Framing(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        // Both: the Content-Length goes, and so does the connection.
        let both = headers.remove(header::CONTENT_LENGTH).is_some();
        if is_chunked(headers) {
            return Ok((Length::Chunked, !both));
        }
        return Ok((Length::ToClose, false));
    }
    match content_length(headers) {
        Ok(Some(n)) => Ok((Length::Known(n), true)),
        Ok(None) => Ok((Length::ToClose, false)),
        Err(()) => Err(WireError::Framing("invalid Content-Length")),
    }
}

/// The `Content-Length`: `None` when absent; an error unless every value
/// (repeated fields, comma lists) is the same run of digits.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// The last transfer coding is `chunked`.
fn is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().rsplit(|b| *b == b',').next())
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`.
fn connection_persists(version: Version, headers: &HeaderMap) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for token in list_tokens(headers, header::CONNECTION) {
        close |= token.eq_ignore_ascii_case("close");
        keep_alive |= token.eq_ignore_ascii_case("keep-alive");
    }
    !close && (version == Version::HTTP_11 || keep_alive)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
