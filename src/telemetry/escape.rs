//! Log values no client can turn into extra lines.
//!
//! A username, a path or a header value can hold a newline, a carriage return
//! or an ANSI escape; printed raw into the text log it forges a line or
//! repaints a terminal. [`EscapedFields`] formats fields as tracing-subscriber's
//! default text format does, with every control character (and the Unicode
//! line and paragraph separators) in every value, the message included,
//! written as a Rust escape (`\n`, `\u{1b}`). It sits in the formatter, so every
//! `tracing` call, present or future, is covered without escaping at call
//! sites. The JSON format needs no help here: serde_json escapes control
//! characters inside its strings.

use std::error::Error;
use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

use super::ErrorChain;

/// Field formatting for the text format (`fmt::layer().fmt_fields(EscapedFields)`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapingVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        match target.has_ansi_escapes() {
            true => EscapingVisitor::Styled(DefaultVisitor::new(target, true)),
            false => EscapingVisitor::Plain {
                writer: target,
                is_empty: true,
                result: Ok(()),
            },
        }
    }
}

/// tracing-subscriber's default field format, fed escaped values. Without
/// colours (a log file, and always the access log), the fields are written
/// here as tracing-subscriber's `DefaultVisitor` writes them, without its
/// styling calls, which cost as much as the line's values (docs/benchmarks.md).
pub enum EscapingVisitor<'a> {
    /// For a terminal: tracing-subscriber's own visitor, with its colours.
    Styled(DefaultVisitor<'a>),
    /// `name=value`, space-separated, the message bare: what `DefaultVisitor`
    /// writes without colours.
    Plain {
        writer: Writer<'a>,
        is_empty: bool,
        result: fmt::Result,
    },
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, Value::Debug(value));
    }

    fn write(&mut self, field: &Field, value: Value<'_>) {
        let (writer, is_empty, result) = match self {
            Self::Styled(visitor) => {
                return match value {
                    Value::Quoted(s) => visitor.record_debug(field, &Quoted(s)),
                    Value::Debug(v) => visitor.record_debug(field, v),
                };
            }
            Self::Plain {
                writer,
                is_empty,
                result,
            } => (writer, is_empty, result),
        };
        let name = field.name();
        // As `DefaultVisitor`: `log.*` fields are the `log` crate's metadata,
        // already shown; `r#` is a raw identifier's prefix.
        if result.is_err() || name.starts_with("log.") {
            return;
        }
        if *is_empty {
            *is_empty = false;
        } else {
            *result = writer.write_char(' ');
        }
        *result = write_field(writer, name, value);
    }
}

/// `name=value` (the message: its value alone), written piece by piece:
/// `write!` would run `core::fmt`'s machinery for each field.
fn write_field(writer: &mut Writer<'_>, name: &str, value: Value<'_>) -> fmt::Result {
    if name != "message" {
        writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
        writer.write_char('=')?;
    }
    match value {
        Value::Quoted(s) => write_quoted(writer, s),
        Value::Debug(v) => write!(writer, "{v:?}"),
    }
}

/// A field's value: a [plain](is_plain) string, or anything else.
#[derive(Clone, Copy)]
enum Value<'v> {
    Quoted(&'v str),
    Debug(&'v dyn fmt::Debug),
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, &Escaped(&format_args!("{value}")));
        } else if is_plain(value) {
            // What `{:?}` would write, without its escaping pass or ours:
            // most values (ids, routes, names) need neither, and the access
            // log writes several per request (docs/benchmarks.md).
            self.write(field, Value::Quoted(value));
        } else {
            self.field(field, &Escaped(&value));
        }
    }

    // Numbers and booleans hold nothing to escape.
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, &value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let chain = ErrorChain(value);
        self.field(field, &Escaped(&format_args!("{chain}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &Escaped(value));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        match self {
            Self::Styled(visitor) => visitor.finish(),
            Self::Plain { result, .. } => result,
        }
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Styled(visitor) => visitor.writer(),
            Self::Plain { writer, .. } => writer,
        }
    }
}

/// Append a `&str` field's value as the text format writes it (`name = value`):
/// between quotes, escaped by `Debug` and then for the line. For the access
/// log's own formatter (`telemetry/access_line.rs`).
pub(super) fn push_str_value(out: &mut Vec<u8>, value: &str) {
    if is_plain(value) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(Bytes(out), "{:?}", Escaped(&value));
    }
}

/// Append a `Display` field's value as the text format writes it
/// (`name = %value`): as it is, with what could break a line escaped.
pub(super) fn push_display_value(out: &mut Vec<u8>, value: &str) {
    if is_printable(value) {
        out.extend_from_slice(value.as_bytes());
    } else {
        let _ = write!(Bytes(out), "{:?}", Escaped(&format_args!("{value}")));
    }
}

/// `fmt::Write` over a line's bytes.
pub(super) struct Bytes<'a>(pub(super) &'a mut Vec<u8>);

impl Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Whether `{:?}` writes `value` as it is, between quotes: printable ASCII
/// without `"` or `\`.
fn is_plain(value: &str) -> bool {
    !value_has(value, Unwanted::QuotesToo)
}

/// Whether `value` is printable ASCII, which a `Display` field shows as it is.
fn is_printable(value: &str) -> bool {
    !value_has(value, Unwanted::Unprintable)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unwanted {
    /// Control characters and anything not ASCII.
    Unprintable,
    /// Those, `"` and `\`.
    QuotesToo,
}

/// Whether `value` holds an unwanted byte, looked for eight bytes at a step:
/// the access log looks at each of its values (ids, routes, addresses), and
/// a byte at a time cost more than writing them.
fn value_has(value: &str, unwanted: Unwanted) -> bool {
    let bytes = value.as_bytes();
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        unwanted_bytes(u64::from_le_bytes(word), unwanted)
    };
    let found = match bytes.len() {
        // Short: filled out with spaces, which are wanted.
        0..8 => {
            let mut padded = [b' '; 8];
            for (to, &b) in padded.iter_mut().zip(bytes) {
                *to = b;
            }
            unwanted_bytes(u64::from_le_bytes(padded), unwanted)
        }
        // The whole words, then the last eight bytes, which may look at some
        // again: no copy of a remainder.
        len => (0..len / 8).fold(word(len - 8), |found, i| found | word(i * 8)),
    };
    found & HIGH_BITS != 0
}

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = ONES << 7;

/// A word whose high bits (`& HIGH_BITS`) are not all clear when one of the
/// eight bytes in `x` is unwanted. Each test is exact about whether some byte
/// matches (a borrow or a carry can only mark bytes above one that does).
fn unwanted_bytes(x: u64, unwanted: Unwanted) -> u64 {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let above_tilde = x.wrapping_add(ONES) | x;
    let mut found = below_space | above_tilde;
    if unwanted == Unwanted::QuotesToo {
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
        found |= zero_byte(x ^ (ONES * u64::from(b'"'))) | zero_byte(x ^ (ONES * u64::from(b'\\')));
    }
    found
}

/// A [plain](is_plain) string's `Debug` output, written directly.
struct Quoted<'a>(&'a str);

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_quoted(f, self.0)
    }
}

/// `"value"`, for a [plain](is_plain) value.
fn write_quoted(w: &mut impl Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    w.write_str(value)?;
    w.write_char('"')
}

/// A value whose `Debug` output has its control characters escaped.
struct Escaped<'a>(&'a dyn fmt::Debug);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaper(f), "{:?}", self.0)
    }
}

/// Writes through to `f`, escaping what could break or colour a line.
struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let tail = &rest[at..];
            let Some(c) = tail.chars().next() else { break };
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &tail[c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::config::LogFormat;

    /// A log output tests read back (`telemetry/access_line.rs` too).
    #[derive(Clone, Default)]
    pub(in crate::telemetry) struct Buffer(pub(in crate::telemetry) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad\nthing")]
    struct Bad(#[source] io::Error);

    /// What `format` writes for one event carrying hostile values.
    fn logged(format: LogFormat, ansi: bool) -> String {
        use tracing_subscriber::layer::SubscriberExt;
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(super::super::layer(format, buffer.clone(), ansi));
        tracing::subscriber::with_default(subscriber, || {
            let user = "bob\nFAKE LINE";
            let header = "agent\r\u{1b}[2J\u{85}\u{2028}x";
            let error = Bad(io::Error::other("inner\nline"));
            let span = tracing::info_span!("req", path = %"/a\nb");
            let _entered = span.enter();
            tracing::warn!(
                identifier = %user,
                user_agent = header,
                plain = "GET /a?b=c",
                quoted = "say \"hi\" \\ bye",
                status = 200u16,
                delta = -3i64,
                ms = 1.5f64,
                cached = true,
                debugged = ?user,
                error = &error as &dyn Error,
                "login for {user}\tfailed"
            );
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn text_lines_cannot_be_forged() {
        for ansi in [false, true] {
            let text = logged(LogFormat::Text, ansi);
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.ends_with('\n'));
            assert!(
                !text.contains('\u{85}') && !text.contains('\u{2028}'),
                "{text}"
            );
            assert!(!text.contains("\u{1b}[2J"), "{text}");
            if ansi {
                continue; // the formatter's own colour codes sit between names and values
            }
            assert!(!text.contains('\u{1b}'), "{text}");
            for want in [
                r"identifier=bob\nFAKE LINE",
                r#"user_agent="agent\r\u{1b}[2J\u{85}\u{2028}x""#,
                r#"debugged="bob\nFAKE LINE""#,
                r"error=bad\nthing: inner\nline",
                r"login for bob\nFAKE LINE\tfailed",
                r"path=/a\nb",
                r#"plain="GET /a?b=c""#,
                r#"quoted="say \"hi\" \\ bye""#,
                "status=200 delta=-3 ms=1.5 cached=true",
            ] {
                assert!(text.contains(want), "{want} in {text}");
            }
        }
    }

    #[test]
    fn plain_strings_are_written_as_debug_writes_them() {
        let every_ascii: String = (b' '..=b'~').map(char::from).collect();
        let plain = every_ascii.replace(['"', '\\'], "");
        for s in ["", "GET", "/plain/items?x=1", "a b", "it's", plain.as_str()] {
            assert!(is_plain(s), "{s:?}");
            assert_eq!(format!("{:?}", Quoted(s)), format!("{s:?}"), "{s}");
        }
        for s in ["a\"b", "a\\b", "a\nb", "é", "\u{7f}", every_ascii.as_str()] {
            assert!(!is_plain(s), "{s:?}");
        }
        // Each byte in each place of strings of 0 to 19 bytes, against a
        // byte-at-a-time reference.
        let reference = |s: &[u8], quotes: bool| {
            s.iter()
                .all(|&b| matches!(b, b' '..=b'~') && !(quotes && (b == b'"' || b == b'\\')))
        };
        for len in 1..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    // Not UTF-8 on its own above 0x7f: the byte after a valid lead.
                    let text = match b {
                        0..=0x7f => String::from_utf8(text).unwrap(),
                        _ => String::from_utf8_lossy(&text).into_owned(),
                    };
                    let bytes = text.as_bytes();
                    assert_eq!(is_plain(&text), reference(bytes, true), "{text:?}");
                    assert_eq!(is_printable(&text), reference(bytes, false), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn without_colours_fields_are_written_as_tracing_subscriber_writes_them() {
        use tracing_subscriber::layer::SubscriberExt;
        // Values with nothing to escape: the line must be tracing-subscriber's own.
        let event = || {
            let span = tracing::info_span!("req", path = %"/a/b", n = 3u8);
            let _entered = span.enter();
            tracing::warn!(
                target: "passgate::access",
                request_id = "abc123",
                method = %"GET",
                r#type = "x",
                status = 200u16,
                delta = -3i64,
                ms = 1.25f64,
                cached = false,
                shown = ?Some("v"),
                "served {} in {}",
                "it",
                "time"
            );
            tracing::info!(only = 1u8);
        };
        let ours = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(super::super::layer(
            LogFormat::Text,
            ours.clone(),
            false,
        ));
        tracing::subscriber::with_default(subscriber, event);
        let stock = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(stock.clone())
                .with_ansi(false),
        );
        tracing::subscriber::with_default(subscriber, event);
        let lines = |b: &Buffer| {
            let bytes = b.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes)
                .lines()
                // Without the timestamp, which differs.
                .map(|l| {
                    l.split_once(' ')
                        .map(|(_, rest)| rest.to_owned())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        let (ours, stock) = (lines(&ours), lines(&stock));
        assert_eq!(ours.len(), 2, "{ours:?}");
        assert_eq!(ours, stock);
    }

    #[test]
    fn json_lines_keep_the_value_in_one_line() {
        let text = logged(LogFormat::Json, false);
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap_or_default();
        assert_eq!(line["identifier"], "bob\nFAKE LINE", "{text}");
        assert_eq!(
            line["user_agent"], "agent\r\u{1b}[2J\u{85}\u{2028}x",
            "{text}"
        );
    }
}
