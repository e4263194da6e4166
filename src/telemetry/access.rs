//! The access log's writer: requests append their lines to a bounded batch
//! that a background thread takes whole and writes. A request never waits for
//! the disk: when the batch is full the line is dropped and counted
//! ([`DropCounter`], read by `passgate_access_log_dropped_total`), and the
//! writer thread logs a warning with the count at most once per warning
//! period. The line is formatted by passgate itself ([`AccessLine`]) into a
//! buffer of the request's thread, then copied into the batch.
//!
//! A batch rather than a queue of lines: a line of its own (an allocation,
//! a channel's send and receive, a copy into the writer's buffer) cost a
//! quarter of the log's instructions (docs/benchmarks.md, the access log).

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::access_line::AccessLine;
use crate::config::LogFormat;

/// Lines a batch holds before new ones are dropped.
pub const QUEUE_LINES: usize = 8192;
/// How often, at most, the writer warns that lines were dropped.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// A batch's buffer keeps at most this much room between bursts.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Access-log lines dropped because the batch was full.
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

/// The lines written since the writer last took them.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: usize,
    /// The writer waits for a line (it is idle) and needs a wake-up.
    writer_waits: bool,
    /// Told once everything before it is written; no line is taken after it.
    stop: Option<SyncSender<()>>,
    /// False once stopped: lines are dropped and counted.
    open: bool,
}

/// The batch and the writer's wake-up, shared by every request's thread.
struct Shared {
    batch: Mutex<Batch>,
    wake: Condvar,
    capacity: usize,
}

impl Shared {
    fn batch(&self) -> MutexGuard<'_, Batch> {
        // A panic while the lock was held left whole lines at worst.
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The access log's batch: each line is taken whole, or dropped and counted;
/// a request waits at most for another line's copy, never for the disk.
#[derive(Clone)]
pub struct AccessWriter {
    shared: Arc<Shared>,
    dropped: DropCounter,
}

impl AccessWriter {
    /// Start the writer thread over `out`, with batches of at most `capacity` lines.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        capacity: usize,
        warn_every: Duration,
    ) -> std::io::Result<(AccessWriter, AccessGuard)> {
        let shared = Arc::new(Shared {
            batch: Mutex::new(Batch {
                open: true,
                ..Batch::default()
            }),
            wake: Condvar::new(),
            capacity,
        });
        let dropped = DropCounter::default();
        let (writer_shared, counter) = (Arc::clone(&shared), dropped.clone());
        std::thread::Builder::new()
            .name("passgate-access-log".into())
            .spawn(move || write_batches(&writer_shared, out, &counter, warn_every))?;
        let guard = AccessGuard(Arc::clone(&shared));
        Ok((AccessWriter { shared, dropped }, guard))
    }

    /// The count of dropped lines.
    pub fn dropped(&self) -> DropCounter {
        self.dropped.clone()
    }

    /// Add one whole line to the batch, or drop and count it.
    pub fn queue(&self, line: &[u8]) {
        let mut batch = self.shared.batch();
        if !batch.open || batch.lines >= self.shared.capacity {
            drop(batch);
            self.dropped.add();
            return;
        }
        batch.bytes.extend_from_slice(line);
        batch.lines += 1;
        let wake = std::mem::take(&mut batch.writer_waits);
        drop(batch);
        if wake {
            self.shared.wake.notify_one();
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

thread_local! {
    /// The buffer each thread formats its lines in, kept between lines.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Send this process's access lines to `writer` in `format`, or nowhere when
/// not `enabled`. The first call wins.
pub fn install(writer: AccessWriter, format: LogFormat, enabled: bool) {
    let _ = SINK.set(Sink {
        writer,
        format,
        enabled,
    });
}

/// Log one request's line: formatted and batched when a writer is
/// [installed](install), else through `tracing` (to a test's subscriber).
pub fn log(line: &AccessLine<'_>) {
    match SINK.get() {
        Some(sink) if sink.enabled => format_and_queue(sink, line),
        Some(_) => {}
        None => line.emit(),
    }
}

/// Format `line` in the thread's buffer and add it to the batch; in a buffer
/// of its own where the thread's is gone (the thread is ending).
fn format_and_queue(sink: &Sink, line: &AccessLine<'_>) {
    let reused = LINE.try_with(|buffer| {
        let Ok(mut buffer) = buffer.try_borrow_mut() else {
            return false;
        };
        buffer.clear();
        line.write(sink.format, &mut buffer);
        sink.writer.queue(&buffer);
        // A very long path left a large buffer: give it back.
        buffer.shrink_to(KEEP_LINE);
        true
    });
    if reused != Ok(true) {
        sink.writer.queue(&line.to_bytes(sink.format));
    }
}

/// A thread's line buffer keeps at most this much room.
const KEEP_LINE: usize = 4096;

/// Keep alive until exit: dropping it writes out what is batched (waiting at
/// most a second for a stuck output) and stops the thread; lines after it
/// are dropped and counted.
pub struct AccessGuard(Arc<Shared>);

impl std::fmt::Debug for AccessGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessGuard")
    }
}

impl Drop for AccessGuard {
    fn drop(&mut self) {
        let (done, wait) = sync_channel(1);
        {
            let mut batch = self.0.batch();
            batch.open = false;
            batch.stop = Some(done);
        }
        self.0.wake.notify_one();
        let _ = wait.recv_timeout(Duration::from_secs(1));
    }
}

/// While lines keep coming, the writer takes them this often instead of
/// being woken for each one: a wake-up per line (a futex call by the request's
/// thread, a context switch for the writer's) cost more than the line itself
/// (docs/benchmarks.md, the access log). At most this long a delay for a line.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

fn write_batches<W: Write>(
    shared: &Shared,
    mut out: W,
    dropped: &DropCounter,
    warn_every: Duration,
) {
    let mut taken = Vec::new();
    let mut reported = 0;
    let mut last_warning = Instant::now();
    loop {
        let stop = {
            let mut batch = shared.batch();
            if batch.lines == 0 && batch.stop.is_none() {
                // Idle: sleep until a line comes (or it is time to warn).
                batch.writer_waits = true;
                batch = shared
                    .wake
                    .wait_timeout(batch, warn_every)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                batch.writer_waits = false;
            }
            std::mem::swap(&mut batch.bytes, &mut taken);
            batch.lines = 0;
            batch.stop.take()
        };
        let busy = !taken.is_empty();
        if busy {
            let _ = out.write_all(&taken);
            let _ = out.flush();
            taken.clear();
            taken.shrink_to(KEEP_CAPACITY);
        }
        if let Some(done) = stop {
            let _ = done.send(());
            return;
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
        if busy {
            // Busy: let the next lines gather before taking them.
            std::thread::sleep(POLL_EVERY);
        }
    }
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

    /// An output that records every write.
    fn recording() -> (Gated, Arc<Mutex<Vec<u8>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = channel();
        open.send(()).unwrap();
        let out = Gated {
            open: gate,
            entered: channel().0,
            opened: false,
            written: Arc::clone(&written),
        };
        (out, written)
    }

    fn line(w: &AccessWriter, n: usize) {
        w.queue(format!("line {n}\n").as_bytes());
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
        // Only the batch's 4 places took lines while the output was stuck.
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
    fn lines_from_many_threads_stay_whole_and_none_is_lost() {
        let (out, written) = recording();
        let (w, guard) = AccessWriter::start(out, 1 << 16, Duration::from_secs(60)).unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let w = w.clone();
                scope.spawn(move || {
                    for n in 0..2000 {
                        w.queue(format!("thread {t} line {n}\n").as_bytes());
                        if n % 500 == 0 {
                            // Let the writer take a batch in between.
                            std::thread::sleep(POLL_EVERY * 2);
                        }
                    }
                });
            }
        });
        drop(guard);
        assert_eq!(w.dropped().get(), 0);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, n) = line
                .strip_prefix("thread ")
                .and_then(|l| l.split_once(" line "))
                .unwrap_or_else(|| panic!("not a whole line: {line:?}"));
            let t: usize = t.parse().unwrap();
            // Each thread's lines in its order, none missing.
            assert_eq!(n.parse::<usize>().unwrap(), next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4]);
    }

    #[test]
    fn lines_after_the_guard_are_dropped_and_counted() {
        let (out, _) = recording();
        let (w, guard) = AccessWriter::start(out, 64, Duration::from_secs(60)).unwrap();
        line(&w, 0);
        drop(guard);
        line(&w, 1);
        assert_eq!(w.dropped().get(), 1);
    }

    #[test]
    fn every_line_is_written_when_the_output_keeps_up() {
        let (out, written) = recording();
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
