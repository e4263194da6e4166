//! Header hygiene between client and upstream.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and never
//! cross the proxy, and neither does any header a `Connection` header names;
//! the one upgrade that does cross is a WebSocket handshake.
//! The forwarding headers that say who the client was are written by
//! [`super::forwarded`] (re-exported here).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub use super::forwarded::{PeerHeaders, add_forwarded, ip_value};

/// `X-Forwarded-For`
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Request-Id`
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `Forwarded`
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The fixed hop-by-hop header names (RFC 9110 §7.6.1, and the legacy
/// `keep-alive` and `proxy-connection`). Their positions are the bits of
/// [`present`].
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const CONNECTION_BIT: u16 = 1;
const TE_BIT: u16 = 1 << 5;

/// [`strip_hop_by_hop`] for a request going upstream: of `TE`, only
/// `trailers` stays (gRPC needs it; RFC 9113 allows it on HTTP/2), and the
/// proxy drops even that towards an HTTP/1.1-only upstream.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    let found = present(headers);
    let trailers = found & TE_BIT != 0 && accepts_trailers(headers);
    strip_present(headers, found, websocket);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// True when a `TE` header names `trailers` (gRPC sends `te: trailers`).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    list_tokens(headers, header::TE).any(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
    })
}

/// The comma-separated tokens of every `name` line (`Connection`, `Upgrade`,
/// `TE`), trimmed, empty ones left out; a line that is not visible ASCII has none.
pub fn list_tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// True for the fixed hop-by-hop header names.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Remove hop-by-hop headers and every header named in any `Connection` header.
/// With `websocket`, the message is a WebSocket handshake and goes on as one:
/// `Connection: upgrade` and `Upgrade: websocket` are written back, and only
/// that token (a client's other upgrade tokens, such as `h2c`, are dropped).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    let found = present(headers);
    strip_present(headers, found, websocket);
}

/// Which of [`HOP_BY_HOP`] `headers` holds, one bit each. Most messages hold
/// none of them, or only `Connection`: one pass over the names finds out, so
/// only the names present are looked up again to be removed (docs/benchmarks.md).
fn present(headers: &HeaderMap) -> u16 {
    let mut found = 0;
    for name in headers.keys() {
        let name = name.as_str();
        // Every fixed hop-by-hop name starts with one of these letters.
        if !matches!(
            name.as_bytes().first(),
            Some(b'c' | b'k' | b'p' | b't' | b'u')
        ) {
            continue;
        }
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h.as_str() == name) {
            found |= 1 << i;
        }
    }
    found
}

fn strip_present(headers: &mut HeaderMap, found: u16, websocket: bool) {
    if found & CONNECTION_BIT != 0 {
        let mut lines = headers.get_all(header::CONNECTION).iter();
        match (lines.next().cloned(), lines.next()) {
            // The usual case, one line: a clone of it shares its bytes.
            (Some(line), None) => remove_listed(headers, &line),
            _ => {
                let all: Vec<HeaderValue> = headers
                    .get_all(header::CONNECTION)
                    .iter()
                    .cloned()
                    .collect();
                for line in &all {
                    remove_listed(headers, line);
                }
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
}

/// Remove the headers one `Connection` line names. The fixed hop-by-hop names
/// (`keep-alive`, `upgrade`, ...) are left to the caller, which removes them
/// anyway; a token that is no header name matches nothing.
fn remove_listed(headers: &mut HeaderMap, line: &HeaderValue) {
    let Ok(line) = line.to_str() else {
        return;
    };
    for token in line.split(',').map(str::trim) {
        let fixed = HOP_BY_HOP
            .iter()
            .any(|h| h.as_str().eq_ignore_ascii_case(token));
        if !token.is_empty() && !fixed {
            // Looked up by `&str`: parsed on the stack, never allocated.
            headers.remove(token);
        }
    }
}

fn is_websocket(token: &str) -> bool {
    token.eq_ignore_ascii_case("websocket")
}

/// Does this HTTP/1.1 request ask to upgrade to a WebSocket
/// (`Connection: upgrade` and `websocket` among the `Upgrade` tokens)?
/// Other upgrades (`h2c`, ...) are never forwarded: after a `101` the
/// connection would carry requests the gate never sees.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let connection_upgrade =
        list_tokens(headers, header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"));
    connection_upgrade && list_tokens(headers, header::UPGRADE).any(is_websocket)
}

/// Does a `101` response switch to a WebSocket, and to nothing else?
pub fn switches_to_websocket(headers: &HeaderMap) -> bool {
    let mut tokens = list_tokens(headers, header::UPGRADE);
    matches!((tokens.next(), tokens.next()), (Some(t), None) if is_websocket(t))
}

/// A client-supplied request id is kept when it is 1..=200 visible ASCII characters.
pub fn acceptable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic())
}

/// A fresh request id: 32 hex digits (written on the stack, not through `fmt`).
pub fn new_request_id() -> HeaderValue {
    let random: [u8; 16] = super::ids::random_id();
    let mut text = [0u8; 32];
    hex_into(&mut text, &random);
    shared_value(text).unwrap_or_else(|| HeaderValue::from_static("0"))
}

/// A header value holding `text`, in one allocation that its clones share:
/// a value copied from a slice allocates again on its first clone, and the
/// request id and trace header are each cloned on every request (upstream,
/// response, the proxy's warnings). `None` when `text` is not a valid header value.
pub fn shared_value<const N: usize>(text: [u8; N]) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).ok()
}

/// Write `bytes` as lower-case hex into the start of `out` (two digits a byte,
/// as many bytes as fit).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(header::WARNING),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn tells_te_trailers() {
        let mut h = HeaderMap::new();
        assert!(!accepts_trailers(&h));
        h.insert(header::TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(accepts_trailers(&h));
        h.insert(header::TE, HeaderValue::from_static("gzip;q=0.5"));
        assert!(!accepts_trailers(&h));
    }

    #[test]
    fn strips_fixed_and_listed_names_from_every_connection_header() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("connection", "X-Other"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn only_a_websocket_upgrade_is_kept() {
        let mut h = map(&[
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "h2c, WebSocket"),
            ("x-secret", "1"),
        ]);
        assert!(wants_websocket(&h));
        strip_hop_by_hop(&mut h, true);
        let all = |h: &HeaderMap, n: &str| -> Vec<String> {
            h.get_all(n)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect()
        };
        assert_eq!(all(&h, "upgrade"), ["websocket"]);
        assert_eq!(all(&h, "connection"), ["upgrade"]);
        assert!(h.get("x-secret").is_none());
    }

    #[test]
    fn which_requests_and_answers_are_websockets() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("connection", "upgrade"), ("upgrade", "websocket")], true),
            (
                &[
                    ("connection", "keep-alive, Upgrade"),
                    ("upgrade", "foo/2, websocket"),
                ],
                true,
            ),
            (
                &[
                    ("connection", "upgrade"),
                    ("upgrade", "h2c"),
                    ("upgrade", "websocket"),
                ],
                true,
            ),
            (&[("connection", "upgrade"), ("upgrade", "h2c")], false),
            (
                &[("connection", "upgrade"), ("upgrade", "websockets")],
                false,
            ),
            (&[("upgrade", "websocket")], false),
            (&[("connection", "upgrade")], false),
        ];
        for (pairs, want) in cases {
            assert_eq!(wants_websocket(&map(pairs)), *want, "{pairs:?}");
        }
        let answers: &[(&[(&str, &str)], bool)] = &[
            (&[("upgrade", "websocket")], true),
            (&[("upgrade", "WebSocket")], true),
            (&[("upgrade", "h2c")], false),
            (&[("upgrade", "websocket, h2c")], false),
            (&[], false),
        ];
        for (pairs, want) in answers {
            assert_eq!(switches_to_websocket(&map(pairs)), *want, "{pairs:?}");
        }
    }

    #[test]
    fn request_ids() {
        assert!(acceptable_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!acceptable_request_id(&HeaderValue::from_static("")));
        assert!(!acceptable_request_id(&HeaderValue::from_static(
            "has space"
        )));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.as_bytes()
                .iter()
                .all(|b| b"0123456789abcdef".contains(b))
        );
        assert_ne!(id, new_request_id());
        let mut out = [0u8; 6];
        hex_into(&mut out, &[0x00, 0xa5, 0xff]);
        assert_eq!(&out, b"00a5ff");
    }
}
