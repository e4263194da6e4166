//! Header hygiene between client and upstream.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and never
//! cross the proxy, and neither does any header a `Connection` header names;
//! the one upgrade that does cross is a WebSocket handshake.
//! Forwarding headers say who the client was:
//!
//! - `X-Forwarded-For`: the client's address is appended to any list the client sent;
//!   upstreams should trust only the right-most entry, which passgate wrote.
//! - `X-Forwarded-Proto`: always `https` (passgate only listens on TLS); replaces the client's.
//! - `X-Forwarded-Host`: the `Host` (or HTTP/2 `:authority`) the client asked for, once
//!   [`super::host::check_host`] accepted it; replaces the client's.
//! - `X-Real-IP`: the client's address as passgate determined it; replaces the client's.
//! - `Forwarded` (RFC 7239): an element `for=...;host=...;proto=https` is appended,
//!   keeping any elements the client sent, in the same spirit as `X-Forwarded-For`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// [`strip_hop_by_hop`] for a request going upstream: of `TE`, only
/// `trailers` stays (gRPC needs it; RFC 9113 allows it on HTTP/2), and the
/// proxy drops even that towards an HTTP/1.1-only upstream.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    let trailers = accepts_trailers(headers);
    strip_hop_by_hop(headers, websocket);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// True when a `TE` header names `trailers` (gRPC sends `te: trailers`).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// True for the fixed hop-by-hop header names.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Remove hop-by-hop headers and every header named in any `Connection` header.
/// With `websocket`, the message is a WebSocket handshake and goes on as one:
/// `Connection: upgrade` and `Upgrade: websocket` are written back, and only
/// that token (a client's other upgrade tokens, such as `h2c`, are dropped).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, websocket: bool) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(&name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
}

/// The protocol tokens of every `Upgrade` header line, e.g. `h2c`, `websocket`.
fn upgrade_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn is_websocket(token: &str) -> bool {
    token.eq_ignore_ascii_case("websocket")
}

/// Does this HTTP/1.1 request ask to upgrade to a WebSocket
/// (`Connection: upgrade` and `websocket` among the `Upgrade` tokens)?
/// Other upgrades (`h2c`, ...) are never forwarded: after a `101` the
/// connection would carry requests the gate never sees.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && upgrade_tokens(headers).any(is_websocket)
}

/// Does a `101` response switch to a WebSocket, and to nothing else?
pub fn switches_to_websocket(headers: &HeaderMap) -> bool {
    let mut tokens = upgrade_tokens(headers);
    matches!((tokens.next(), tokens.next()), (Some(t), None) if is_websocket(t))
}

/// Add the forwarding headers for a request from `client` that asked for `host`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, host: Option<&HeaderValue>) {
    let ip = client.to_string();
    let xff = match joined(headers, &X_FORWARDED_FOR) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    // Only the joined list of already-valid values and an IP: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    headers.remove(&X_FORWARDED_HOST);
    let node = match client {
        IpAddr::V4(_) => ip,
        IpAddr::V6(_) => format!("\"[{ip}]\""),
    };
    let mut element = format!("for={node};proto=https");
    if let Some(host) = host {
        headers.insert(&X_FORWARDED_HOST, host.clone());
        if let Ok(h) = host.to_str()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            element.push_str(";host=\"");
            element.push_str(h);
            element.push('"');
        }
    }
    let forwarded = match joined(headers, &FORWARDED) {
        Some(prev) => format!("{prev}, {element}"),
        None => element,
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(&FORWARDED, v);
    }
}

/// Every line of a list-valued header joined with `, ` (a client may split the
/// list over several lines); `None` when there is nothing usable.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A client-supplied request id is kept when it is 1..=200 visible ASCII characters.
pub fn acceptable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 200 && b.iter().all(|c| c.is_ascii_graphic())
}

/// A fresh request id: 32 hex digits.
pub fn new_request_id() -> HeaderValue {
    let n: u128 = rand::random();
    let text = format!("{n:032x}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
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
    fn forwarded_headers_append_and_replace() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let host = HeaderValue::from_static("api.example.com");
        add_forwarded(
            &mut h,
            "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            Some(&host),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https;host=\"api.example.com\""
        );

        let mut h = HeaderMap::new();
        add_forwarded(
            &mut h,
            "::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            None,
        );
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert!(h.get("x-forwarded-host").is_none());
    }

    #[test]
    fn lists_split_over_several_lines_are_kept_whole() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=203.0.113.9"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        add_forwarded(&mut h, IpAddr::from([192, 0, 2, 1]), None);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.7, 192.0.2.1");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9, for=198.51.100.7, for=192.0.2.1;proto=https"
        );
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
        assert_ne!(id, new_request_id());
    }
}
