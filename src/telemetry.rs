//! Logging: `tracing` with a `RUST_LOG`-style filter (`RUST_LOG` wins over
//! `[log] level`), text or JSON lines, written by a background thread. Its
//! queue drops nothing, so a writer that cannot keep up (a slow terminal or
//! pipe) slows the requests that log once the queue is full. Secrets and tokens are never passed
//! to a log macro; the access log names the route, not the credentials.
//! Client-supplied values cannot forge a line: the text format escapes control
//! characters in every field ([`EscapedFields`]), and JSON escapes them itself.

pub mod access;
mod chain;
mod escape;
pub mod metrics;
mod timestamp;

pub use access::DropCounter;
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

/// The target of the access-log lines (`service.rs`).
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
    let (access_layer, access_guard, dropped) = match access::AccessWriter::start(
        std::io::stdout(),
        access::QUEUE_LINES,
        access::WARN_EVERY,
    ) {
        Ok((w, g)) => {
            let dropped = w.dropped();
            let l = layer(config.format, w, false)
                .with_filter(filter_fn(is_access))
                .with_filter(filter());
            (Some(l), Some(g), dropped)
        }
        Err(e) => {
            eprintln!("cannot start the access log writer: {e}");
            (None, None, DropCounter::default())
        }
    };
    let guard = tracing_subscriber::registry()
        .with(main)
        .with(access_layer)
        .try_init()
        .ok()
        .map(|_| LogGuard {
            _general: general,
            _access: access_guard,
        });
    (guard, dropped)
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
