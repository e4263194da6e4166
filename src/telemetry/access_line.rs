//! The access log's line, formatted by passgate itself.
//!
//! One line per request is the log's hottest path: formatted through
//! `tracing`, the event's dispatch, its fields' visitors and `core::fmt` cost
//! a fifth of the hop's instructions (docs/benchmarks.md, the access log).
//! [`AccessLine::write`] writes the same bytes straight into the thread's
//! buffer, whose copy joins the writer's batch: the text format as tracing-subscriber's
//! `fmt` layer with [`EscapedFields`](super::EscapedFields) writes it, the
//! JSON format as its `json().flatten_event(true)` writes it. A test holds
//! the two to each other, hostile values included.

use std::fmt::Write as _;
use std::time::Duration;

use http::Method;

use super::escape::{Bytes, push_display_value, push_str_value};
use super::timestamp;
use crate::config::LogFormat;
use crate::http::forwarded::PeerHeaders;
use crate::http::response::Fault;
use crate::http::trace::TraceId;

/// What the access log says of one request.
///
/// The method, the fault, the trace id and the client's address hold only
/// bytes no log format escapes (a token's characters, fixed words, hex
/// digits, an address's text), as their types ensure: they are written as
/// they are. The other values are looked at first.
#[derive(Debug, Clone)]
pub struct AccessLine<'a> {
    /// The request's `X-Request-Id`.
    pub request_id: &'a str,
    /// The request's method.
    pub method: &'a Method,
    /// The request's path as the client sent it.
    pub path: &'a str,
    /// The matched route's prefix, or the local endpoint's name.
    pub route: &'a str,
    /// The response's status code.
    pub status: u16,
    /// The upstream that answered, or `-`.
    pub upstream: &'a str,
    /// Whose fault an error was (logged as `Fault::as_str`, or `-`).
    pub fault: Option<Fault>,
    /// The W3C trace id.
    pub trace_id: TraceId<'a>,
    /// From the request's head to the response's head (logged in
    /// milliseconds, `duration_ms`).
    pub duration: Duration,
    /// The client (the TCP peer): its connection's address text.
    pub client: &'a PeerHeaders,
}

/// The buffer a line is written into: most lines fit.
const LINE_CAPACITY: usize = 320;

impl AccessLine<'_> {
    /// Log the line through `tracing`, as an `info` event with the access
    /// log's target: where no writer of passgate's own is installed (a test
    /// reading the lines through a subscriber of its own), and the reference
    /// the formatter is tested against.
    pub fn emit(&self) {
        tracing::info!(
            target: "passgate::access",
            request_id = self.request_id,
            method = %self.method,
            path = %self.path,
            route = self.route,
            status = self.status,
            upstream = self.upstream,
            fault = self.fault_text(),
            trace_id = self.trace_id.as_str(),
            duration_ms = millis(self.duration),
            client = %self.client.ip(),
        );
    }

    fn fault_text(&self) -> &'static str {
        self.fault.map_or("-", Fault::as_str)
    }

    /// The whole line in `format`, timestamp first and newline last.
    pub fn to_bytes(&self, format: LogFormat) -> Vec<u8> {
        let mut out = Vec::with_capacity(LINE_CAPACITY + self.path.len());
        self.write(format, &mut out);
        out
    }

    /// Append the whole line in `format` to `out`.
    pub fn write(&self, format: LogFormat, out: &mut Vec<u8>) {
        out.reserve(LINE_CAPACITY + self.path.len());
        match format {
            LogFormat::Text => self.write_text(out),
            LogFormat::Json => self.write_json(out),
        }
    }

    /// `2026-12-01T03:04:05.123456Z  INFO passgate::access: request_id="…" …`
    fn write_text(&self, out: &mut Vec<u8>) {
        timestamp::write_now(out);
        out.extend_from_slice(b"  INFO passgate::access: request_id=");
        push_str_value(out, self.request_id);
        out.extend_from_slice(b" method=");
        // A method is a token: printable ASCII, shown as it is.
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.extend_from_slice(b" path=");
        push_display_value(out, self.path);
        out.extend_from_slice(b" route=");
        push_str_value(out, self.route);
        out.extend_from_slice(b" status=");
        push_integer(out, self.status);
        out.extend_from_slice(b" upstream=");
        push_str_value(out, self.upstream);
        out.extend_from_slice(b" fault=");
        push_quoted(out, self.fault_text().as_bytes());
        out.extend_from_slice(b" trace_id=");
        push_quoted(out, self.trace_id.as_bytes());
        out.extend_from_slice(b" duration_ms=");
        push_millis(out, self.duration);
        out.extend_from_slice(b" client=");
        out.extend_from_slice(self.client.ip_text());
        out.push(b'\n');
    }

    /// `{"timestamp":"…","level":"INFO","request_id":"…",…,"target":"passgate::access"}`
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp::write_now(out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":");
        push_json_str(out, self.request_id);
        out.extend_from_slice(b",\"method\":");
        // A token holds no quote, backslash or control character.
        push_quoted(out, self.method.as_str().as_bytes());
        out.extend_from_slice(b",\"path\":");
        push_json_str(out, self.path);
        out.extend_from_slice(b",\"route\":");
        push_json_str(out, self.route);
        out.extend_from_slice(b",\"status\":");
        push_integer(out, self.status);
        out.extend_from_slice(b",\"upstream\":");
        push_json_str(out, self.upstream);
        out.extend_from_slice(b",\"fault\":");
        push_quoted(out, self.fault_text().as_bytes());
        out.extend_from_slice(b",\"trace_id\":");
        push_quoted(out, self.trace_id.as_bytes());
        out.extend_from_slice(b",\"duration_ms\":");
        let _ = serde_json::to_writer(&mut *out, &millis(self.duration));
        out.extend_from_slice(b",\"client\":");
        push_quoted(out, self.client.ip_text());
        out.extend_from_slice(b",\"target\":\"passgate::access\"}\n");
    }
}

/// `"bytes"`, for bytes that neither format escapes (see [`AccessLine`]).
fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

fn push_integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `duration` in milliseconds, as the log's value: nanoseconds / 10⁶.
fn millis(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1e6
}

/// Where [`push_millis`] writes the digits itself: from 100 ns (10⁻⁴ ms,
/// below which `Debug` writes an exponent) to 10¹⁵ ns (fifteen digits).
const DIGITS_BY_HAND: std::ops::Range<u128> = 100..1_000_000_000_000_000;

/// `{:?}` of [`millis`], written without `core::fmt` (its float formatting
/// was a third of the line's cost). A whole number of nanoseconds below 10¹⁵
/// has at most 15 significant digits, and so has that number over 10⁶: no
/// other number of 15 digits or fewer is as close to the `f64` it becomes, so
/// those are the shortest digits that read back as it, which `Debug` writes,
/// without an exponent from 10⁻⁴ up. Outside that range, `Debug` itself.
fn push_millis(out: &mut Vec<u8>, duration: Duration) {
    let nanos = duration.as_nanos();
    if !DIGITS_BY_HAND.contains(&nanos) {
        let _ = write!(Bytes(out), "{:?}", millis(duration));
        return;
    }
    // Below 10¹⁵: both parts fit their types.
    let whole = (nanos / 1_000_000) as u64;
    let mut fraction = (nanos % 1_000_000) as u32;
    push_integer(out, whole);
    out.push(b'.');
    if fraction == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = *b"000000";
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    let len = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
    out.extend_from_slice(&digits[..len]);
}

/// A JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(out, s);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::net::IpAddr;

    use http::{HeaderMap, HeaderValue};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::http::trace::{TRACEPARENT, TraceContext};
    use crate::telemetry::escape::tests::Buffer;

    /// What tracing-subscriber writes for `line` through passgate's layer.
    fn through_tracing(line: &AccessLine<'_>, format: LogFormat) -> String {
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(super::super::layer(format, buffer.clone(), false));
        tracing::subscriber::with_default(subscriber, || line.emit());
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    /// The line without its timestamp, which two writes cannot share.
    fn untimed(line: &str, format: LogFormat) -> String {
        match format {
            LogFormat::Text => line.split_once(' ').unwrap().1.to_owned(),
            LogFormat::Json => {
                let (head, rest) = line.split_once("\"timestamp\":\"").unwrap();
                let (stamp, tail) = rest.split_once('"').unwrap();
                assert_eq!(stamp.len(), "2026-12-01T03:04:05.123456Z".len(), "{line}");
                format!("{head}{tail}")
            }
        }
    }

    /// A client's traceparent, kept, and the trace id it gives.
    fn trace() -> TraceContext {
        let mut headers = HeaderMap::new();
        headers.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        TraceContext::of(&headers)
    }

    /// The connection of a client at `ip`.
    fn peer(ip: &str) -> PeerHeaders {
        PeerHeaders::new(ip.parse().unwrap())
    }

    fn line<'a>(
        path: &'a str,
        request_id: &'a str,
        method: &'a Method,
        trace: &'a TraceContext,
        client: &'a PeerHeaders,
    ) -> AccessLine<'a> {
        AccessLine {
            request_id,
            method,
            path,
            route: "/plain/",
            status: 200,
            upstream: "http://127.0.0.1:18080",
            fault: None,
            trace_id: trace.trace_id(),
            duration: Duration::from_nanos(523_417),
            client,
        }
    }

    #[test]
    fn lines_are_the_ones_tracing_subscriber_writes() {
        let get = Method::GET;
        let odd = Method::from_bytes(b"PURGE!").unwrap();
        let trace = trace();
        let started = TraceContext::start();
        let peers = [
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:10.0.0.1",
            "255.0.10.9",
        ]
        .map(peer);
        let mut lines = vec![
            line(
                "/plain/items",
                "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                &get,
                &trace,
                &peers[0],
            ),
            // What a client controls, hostile: quotes, backslashes, control
            // characters, the Unicode line separator, non-ASCII.
            line(
                "/a\"b\\c\n\u{1b}[2J",
                "id\"with\\quote",
                &odd,
                &started,
                &peers[1],
            ),
            line(
                "/é/\u{2028}/\u{85}",
                "tab\there\r\n",
                &get,
                &trace,
                &peers[2],
            ),
            line("", "", &get, &trace, &peers[3]),
        ];
        lines[1].status = 502;
        lines[1].fault = Some(Fault::Upstream);
        lines[1].route = "rou\"te";
        lines[1].upstream = "-";
        lines[2].trace_id = TraceId::NONE;
        lines[3].fault = Some(Fault::Client);
        for (i, nanos) in [0, 99, 12_345_678_900, u64::MAX].into_iter().enumerate() {
            lines[i].duration = Duration::from_nanos(nanos);
        }
        for format in [LogFormat::Text, LogFormat::Json] {
            for line in &lines {
                let stock = through_tracing(line, format);
                let ours = String::from_utf8(line.to_bytes(format)).unwrap();
                assert_eq!(ours.lines().count(), 1, "{ours}");
                assert!(ours.ends_with('\n'));
                assert_eq!(untimed(&ours, format), untimed(&stock, format));
            }
        }
    }

    #[test]
    fn random_lines_are_the_ones_tracing_subscriber_writes() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        // Characters from every class the formats treat apart.
        const PIECES: &[&str] = &[
            "a", "Z", "0", " ", "/", "-", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1b}",
            "\u{7f}", "\u{85}", "\u{2028}", "é", "€", "😀", "{", "}", "=", ":",
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let text = |rng: &mut StdRng| -> String {
            let len = rng.random_range(0..24);
            (0..len)
                .map(|_| PIECES[rng.random_range(0..PIECES.len())])
                .collect()
        };
        // Every character a method (a token) may hold.
        const TCHAR: &[u8] =
            b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let faults = [
            None,
            Some(Fault::Client),
            Some(Fault::Upstream),
            Some(Fault::Gateway),
        ];
        for _ in 0..500 {
            let (id, path, route, upstream) = (
                text(&mut rng),
                text(&mut rng),
                text(&mut rng),
                text(&mut rng),
            );
            let method: Vec<u8> = (0..rng.random_range(1..12))
                .map(|_| TCHAR[rng.random_range(0..TCHAR.len())])
                .collect();
            let method = Method::from_bytes(&method).unwrap();
            let trace = match rng.random_bool(0.5) {
                true => trace(),
                false => TraceContext::start(),
            };
            let octets: [u8; 16] = rng.random();
            let client = PeerHeaders::new(match rng.random_bool(0.5) {
                true => IpAddr::from([octets[0], octets[1], octets[2], octets[3]]),
                false => IpAddr::from(octets),
            });
            let mut line = line(&path, &id, &method, &trace, &client);
            line.route = &route;
            line.upstream = &upstream;
            line.fault = faults[rng.random_range(0..faults.len())];
            line.status = rng.random_range(100..600);
            let scale = rng.random_range(0..64);
            line.duration = Duration::from_nanos(rng.random_range(0..u64::MAX >> scale));
            for format in [LogFormat::Text, LogFormat::Json] {
                let stock = through_tracing(&line, format);
                let ours = String::from_utf8(line.to_bytes(format)).unwrap();
                assert_eq!(ours.lines().count(), 1, "{ours}");
                assert_eq!(untimed(&ours, format), untimed(&stock, format));
            }
        }
    }

    #[test]
    fn a_line_starts_with_the_current_time() {
        let now = || {
            let mut now = Vec::new();
            timestamp::write_now(&mut now);
            String::from_utf8(now).unwrap()
        };
        let get = Method::GET;
        let (trace, client) = (trace(), peer("127.0.0.1"));
        let before = now();
        let text = line("/", "r", &get, &trace, &client).to_bytes(LogFormat::Text);
        let text = String::from_utf8(text).unwrap();
        let after = now();
        let (stamp, _) = text.split_once(' ').unwrap();
        // Fixed width: the text orders as the times do.
        assert_eq!(stamp.len(), before.len(), "{stamp}");
        assert!(
            before.as_str() <= stamp && stamp <= after.as_str(),
            "{stamp}"
        );
    }

    #[test]
    fn durations_are_written_as_debug_writes_them() {
        let ours = |nanos: u128| {
            let mut out = Vec::new();
            let d = Duration::new(
                (nanos / 1_000_000_000) as u64,
                (nanos % 1_000_000_000) as u32,
            );
            push_millis(&mut out, d);
            (String::from_utf8(out).unwrap(), format!("{:?}", millis(d)))
        };
        let mut nanos: Vec<u128> = vec![0, 1, 99, 100, 101, 1_000, 1_000_000, 1_500_000];
        nanos.extend([
            10u128.pow(15) - 1,
            10u128.pow(15),
            10u128.pow(15) + 1,
            u128::from(u64::MAX),
        ]);
        // Every scale, with neighbours that leave long fractions.
        let mut n: u128 = 1;
        while n < 10u128.pow(17) {
            nanos.extend([n, n + 1, n + 7, n + 999, n + 123_457, n * 10 - 1]);
            n = n * 3 / 2 + 1;
        }
        nanos.extend((0..200_000u128).map(|i| i * 7_919 + 523_417));
        for n in nanos {
            let (ours, debug) = ours(n);
            assert_eq!(ours, debug, "{n} ns");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addresses: Vec<IpAddr> = (0..=255u8)
            .map(|b| IpAddr::from([b, 255 - b, b / 10, b % 100]))
            .collect();
        addresses.extend(
            ["::", "::1", "1:2:3:4:5:6:7:8"]
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok()),
        );
        for ip in addresses {
            let text = PeerHeaders::new(ip).ip_text().to_vec();
            assert_eq!(String::from_utf8(text).unwrap(), ip.to_string());
        }
    }
}
