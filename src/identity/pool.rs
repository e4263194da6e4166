//! The hashing pool: low-priority threads that run password work, behind a
//! bounded queue.
//!
//! A check first takes a place in the queue (refused at once when the queue
//! is full, so a login flood gets a 503 instead of unbounded latency and
//! memory), then waits for a worker. Both permits move into the job and are
//! released only when the job ends, so a cancelled request never frees a
//! worker whose job is still to run. A request cancelled while it waits
//! leaves the queue at once; a job whose requester left after it was handed
//! to a thread is dropped before it runs. So cancelled HTTP/2 streams cost at
//! most the checks already running, never a backlog.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::Semaphore;

use crate::tasks::run_jobs;

type Job = Box<dyn FnOnce() + Send>;

/// Why the pool did not run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue holds its bound: try again later.
    #[error("the hashing queue is full ({0} checks waiting)")]
    Full(usize),
    /// The pool's threads are gone (or the job panicked).
    #[error("the hashing pool stopped")]
    Stopped,
}

/// What the pool did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    ran: AtomicU64,
    skipped: AtomicU64,
    refused: AtomicU64,
    wait: crate::telemetry::metrics::LatencyHistogram,
}

impl PoolStats {
    /// Jobs run on a worker.
    pub fn ran(&self) -> u64 {
        self.ran.load(Ordering::Relaxed)
    }

    /// Jobs dropped unrun because their requester had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Checks refused because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// How long admitted checks waited for a worker.
    pub fn wait(&self) -> &crate::telemetry::metrics::LatencyHistogram {
        &self.wait
    }
}

/// Low-priority threads behind a bounded queue.
#[derive(Debug)]
pub struct Pool {
    jobs: mpsc::Sender<Job>,
    /// One per worker: held by a job from hand-off until it ends.
    workers: Arc<Semaphore>,
    /// Workers plus the queue's bound: held from admission until the job ends.
    admitted: Arc<Semaphore>,
    workers_total: usize,
    queue: usize,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// Start `workers` threads (at least one) and allow `queue` checks to
    /// wait for them.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Self> {
        let (pool, rx) = Self::without_threads(workers, queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("passgate-hash-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(pool)
    }

    /// The pool and the jobs it hands out, with no thread to run them.
    fn without_threads(workers: usize, queue: usize) -> (Self, mpsc::Receiver<Job>) {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = Self {
            jobs: tx,
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers.saturating_add(queue))),
            workers_total: workers,
            queue,
            stats: Arc::default(),
        };
        (pool, rx)
    }

    /// What the pool did.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Checks admitted and not yet done: running, or waiting for a worker.
    pub fn in_flight(&self) -> usize {
        let capacity = self.workers_total.saturating_add(self.queue);
        capacity.saturating_sub(self.admitted.available_permits())
    }

    /// Run `f` on a worker and wait for its answer, with the time a worker
    /// was assigned to it (after any wait in the queue). Cancelling the
    /// returned future gives up the place in the queue, or, once handed to a
    /// thread, drops the job unrun if it has not started.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(T, tokio::time::Instant), PoolError> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                PoolError::Full(self.queue)
            })?;
        let queued = tokio::time::Instant::now();
        let worker = Arc::clone(&self.workers)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Stopped)?;
        let started = tokio::time::Instant::now();
        self.stats.wait.observe(started - queued);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stats = Arc::clone(&self.stats);
        let job: Job = Box::new(move || {
            // Held until the work is done (or skipped), released before the
            // answer goes out so the next check can start at once.
            let permits = (admitted, worker);
            if tx.is_closed() {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.ran.fetch_add(1, Ordering::Relaxed);
            let value = f();
            drop(permits);
            let _ = tx.send(value);
        });
        self.jobs.send(job).map_err(|_| PoolError::Stopped)?;
        let value = rx.await.map_err(|_| PoolError::Stopped)?;
        Ok((value, started))
    }
}

/// A worker thread, at the lowest priority: run jobs until every sender is gone.
fn work(rx: &Mutex<mpsc::Receiver<Job>>) {
    // Best effort: where the OS refuses, the thread runs at normal priority.
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    run_jobs(rx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A job that blocks its worker until `release` is sent.
    fn blocker(
        pool: &Arc<Pool>,
    ) -> (
        tokio::task::JoinHandle<Result<(), PoolError>>,
        mpsc::Sender<()>,
    ) {
        let (release, wait) = mpsc::channel::<()>();
        let pool = Arc::clone(pool);
        let task = tokio::spawn(async move {
            pool.run(move || {
                let _ = wait.recv();
            })
            .await
            .map(|(v, _)| v)
        });
        (task, release)
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..2_000 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn cancelled_checks_leave_no_work_behind() {
        let pool = Arc::new(Pool::new(1, 500).unwrap_or_else(|e| panic!("{e}")));
        let (busy, release) = blocker(&pool);
        until("the worker to start", || pool.stats().ran() == 1).await;
        // 200 checks queue behind the busy worker, then their requesters leave.
        let waiting: Vec<_> = (0..200)
            .map(|_| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move { pool.run(|| ()).await.map(|(v, _)| v) })
            })
            .collect();
        until("200 checks to queue", || {
            pool.admitted.available_permits() == 501 - 201
        })
        .await;
        for task in &waiting {
            task.abort();
        }
        for task in waiting {
            let _ = task.await;
        }
        assert_eq!(
            pool.admitted.available_permits(),
            501 - 1,
            "places given back"
        );
        let _ = release.send(());
        assert_eq!(busy.await.ok(), Some(Ok(())));
        // The next check runs next: only it and the one already running ran.
        assert_eq!(pool.run(|| 7).await.map(|(v, _)| v), Ok(7));
        assert_eq!(pool.stats().ran(), 2);
    }

    #[tokio::test]
    async fn a_job_whose_requester_left_is_dropped_unrun() {
        let (pool, jobs) = Pool::without_threads(1, 4);
        let pool = Arc::new(pool);
        let ran = Arc::new(AtomicU64::new(0));
        let (pool2, ran2) = (Arc::clone(&pool), Arc::clone(&ran));
        let left = tokio::spawn(async move {
            pool2
                .run(move || {
                    ran2.fetch_add(1, Ordering::Relaxed);
                })
                .await
        });
        // Handed to the (absent) threads, then its requester leaves.
        let job = tokio::task::spawn_blocking(move || jobs.recv())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no job handed out"));
        assert_eq!(
            pool.workers.available_permits(),
            0,
            "the job holds the worker"
        );
        left.abort();
        let _ = left.await;
        assert_eq!(pool.workers.available_permits(), 0, "still held by the job");
        job();
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!((pool.stats().ran(), pool.stats().skipped()), (0, 1));
        assert_eq!(pool.workers.available_permits(), 1);
        assert_eq!(pool.admitted.available_permits(), 5);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_recovers() {
        let pool = Arc::new(Pool::new(1, 2).unwrap_or_else(|e| panic!("{e}")));
        let (busy, release) = blocker(&pool);
        until("the worker to start", || pool.stats().ran() == 1).await;
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move { pool.run(|| ()).await.map(|(v, _)| v) })
            })
            .collect();
        until("two checks to queue", || {
            pool.admitted.available_permits() == 0
        })
        .await;
        assert_eq!(pool.run(|| ()).await.err(), Some(PoolError::Full(2)));
        assert_eq!(pool.stats().refused(), 1);
        let _ = release.send(());
        let _ = busy.await;
        for task in queued {
            assert_eq!(task.await.ok(), Some(Ok(())));
        }
        assert!(pool.run(|| ()).await.is_ok());
    }
}
