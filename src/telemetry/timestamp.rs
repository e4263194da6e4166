//! The logs' timestamp: RFC 3339 in UTC with microseconds
//! (`2026-12-01T01:13:36.463129Z`), as tracing-subscriber's `SystemTime`
//! writes it. Each thread keeps the text of the current second, so that a
//! line formats only its microseconds: the date and time of day cost as much
//! as the rest of an access-log line's values (docs/benchmarks.md).

use std::cell::Cell;
use std::fmt::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The timer for passgate's log layers (`telemetry::layer`).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTime;

/// `YYYY-MM-DDTHH:MM:SS.`, the part of a timestamp one second shares.
const SECOND_LEN: usize = 20;

/// The first second of year 10000: from there on the year has five digits,
/// which the cached text does not hold.
const YEAR_10000: u64 = 253_402_300_800;

thread_local! {
    /// The last second formatted on this thread, and its text.
    static SECOND: Cell<(u64, [u8; SECOND_LEN])> = const { Cell::new((u64::MAX, [0; SECOND_LEN])) };
}

impl FormatTime for LogTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match crate::clock::log_time() {
            Some(since) if since.as_secs() < YEAR_10000 => write_time(w, since),
            // Before 1970 or after 9999: rare enough to format in full.
            _ => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// Append the current time to `out`, as [`LogTime`] writes it in a log line
/// (the access log's own formatter, `telemetry/access_line.rs`).
pub fn write_now(out: &mut Vec<u8>) {
    match crate::clock::log_time() {
        Some(since) if since.as_secs() < YEAR_10000 => out.extend_from_slice(&time_text(since)),
        _ => {
            let mut text = String::new();
            let _ = LogTime.format_time(&mut Writer::new(&mut text));
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
const TIME_LEN: usize = SECOND_LEN + 7;

/// Write the timestamp `since` the Unix epoch (before year 10000).
fn write_time(w: &mut impl Write, since: Duration) -> fmt::Result {
    // Digits and punctuation only: always UTF-8.
    w.write_str(std::str::from_utf8(&time_text(since)).map_err(|_| fmt::Error)?)
}

/// The timestamp `since` the Unix epoch (before year 10000).
fn time_text(since: Duration) -> [u8; TIME_LEN] {
    let secs = since.as_secs();
    let second = SECOND.with(|cached| {
        let (at, text) = cached.get();
        if at == secs {
            return text;
        }
        let text = second_text(secs);
        cached.set((secs, text));
        text
    });
    let mut text = [0; TIME_LEN];
    text[..SECOND_LEN].copy_from_slice(&second);
    let mut micros = since.subsec_micros();
    for digit in text[SECOND_LEN..TIME_LEN - 1].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    text[TIME_LEN - 1] = b'Z';
    text
}

/// `YYYY-MM-DDTHH:MM:SS.` for the second `secs` after the Unix epoch.
fn second_text(secs: u64) -> [u8; SECOND_LEN] {
    let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
    let mut text = [0u8; SECOND_LEN];
    // `YYYY-MM-DDTHH:MM:SSZ`: the same length, `.` where the `Z` is.
    let written = whole.to_string();
    let bytes = written.as_bytes();
    let n = bytes.len().min(SECOND_LEN);
    text[..n].copy_from_slice(&bytes[..n]);
    text[SECOND_LEN - 1] = b'.';
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(since: Duration) -> String {
        let mut out = String::new();
        let _ = write_time(&mut out, since);
        out
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (1_796_087_616, 463_129_000, "2026-12-01T01:13:36.463129Z"),
            // The same second again (from the cache), then the next.
            (1_796_087_616, 999_999_999, "2026-12-01T01:13:36.999999Z"),
            (1_796_087_617, 1_000, "2026-12-01T01:13:37.000001Z"),
            (1_709_164_800, 5_000, "2024-02-29T00:00:00.000005Z"),
            (YEAR_10000 - 1, 0, "9999-12-31T23:59:59.000000Z"),
        ];
        for (secs, nanos, want) in cases {
            assert_eq!(ours(Duration::new(secs, nanos)), want, "{secs}.{nanos}");
        }
    }

    #[test]
    fn the_timestamp_is_tracing_subscriber_s() {
        let stock = || {
            let mut s = String::new();
            let _ = tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut s));
            s
        };
        let mut compared = false;
        // The two readings of the clock must fall in one second.
        for _ in 0..100 {
            let (before, mine, after) = {
                let before = stock();
                let mut mine = String::new();
                let _ = LogTime.format_time(&mut Writer::new(&mut mine));
                (before, mine, stock())
            };
            if before[..SECOND_LEN] != after[..SECOND_LEN] {
                continue;
            }
            assert_eq!(mine[..SECOND_LEN], before[..SECOND_LEN]);
            assert_eq!(mine.len(), before.len(), "{mine} against {before}");
            assert!(before <= mine && mine <= after, "{before} {mine} {after}");
            compared = true;
            break;
        }
        assert!(compared);
    }
}
