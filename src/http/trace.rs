//! W3C Trace Context (`traceparent`): a valid incoming header is kept and
//! passed upstream unchanged; without one (or with an invalid one, whose
//! `tracestate` then means nothing and is dropped) passgate starts a trace
//! with random ids. The trace id goes into the access log line.
//!
//! Format: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower
//! case, ids not all zeros; a later version may append `-...` fields, which
//! are kept; version `ff` is invalid.
//!
//! The header is marked sensitive: unique to one request, it is sent to an
//! HTTP/2 upstream as a literal HPACK never indexes, rather than as a table
//! entry no later request could use.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers::{hex_into, shared_value};
use super::written::Written;

/// `traceparent`
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    header: HeaderValue,
    /// True when the client sent it.
    pub kept: bool,
}

impl TraceContext {
    /// The client's valid `traceparent`, or a new trace.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut sent = headers.get_all(&TRACEPARENT).iter();
        match (sent.next(), sent.next()) {
            (Some(v), None) if valid(v.as_bytes()) => {
                let mut header = v.clone();
                header.set_sensitive(true);
                TraceContext { header, kept: true }
            }
            _ => Self::start(),
        }
    }

    /// A new trace: random trace and parent ids, sampled flag off.
    pub fn start() -> Self {
        let mut ids: [u8; 24] = super::ids::random_id();
        ids[0] |= 1; // the trace id is never all zeros
        ids[16] |= 1; // nor the parent id
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut text[3..35], &ids[..16]);
        hex_into(&mut text[36..52], &ids[16..]);
        let mut header = shared_value(text).unwrap_or(HeaderValue::from_static(
            "00-00000000000000000000000000000001-0000000000000001-00",
        ));
        header.set_sensitive(true);
        TraceContext {
            header,
            kept: false,
        }
    }

    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> TraceId<'_> {
        // The header is valid (`of`) or written by `start`: hex there.
        self.header
            .as_bytes()
            .get(3..35)
            .map_or(TraceId::NONE, TraceId)
    }

    /// Put this trace on an upstream request: `traceparent` among the fields
    /// passgate writes (the client's own went with `RequestHygiene`), and a
    /// `tracestate` that belonged to an invalid `traceparent` dropped.
    pub fn write(&self, headers: &mut HeaderMap, written: &mut Written) {
        if !self.kept {
            headers.remove(&TRACESTATE);
        }
        written.push(&TRACEPARENT, self.header.clone());
    }
}

/// A trace id: 32 lower-case hex digits, or `-` for none. Only a
/// [`TraceContext`] makes one, so its bytes are always those: the access log
/// writes them as they are, with no check for what a log format escapes and
/// no UTF-8 check (docs/benchmarks.md, the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId<'a>(&'a [u8]);

impl<'a> TraceId<'a> {
    /// No trace id: `-`.
    pub const NONE: TraceId<'static> = TraceId(b"-");

    /// Hex digits, or `-`: ASCII that no log format escapes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// As text.
    pub fn as_str(&self) -> &'a str {
        std::str::from_utf8(self.0).unwrap_or("-")
    }
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn valid(v: &[u8]) -> bool {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return false;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    if !is_hex(version) || version == b"ff" || !is_hex(trace) || !is_hex(parent) || !is_hex(flags) {
        return false;
    }
    if trace.iter().all(|b| *b == b'0') || parent.iter().all(|b| *b == b'0') {
        return false;
    }
    // Version 00 is exactly 55 characters; later versions may add `-fields`.
    v.len() == 55 || (version != b"00" && v[55] == b'-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                &TRACEPARENT,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_is_kept() {
        let t = TraceContext::of(&with(&[GOOD]));
        assert!(t.kept);
        assert_eq!(t.trace_id().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut h = HeaderMap::new();
        h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let mut w = Written::new();
        t.write(&mut h, &mut w);
        assert_eq!(w.get(&TRACEPARENT).unwrap(), GOOD);
        assert_eq!(h[&TRACESTATE], "vendor=1");
        let future = format!("01{}-extra", &GOOD[2..]);
        assert!(TraceContext::of(&with(&[&future])).kept);
    }

    #[test]
    fn invalid_headers_start_a_new_trace() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            let t = TraceContext::of(&with(&[bad]));
            assert!(!t.kept, "{bad}");
            assert!(valid(t.header.as_bytes()), "{:?}", t.header);
            let mut h = HeaderMap::new();
            h.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
            let mut w = Written::new();
            t.write(&mut h, &mut w);
            assert!(h.get(&TRACESTATE).is_none());
            assert_eq!(w.get(&TRACEPARENT), Some(&t.header));
        }
        // Two headers are ambiguous: start afresh.
        assert!(!TraceContext::of(&with(&[GOOD, GOOD])).kept);
        let a = TraceContext::start();
        let b = TraceContext::start();
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.trace_id().as_bytes().len(), 32);
    }

    #[test]
    fn a_trace_id_is_always_lower_case_hex() {
        let kept = TraceContext::of(&with(&[GOOD]));
        let future = TraceContext::of(&with(&[&format!("01{}-extra", &GOOD[2..])]));
        let started = (0..100).map(|_| TraceContext::start());
        for t in [kept, future].into_iter().chain(started) {
            let id = t.trace_id();
            assert_eq!(id.as_bytes().len(), 32, "{id:?}");
            assert!(is_hex(id.as_bytes()), "{id:?}");
            assert_eq!(id.as_str().as_bytes(), id.as_bytes());
        }
        assert_eq!(TraceId::NONE.as_str(), "-");
    }
}
