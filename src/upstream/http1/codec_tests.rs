#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::http::headers::X_REQUEST_ID;
use crate::upstream::http1::chunked::{Chunked, MAX_CHUNK_LINE, Step, chunked_step};

fn head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, WireError> {
    parse_head(&mut BytesMut::from(bytes), head_request)
}

fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in fields {
        m.append(*n, HeaderValue::from_static(v));
    }
    m
}

#[test]
fn a_request_head_is_written_in_origin_form() {
    let mut dst = Vec::new();
    let headers = map(&[("host", "up:8080"), ("x-a", "1"), ("x-a", "2")]);
    let mut written = Written::new();
    written.push(&X_REQUEST_ID, HeaderValue::from_static("r1"));
    write_head(&mut dst, &Method::POST, "/a/b?c=d", &headers, &written);
    assert_eq!(
        dst,
        b"POST /a/b?c=d HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\nx-request-id: r1\r\n\r\n"
    );
}

#[test]
fn chunks_are_sized_in_hex() {
    let mut dst = Vec::new();
    write_data(&mut dst, Encode::Chunked, &[b'x'; 26]);
    write_data(&mut dst, Encode::Length(3), b"abc");
    assert_eq!(
        dst,
        [b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\nabc"].concat()
    );
    let mut buf = [0u8; 16];
    assert_eq!(hex(0, &mut buf), b"0");
    assert_eq!(hex(usize::MAX, &mut buf).len(), 16);
}

#[test]
fn an_ended_body_sends_nothing_and_no_transfer_encoding() {
    let mut headers = map(&[("transfer-encoding", "chunked")]);
    let body = RequestBody::empty();
    assert_eq!(
        request_framing(&Method::POST, &mut headers, &body),
        Encode::Length(0)
    );
    assert!(!headers.contains_key(header::TRANSFER_ENCODING));
}

#[test]
fn content_length_must_be_one_number() {
    let cl = |v: &'static str| content_length(&map(&[("content-length", v)]));
    assert_eq!(cl("42"), Ok(Some(42)));
    assert_eq!(cl("42, 42"), Ok(Some(42)));
    assert_eq!(
        content_length(&map(&[("content-length", "7"), ("content-length", "7")])),
        Ok(Some(7))
    );
    assert_eq!(content_length(&HeaderMap::new()), Ok(None));
    for bad in [
        "",
        "4 2",
        "+4",
        "-1",
        "0x10",
        "42, 43",
        "99999999999999999999",
        "4,",
    ] {
        assert_eq!(cl(bad), Err(()), "{bad:?}");
    }
}

#[test]
fn a_response_head_is_parsed_with_its_framing() {
    let h = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.response.status(), 200);
    assert_eq!(h.response.version(), Version::HTTP_11);
    assert_eq!(h.response.headers()["x-y"], "z");
    assert_eq!(h.length, Length::Known(5));
    assert!(h.keep_alive);

    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..]);
    parse_head(&mut buf, false).unwrap().unwrap();
    assert_eq!(&buf[..], b"hello", "only the head is taken");
}

#[test]
fn a_partial_head_waits_for_more() {
    assert!(
        head(b"HTTP/1.1 200 OK\r\ncontent-len", false)
            .unwrap()
            .is_none()
    );
    assert!(head(b"HTTP/1.1 2", false).unwrap().is_none());
}

#[test]
fn informational_heads_are_skipped_but_not_101() {
    let h = head(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.response.status(), 201);
    assert!(!h.response.headers().contains_key("link"));
    let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\n"[..]);
    assert!(parse_head(&mut buf, false).unwrap().is_none());
    assert!(
        buf.is_empty(),
        "the 100 is taken even while the final head is awaited"
    );

    let h = head(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.response.status(), 101);
    assert!(!h.keep_alive);
}

#[test]
fn bodies_that_cannot_be_have_none() {
    let sized = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
    let h = head(sized, true).unwrap().unwrap();
    assert_eq!((h.length, h.keep_alive), (Length::Known(0), true), "HEAD");
    for status in ["204 No Content", "304 Not Modified"] {
        let bytes = format!("HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n");
        let h = head(bytes.as_bytes(), false).unwrap().unwrap();
        assert_eq!(
            (h.length, h.keep_alive),
            (Length::Known(0), true),
            "{status}"
        );
    }
}

#[test]
fn transfer_encoding_wins_over_content_length_and_costs_the_connection() {
    let h = head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.length, Length::Chunked);
    assert!(!h.keep_alive);
    assert!(!h.response.headers().contains_key("content-length"));

    let h = head(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!((h.length, h.keep_alive), (Length::Chunked, true));
    let h = head(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!((h.length, h.keep_alive), (Length::ToClose, false));
}

#[test]
fn bad_framing_is_an_error() {
    for bytes in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
    ] {
        assert!(
            matches!(head(bytes, false), Err(WireError::Framing(_))),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    for bytes in [
        &b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nx: a\rb\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ] {
        assert!(
            matches!(head(bytes, false), Err(WireError::Head(_))),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn an_endless_head_is_refused() {
    let mut bytes = b"HTTP/1.1 200 OK\r\n".to_vec();
    while bytes.len() <= MAX_HEAD {
        bytes.extend_from_slice(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(matches!(
        head(&bytes, false),
        Err(WireError::HeadTooLarge) | Err(WireError::Head(httparse::Error::TooManyHeaders))
    ));
    let mut bytes = b"HTTP/1.1 200 OK\r\nx-long: ".to_vec();
    bytes.resize(MAX_HEAD + 10, b'a');
    assert!(matches!(head(&bytes, false), Err(WireError::HeadTooLarge)));
}

#[test]
fn the_connection_persists_as_the_version_and_connection_say() {
    let persists = |bytes: &[u8]| head(bytes, false).unwrap().unwrap().keep_alive;
    assert!(persists(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    assert!(!persists(
        b"HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n"
    ));
    assert!(!persists(
        b"HTTP/1.1 200 OK\r\nconnection: x, close\r\ncontent-length: 0\r\n\r\n"
    ));
    assert!(!persists(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
    assert!(persists(
        b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
    ));
    assert!(!persists(b"HTTP/1.1 200 OK\r\n\r\n"), "read to the close");
}

/// The data and trailers of a chunked body fed `step` bytes at a time.
fn chunked(body: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>, usize), WireError> {
    let mut state = Chunked::Size;
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    loop {
        match chunked_step(&mut state, &mut buf)? {
            Step::Data(d) => data.extend_from_slice(&d),
            Step::Trailers(t) => return Ok((data, Some(t), buf.len() + body.len() - fed)),
            Step::End => return Ok((data, None, buf.len() + body.len() - fed)),
            Step::More if fed == body.len() => return Err(WireError::BodyCut),
            Step::More => {
                let next = (fed + step).min(body.len());
                buf.extend_from_slice(&body[fed..next]);
                fed = next;
            }
        }
    }
}

#[test]
fn a_chunked_body_is_read_however_it_arrives() {
    let body = b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, body.len()] {
        let (data, trailers, left) = chunked(body, step).unwrap();
        assert_eq!(data, b"abc0123456789", "step {step}");
        assert!(trailers.is_none());
        assert_eq!(left, 4, "what follows the body stays: step {step}");
    }
    let with_trailers = b"2\r\nok\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\n";
    for step in [1, with_trailers.len()] {
        let (data, trailers, left) = chunked(with_trailers, step).unwrap();
        assert_eq!(data, b"ok");
        let trailers = trailers.unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["x-t"], "1");
        assert_eq!(left, 0);
    }
}

#[test]
fn a_malformed_chunked_body_is_an_error() {
    for bad in [
        &b"\r\nabc\r\n0\r\n\r\n"[..],
        b";x\r\nabc\r\n0\r\n\r\n",
        b"g\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"3;a\nb\r\nabc\r\n0\r\n\r\n",
        b"3\nabc\r\n0\r\n\r\n",
        b"fffffffffffffffff\r\n",
        b"0\r\nbad trailer\r\n\r\n",
    ] {
        assert!(
            matches!(chunked(bad, 1), Err(WireError::Chunk(_))),
            "{}: {:?}",
            String::from_utf8_lossy(bad),
            chunked(bad, 1)
        );
    }
    let mut long = b"1;".to_vec();
    long.resize(MAX_CHUNK_LINE + 10, b'x');
    assert!(matches!(
        chunked(&long, long.len()),
        Err(WireError::Chunk(_))
    ));
    assert!(matches!(chunked(b"5\r\nab", 1), Err(WireError::BodyCut)));
}
