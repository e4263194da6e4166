//! The access log's writer: one line per request goes through a bounded
//! queue to a background thread. A request never waits for the disk: when
//! the queue is full the line is dropped and counted ([`DropCounter`], read by
//! `passgate_access_log_dropped_total`), and the writer thread logs a warning
//! with the count at most once per warning period. The line is formatted by
//! passgate itself ([`AccessLine`]), straight into the buffer that is queued.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::access_line::AccessLine;
use crate::config::LogFormat;

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;
/// How often, at most, the writer warns that lines were dropped.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// Access-log lines dropped because the queue was full.
#[derive(Debug, Clone, Default)]
pub struct DropCounter(Arc<AtomicU64>);

impl DropCounter {
    /// Lines dropped so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

enum Msg {
    Line(Vec<u8>),
    /// Write what is queued, flush, answer, and stop.
    Stop(SyncSender<()>),
}

/// The access log's queue: each line is queued whole, or dropped and
/// counted; it never blocks.
#[derive(Clone)]
pub struct AccessWriter {
    queue: SyncSender<Msg>,
    dropped: DropCounter,
}

impl AccessWriter {
    /// Start the writer thread over `out`, with a queue of `capacity` lines.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        capacity: usize,
        warn_every: Duration,
    ) -> std::io::Result<(AccessWriter, AccessGuard)> {
        let (queue, lines) = sync_channel(capacity);
        let dropped = DropCounter::default();
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("passgate-access-log".into())
            .spawn(move || write_lines(lines, out, &counter, warn_every))?;
        let guard = AccessGuard(queue.clone());
        Ok((AccessWriter { queue, dropped }, guard))
    }

    /// The count of dropped lines.
    pub fn dropped(&self) -> DropCounter {
        self.dropped.clone()
    }

    /// Queue one whole line, or drop and count it; never blocks.
    pub fn queue(&self, line: Vec<u8>) {
        match self.queue.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.add(),
        }
    }
}

impl std::fmt::Debug for AccessWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessWriter")
            .field("dropped", &self.dropped.get())
            .finish()
    }
}

/// Where [`log`] sends lines: set once, by `telemetry::init`.
struct Sink {
    writer: AccessWriter,
    format: LogFormat,
    /// Whether the log filter (`[log] level`, `RUST_LOG`) lets the access
    /// log's `info` lines through, as it did when they were `tracing` events.
    enabled: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Send this process's access lines to `writer` in `format`, or nowhere when
/// not `enabled`. The first call wins.
pub fn install(writer: AccessWriter, format: LogFormat, enabled: bool) {
    let _ = SINK.set(Sink {
        writer,
        format,
        enabled,
    });
}

/// Log one request's line: formatted and queued when a writer is
/// [installed](install), else through `tracing` (to a test's subscriber).
pub fn log(line: &AccessLine<'_>) {
    match SINK.get() {
        Some(sink) if sink.enabled => sink.writer.queue(line.to_bytes(sink.format)),
        Some(_) => {}
        None => line.emit(),
    }
}

/// Keep alive until exit: dropping it writes out what is queued (waiting at
/// most a second for a stuck output) and stops the thread.
#[derive(Debug)]
pub struct AccessGuard(SyncSender<Msg>);

impl Drop for AccessGuard {
    fn drop(&mut self) {
        let (done, wait) = sync_channel(1);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut stop = Msg::Stop(done);
        // A blocking send could hang on a stuck output; retry until the deadline.
        loop {
            match self.0.try_send(stop) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    stop = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// While lines keep coming, the writer looks for them this often instead of
/// being woken for each one: a wake-up per line (a futex call by the request's
/// thread, a context switch for the writer's) cost more than the line itself
/// (docs/benchmarks.md, the access log). At most this long a delay for a line.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

fn write_lines<W: Write>(
    lines: Receiver<Msg>,
    out: W,
    dropped: &DropCounter,
    warn_every: Duration,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut reported = 0;
    let mut last_warning = Instant::now();
    loop {
        // Idle: sleep until a line comes (or it is time to warn).
        let first = match lines.recv_timeout(warn_every) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Busy: write what is queued, then look again every POLL_EVERY
        // until a look finds nothing.
        let mut next = first;
        while next.is_some() {
            while let Some(msg) = next {
                match msg {
                    Msg::Line(line) => {
                        let _ = out.write_all(&line);
                    }
                    Msg::Stop(done) => {
                        let _ = out.flush();
                        let _ = done.send(());
                        return;
                    }
                }
                next = lines.try_recv().ok();
            }
            let _ = out.flush();
            std::thread::sleep(POLL_EVERY);
            next = lines.try_recv().ok();
        }
        let total = dropped.get();
        if total > reported && last_warning.elapsed() >= warn_every {
            tracing::warn!(
                dropped = total - reported,
                total,
                "access log lines dropped: the log output is slower than the traffic"
            );
            reported = total;
            last_warning = Instant::now();
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::{Receiver, channel};

    /// An output that writes nothing until `open` is sent, then records.
    struct Gated {
        open: Receiver<()>,
        /// Told when the thread first writes (and is about to be stuck).
        entered: std::sync::mpsc::Sender<()>,
        opened: bool,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !self.opened {
                let _ = self.entered.send(());
                let _ = self.open.recv();
                self.opened = true;
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(w: &AccessWriter, n: usize) {
        w.queue(format!("line {n}\n").into_bytes());
    }

    #[test]
    fn a_stuck_output_drops_and_counts_instead_of_blocking() {
        let (open, gate) = channel();
        let (entered_tx, entered) = channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let out = Gated {
            open: gate,
            entered: entered_tx,
            opened: false,
            written: Arc::clone(&written),
        };
        let (w, guard) = AccessWriter::start(out, 4, Duration::from_secs(60)).unwrap();
        // The first line gets the writer thread stuck in the output.
        line(&w, 0);
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        let started = Instant::now();
        for n in 1..1000 {
            line(&w, n);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a full queue blocked"
        );
        // Only the queue's 4 places took lines while the output was stuck.
        let dropped = w.dropped().get();
        assert_eq!(dropped, 1000 - 1 - 4, "dropped {dropped}");
        open.send(()).unwrap();
        drop(guard);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, 1000 - dropped);
        assert_eq!(lines[0], "line 0");
        // Lines that made it are whole and in order.
        let numbers: Vec<usize> = lines
            .iter()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn every_line_is_written_when_the_output_keeps_up() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = channel();
        open.send(()).unwrap();
        let out = Gated {
            open: gate,
            entered: channel().0,
            opened: false,
            written: Arc::clone(&written),
        };
        let (w, guard) = AccessWriter::start(out, 64, Duration::from_secs(60)).unwrap();
        for n in 0..50 {
            line(&w, n);
        }
        drop(guard);
        assert_eq!(w.dropped().get(), 0);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 50);
        assert!(text.ends_with("line 49\n"));
    }
}
