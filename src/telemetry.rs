//! Logging: `tracing` with a `RUST_LOG`-style filter (`RUST_LOG` wins over
//! `[log] level`), text or JSON lines, written by a background thread so a
//! slow terminal never stalls a request. Secrets and tokens are never passed
//! to a log macro; the access log names the route, not the credentials.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Install the global subscriber. Keep the guard alive until exit so buffered
/// lines are flushed.
pub fn init(config: &LogConfig) -> Option<WorkerGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    // Colours only for a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.ok().map(|_| guard)
}
