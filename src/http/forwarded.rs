//! The headers that tell an upstream who the client was, written on every
//! proxied request:
//!
//! - `X-Forwarded-For`: the client's address is appended to any list the client sent;
//!   upstreams should trust only the right-most entry, which passgate wrote.
//! - `X-Forwarded-Proto`: always `https` (passgate only listens on TLS); replaces the client's.
//! - `X-Forwarded-Host`: the `Host` (or HTTP/2 `:authority`) the client asked for, once
//!   [`super::host::check_host`] accepted it; replaces the client's.
//! - `X-Real-IP`: the client's address as passgate determined it; replaces the client's
//!   (written by the caller with [`ip_value`]).
//! - `Forwarded` (RFC 7239): an element `for=...;proto=https;host=...` is appended,
//!   keeping any elements the client sent, in the same spirit as `X-Forwarded-For`.
//!
//! This runs once per request, so each value is built in one buffer and
//! handed to its header without another copy, and an address is written
//! out by hand rather than through `fmt` (docs/benchmarks.md, the hop).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::headers::{FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use super::written::Written;

/// What the forwarding headers say of one connection's client, worked out
/// once per connection rather than once per request: the address as a header
/// value, and the `Forwarded` element of the first `Host` asked for (the
/// requests on a connection nearly always ask for the same one).
#[derive(Debug)]
pub struct PeerHeaders {
    ip: IpAddr,
    value: HeaderValue,
    /// The first host's own bytes (a copy: a request's header value shares
    /// the connection's read buffer, which would then stay held) and its element.
    element: OnceLock<HostElement>,
}

/// A host's bytes (`None`: no host) and the `Forwarded` element for it.
type HostElement = (Option<Box<[u8]>>, Option<HeaderValue>);

impl PeerHeaders {
    /// For a connection from `ip`.
    pub fn new(ip: IpAddr) -> Self {
        PeerHeaders {
            ip,
            value: ip_value(ip),
            element: OnceLock::new(),
        }
    }

    /// The connection's client address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The address as `Display` writes it: digits, dots, colons and hex
    /// (the access log writes it as it is).
    pub fn ip_text(&self) -> &[u8] {
        self.value.as_bytes()
    }

    /// `ip` as a header value (`X-Real-IP`): the connection's own, shared,
    /// when it is the connection's address.
    pub fn value_of(&self, ip: IpAddr) -> HeaderValue {
        match ip == self.ip {
            true => self.value.clone(),
            false => ip_value(ip),
        }
    }

    /// `for=…;proto=https;host="…"` for a request that asked for `host`.
    fn element(&self, host: Option<&HeaderValue>) -> Option<HeaderValue> {
        let host_bytes = host.map(HeaderValue::as_bytes);
        if let Some((for_host, element)) = self.element.get()
            && for_host.as_deref() == host_bytes
        {
            return element.clone();
        }
        let element = new_element(self.ip, &self.value, host);
        let _ = self
            .element
            .set((host_bytes.map(Box::from), element.clone()));
        element
    }
}

/// The forwarding headers for a request from the connection `peer` that
/// asked for `host`, added to `written`. The client's `X-Forwarded-For` and
/// `Forwarded` lines are read here, to be extended; `RequestHygiene` removes
/// them (and every other forwarding header the client sent) afterwards, so
/// call this first.
pub fn add_forwarded(
    headers: &HeaderMap,
    peer: &PeerHeaders,
    host: Option<&HeaderValue>,
    written: &mut Written,
) {
    let xff = match list_len(headers, &X_FORWARDED_FOR) {
        0 => Some(peer.value.clone()),
        len => joined(headers, &X_FORWARDED_FOR, len, peer.value.as_bytes()),
    };
    if let Some(v) = xff {
        written.push(&X_FORWARDED_FOR, v);
    }
    written.push(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));

    let element = peer.element(host);
    let forwarded = match list_len(headers, &FORWARDED) {
        0 => element,
        len => element.and_then(|e| joined(headers, &FORWARDED, len, e.as_bytes())),
    };
    if let Some(host) = host {
        written.push(&X_FORWARDED_HOST, host.clone());
    }
    if let Some(v) = forwarded {
        written.push(&FORWARDED, v);
    }
}

/// The `Forwarded` element for a request from `client` (its text `ip`) that
/// asked for `host`. The host goes in only when it is plain (letters,
/// digits, `.-:[]`): anything else would need quoting rules of its own.
fn new_element(
    client: IpAddr,
    ip: &HeaderValue,
    host: Option<&HeaderValue>,
) -> Option<HeaderValue> {
    let host_len = host.map_or(0, |h| h.len() + 8);
    let mut element = Vec::with_capacity(28 + ip.len() + host_len);
    element.extend_from_slice(b"for=");
    match client {
        IpAddr::V4(_) => element.extend_from_slice(ip.as_bytes()),
        IpAddr::V6(_) => {
            element.extend_from_slice(b"\"[");
            element.extend_from_slice(ip.as_bytes());
            element.extend_from_slice(b"]\"");
        }
    }
    element.extend_from_slice(b";proto=https");
    if let Some(host) = host {
        let plain = host
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(b));
        if plain {
            element.extend_from_slice(b";host=\"");
            element.extend_from_slice(host.as_bytes());
            element.push(b'"');
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(element)).ok()
}

/// The usable lines of `name` (`len` bytes joined, [`list_len`]), then `last`.
fn joined(headers: &HeaderMap, name: &HeaderName, len: usize, last: &[u8]) -> Option<HeaderValue> {
    let mut value = Vec::with_capacity(len + 2 + last.len());
    push_list(&mut value, headers, name);
    value.extend_from_slice(b", ");
    value.extend_from_slice(last);
    // Lines that were valid values, `, ` and a valid value: always valid.
    HeaderValue::from_maybe_shared(Bytes::from(value)).ok()
}

/// `ip` as a header value (`X-Real-IP`).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    // Digits, dots, colons and hex: always a valid header value.
    HeaderValue::from_bytes(IpText::new(ip).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The length of every usable line of a list-valued header joined with `, `
/// (a client may split the list over several lines); 0 when there is none.
fn list_len(headers: &HeaderMap, name: &HeaderName) -> usize {
    let mut len = 0;
    for line in usable_lines(headers, name) {
        len += line.len() + if len > 0 { 2 } else { 0 };
    }
    len
}

/// Append the lines [`list_len`] counted, joined with `, `.
fn push_list(out: &mut Vec<u8>, headers: &HeaderMap, name: &HeaderName) {
    for (i, line) in usable_lines(headers, name).enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(line);
    }
}

/// The lines of a header that are visible ASCII, trimmed, without empty ones.
fn usable_lines<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a [u8]> + use<'a> {
    headers
        .get_all(name)
        .into_iter()
        .filter(|v| v.to_str().is_ok())
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty())
}

/// An address written out on the stack, as `Display` writes it: an IPv4
/// address digit by digit, an IPv6 one (rare on this path) through `fmt`.
/// Also the access log's (`telemetry/access_line.rs`).
pub struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// `ip`'s text.
    pub fn new(ip: IpAddr) -> Self {
        let mut text = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            // The longest IPv6 text (an IPv4-mapped address) is 45 bytes.
            IpAddr::V6(v6) => {
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            self.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::hygiene::RequestHygiene;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(http::header::WARNING),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    /// What the proxy does: the values, then the client's copies removed,
    /// then the values written (here, into the same map).
    fn forward(h: &mut HeaderMap, peer: &PeerHeaders, host: Option<&HeaderValue>) {
        let mut written = Written::new();
        add_forwarded(h, peer, host, &mut written);
        RequestHygiene::default().apply(h);
        written.insert_into(h);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let host = HeaderValue::from_static("api.example.com");
        forward(&mut h, &PeerHeaders::new(ip("192.0.2.1")), Some(&host));
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https;host=\"api.example.com\""
        );

        let mut h = map(&[("x-forwarded-host", "evil.example")]);
        forward(&mut h, &PeerHeaders::new(ip("::1")), None);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert!(h.get("x-forwarded-host").is_none());
    }

    #[test]
    fn one_connection_s_requests_each_get_their_own_host() {
        // The element worked out for the first host is kept for the
        // connection; another host, or none, still gets its own.
        let peer = PeerHeaders::new(ip("192.0.2.1"));
        let api = HeaderValue::from_static("api.example.com");
        let other = HeaderValue::from_static("other.example.com");
        for (host, want) in [
            (
                Some(&api),
                "for=192.0.2.1;proto=https;host=\"api.example.com\"",
            ),
            (
                Some(&other),
                "for=192.0.2.1;proto=https;host=\"other.example.com\"",
            ),
            (None, "for=192.0.2.1;proto=https"),
            (
                Some(&api),
                "for=192.0.2.1;proto=https;host=\"api.example.com\"",
            ),
        ] {
            let mut h = map(&[("x-forwarded-host", "evil.example")]);
            forward(&mut h, &peer, host);
            assert_eq!(h["forwarded"], want);
            assert_eq!(h["x-forwarded-for"], "192.0.2.1");
            assert_eq!(h.get("x-forwarded-host"), host);
            // A client's own list is kept, with this hop's element after it.
            let mut h = map(&[
                ("forwarded", "for=203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
            ]);
            forward(&mut h, &peer, host);
            assert_eq!(h["forwarded"], format!("for=203.0.113.9, {want}").as_str());
            assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        }
        assert_eq!(peer.value_of(ip("192.0.2.1")), "192.0.2.1");
        assert_eq!(peer.value_of(ip("203.0.113.9")), "203.0.113.9");
    }

    #[test]
    fn the_connection_keeps_no_request_s_buffer() {
        // hyper's header values share the connection's read buffer: a copy
        // kept of one would hold that buffer for the connection's life.
        let read_buffer = Bytes::from(vec![b'a'; 8192]);
        let host = HeaderValue::from_maybe_shared(read_buffer.slice(0..15))
            .unwrap_or_else(|_| HeaderValue::from_static("x"));
        let peer = PeerHeaders::new(ip("192.0.2.1"));
        let mut h = HeaderMap::new();
        forward(&mut h, &peer, Some(&host));
        drop((h, host));
        assert!(
            read_buffer.is_unique(),
            "the cached element holds the request's buffer"
        );
    }

    #[test]
    fn lists_split_over_several_lines_are_kept_whole() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", " "),
            ("x-forwarded-for", " 198.51.100.7 "),
            ("forwarded", "for=203.0.113.9"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        forward(
            &mut h,
            &PeerHeaders::new(IpAddr::from([192, 0, 2, 1])),
            None,
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.7, 192.0.2.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9, for=198.51.100.7, for=192.0.2.1;proto=https"
        );
    }

    #[test]
    fn a_host_with_other_characters_stays_out_of_forwarded() {
        let mut h = HeaderMap::new();
        let host = HeaderValue::from_static("api.example.com:8443");
        forward(&mut h, &PeerHeaders::new(ip("10.0.0.1")), Some(&host));
        assert_eq!(
            h["forwarded"],
            "for=10.0.0.1;proto=https;host=\"api.example.com:8443\""
        );
        let mut h = HeaderMap::new();
        let odd = HeaderValue::from_static("a_b.example");
        forward(&mut h, &PeerHeaders::new(ip("10.0.0.1")), Some(&odd));
        assert_eq!(h["x-forwarded-host"], "a_b.example");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=https");
    }

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "10.200.7.30",
            "::",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let addr = ip(text);
            assert_eq!(IpText::new(addr).as_bytes(), addr.to_string().as_bytes());
            assert_eq!(ip_value(addr), addr.to_string().as_str());
        }
        for n in 0..=255u8 {
            let addr = IpAddr::from([n, 255 - n, n / 3, 7]);
            assert_eq!(IpText::new(addr).as_bytes(), addr.to_string().as_bytes());
        }
    }
}
