//! Logging: `tracing` with a `RUST_LOG`-style filter (`RUST_LOG` wins over
//! `[log] level`), text or JSON lines, written by a background thread. Its
//! queue drops nothing, so a writer that cannot keep up (a slow terminal or
//! pipe) slows the requests that log once the queue is full. The access log
//! is separate: passgate formats its lines itself ([`AccessLine`]) and batches
//! them for a writer of their own that drops and counts rather than waits
//! ([`access`]). Secrets and tokens are never passed to a log macro; the
//! access log names the route, not the credentials. Client-supplied values
//! cannot forge a line: the text format escapes control characters in every
//! field ([`EscapedFields`]), and JSON escapes them itself.

pub mod access;
mod access_line;
mod chain;
mod escape;
pub mod metrics;
mod timestamp;

pub use access::DropCounter;
pub use access_line::AccessLine;
pub use chain::ErrorChain;
pub use escape::EscapedFields;
pub use timestamp::LogTime;

use tracing::Subscriber;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

/// The target of the access-log lines (`telemetry/access_line.rs`).
pub const ACCESS_TARGET: &str = "passgate::access";

/// What must stay alive until exit so queued lines are written out.
#[derive(Debug)]
pub struct LogGuard {
    _general: WorkerGuard,
    _access: Option<access::AccessGuard>,
}

/// Install the global subscriber. Keep the guard alive until exit so buffered
/// lines are flushed.
pub fn init(config: &LogConfig) -> Option<LogGuard> {
    init_counted(config).0
}

/// Like [`init`], also returning the access log's count of dropped lines (for
/// `passgate_access_log_dropped_total`; see `Metrics::set_log_drops`).
pub fn init_counted(config: &LogConfig) -> (Option<LogGuard>, DropCounter) {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let (writer, general) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    // Colours only for a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let is_access = |m: &tracing::Metadata<'_>| m.target() == ACCESS_TARGET;
    let main = layer(config.format, writer, ansi)
        .with_filter(filter_fn(move |m| !is_access(m)))
        .with_filter(filter());
    // The access log does not go through `tracing`: passgate formats its
    // lines itself (`telemetry/access_line.rs`), as the layer would have.
    let (access_guard, dropped) = match access::AccessWriter::start(
        std::io::stdout(),
        access::QUEUE_LINES,
        access::WARN_EVERY,
    ) {
        Ok((w, g)) => {
            let dropped = w.dropped();
            access::install(w, config.format, access_enabled(filter()));
            (Some(g), dropped)
        }
        Err(e) => {
            eprintln!("cannot start the access log writer: {e}");
            (None, DropCounter::default())
        }
    };
    let guard = tracing_subscriber::registry()
        .with(main)
        .try_init()
        .ok()
        .map(|_| LogGuard {
            _general: general,
            _access: access_guard,
        });
    (guard, dropped)
}

/// Whether `filter` lets the access log's lines through: `info` events with
/// the target [`ACCESS_TARGET`] (`RUST_LOG=warn` turns them off,
/// `RUST_LOG=warn,passgate::access=info` keeps them).
fn access_enabled(filter: EnvFilter) -> bool {
    let subscriber = tracing_subscriber::registry().with(filter);
    tracing::subscriber::with_default(
        subscriber,
        || tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO),
    )
}

/// The formatting layer for `format`, writing to `writer`: what [`init`]
/// installs, and what a test installs over a buffer to read the lines back.
pub fn layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_timer(LogTime);
    match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.fmt_fields(EscapedFields).with_ansi(ansi).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_decides_whether_access_lines_are_written() {
        for (filter, on) in [
            ("info", true),
            ("debug", true),
            ("warn", false),
            ("warn,passgate::access=info", true),
            ("info,passgate=warn", false),
            ("info,passgate::access=off", false),
            ("passgate::proxy=debug", false),
        ] {
            assert_eq!(access_enabled(EnvFilter::new(filter)), on, "{filter}");
        }
    }
}
