//! SQLite off the async runtime. One writer thread owns the connection that
//! writes; a few reader threads own read-only connections (WAL lets them read
//! while the writer commits). Calls wait in bounded queues: a full queue makes
//! the calling task wait, never a runtime thread, and never grows without end.
//!
//! A call is a closure over the thread's [`SqliteDb`]; its answer comes back
//! on a oneshot channel. A closure that panics is caught: that caller gets
//! [`StoreError::Stopped`], the thread goes on serving the others.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::sqlite::SqliteDb;

type Job = Box<dyn FnOnce(&SqliteDb) + Send>;

/// The queues to the store's threads. When this is dropped the queues
/// close, the threads finish what was queued, and the drop waits for them:
/// their connections are closed (the WAL checkpointed into the file)
/// before a short-lived command exits.
#[derive(Debug)]
pub(super) struct Lanes {
    writer: mpsc::Sender<Job>,
    /// `None` when there are no reader connections (an in-memory store):
    /// reads then queue behind the writes.
    readers: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Readers first, the writer last: SQLite checkpoints the WAL into
        // the file when the last connection closes, and only a connection
        // that may write can. (The writer is `threads[0]`.)
        self.readers = None;
        let mut threads = std::mem::take(&mut self.threads);
        let writer = (!threads.is_empty()).then(|| threads.remove(0));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a store reader thread panicked while closing");
            }
        }
        // Close the writer's queue: a sender whose receiver is gone takes
        // the place of the real one, which drops.
        let (closed, _) = mpsc::channel(1);
        self.writer = closed;
        if let Some(thread) = writer
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked while closing");
        }
    }
}

impl Lanes {
    /// Start the writer thread on `writer` and one reader thread per entry
    /// of `readers`; each queue holds at most `queue` waiting calls.
    pub(super) fn start(
        writer: SqliteDb,
        readers: Vec<SqliteDb>,
        queue: usize,
    ) -> Result<Lanes, StoreError> {
        let (write_tx, mut write_rx) = mpsc::channel::<Job>(queue.max(1));
        let mut threads = vec![spawn("passgate-sqlite-writer", move || {
            while let Some(job) = write_rx.blocking_recv() {
                run(job, &writer);
            }
        })?];
        let readers = match readers.is_empty() {
            true => None,
            false => {
                let (read_tx, read_rx) = mpsc::channel::<Job>(queue.max(1));
                let shared = Arc::new(Mutex::new(read_rx));
                for (i, db) in readers.into_iter().enumerate() {
                    let rx = Arc::clone(&shared);
                    threads.push(spawn(&format!("passgate-sqlite-reader-{i}"), move || {
                        while let Some(job) = next(&rx) {
                            run(job, &db);
                        }
                    })?);
                }
                Some(read_tx)
            }
        };
        Ok(Lanes {
            writer: write_tx,
            readers,
            threads,
        })
    }

    /// Run `f` on the writer thread (everything that writes, and reads that
    /// must see their own transaction's writes).
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteDb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        call(&self.writer, f).await
    }

    /// Run `f` on a reader thread (on the writer's when there are none). A
    /// read sees every write that finished before it was queued.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteDb) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        call(self.readers.as_ref().unwrap_or(&self.writer), f).await
    }
}

async fn call<T: Send + 'static>(
    lane: &mpsc::Sender<Job>,
    f: impl FnOnce(&SqliteDb) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move |db| {
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = answer.send(f(db));
    });
    lane.send(job).await.map_err(|_| StoreError::Stopped)?;
    answered.await.map_err(|_| StoreError::Stopped)?
}

fn next(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    // A reader that panicked outside a job cannot exist (jobs are caught),
    // so a poisoned lock still guards a sound receiver.
    let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    rx.blocking_recv()
}

fn run(job: Job, db: &SqliteDb) {
    if catch_unwind(AssertUnwindSafe(|| job(db))).is_err() {
        tracing::error!("a store call panicked; its caller got an error");
    }
}

fn spawn(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|source| StoreError::Io {
            context: format!("starting the thread {name}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn a_panicking_call_fails_alone() {
        let lanes = Lanes::start(SqliteDb::in_memory().unwrap(), Vec::new(), 4).unwrap();
        let failed = lanes
            .write(|_| -> Result<(), StoreError> { panic!("boom") })
            .await;
        assert!(matches!(failed, Err(StoreError::Stopped)));
        let answered = lanes
            .read(|db| db.with(|c| c.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0))))
            .await
            .unwrap();
        assert_eq!(answered, 42);
    }

    #[tokio::test]
    async fn many_callers_wait_in_a_small_queue() {
        let lanes = Arc::new(Lanes::start(SqliteDb::in_memory().unwrap(), Vec::new(), 1).unwrap());
        let calls: Vec<_> = (0..50i64)
            .map(|i| {
                let lanes = Arc::clone(&lanes);
                tokio::spawn(async move { lanes.write(move |_| Ok(i * 2)).await })
            })
            .collect();
        let mut sum = 0;
        for c in calls {
            sum += c.await.unwrap().unwrap();
        }
        assert_eq!(sum, (0..50).map(|i| i * 2).sum::<i64>());
    }
}
