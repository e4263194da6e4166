//! The signing pool: RS256 signatures (about half a millisecond each, one or
//! two per login) run on a few dedicated threads instead of the current-thread
//! request workers, where they would stall every connection on the worker.
//!
//! The queue is bounded: when it is full, [`SignPool::run`] refuses at once
//! ([`PoolError::Busy`], a 503 to the client) instead of queueing without
//! limit. A queued job owns its slot and its reply channel; when the request
//! that queued it is gone (the client hung up), the job finds its reply
//! channel closed and skips the work, so a cancelled request leaves nothing
//! behind.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use crate::tasks::run_jobs;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs each signing thread may have waiting, beyond the one it runs.
pub const QUEUE_PER_WORKER: usize = 64;

/// Why the pool did not run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full: try again later.
    #[error("the signing queue is full")]
    Busy,
    /// The pool's threads are gone (they panicked or could not start).
    #[error("the signing pool stopped")]
    Stopped,
}

/// A bounded pool of signing threads; clones share it.
#[derive(Debug, Clone)]
pub struct SignPool {
    jobs: SyncSender<Job>,
}

impl SignPool {
    /// `workers` threads (at least one) with `queue` jobs waiting at most.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("passgate-sign-{i}"))
                .spawn(move || run_jobs(&rx))?;
        }
        Ok(Self { jobs })
    }

    /// One thread per core, [`QUEUE_PER_WORKER`] jobs waiting per thread.
    pub fn for_machine() -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self::new(workers, workers * QUEUE_PER_WORKER)
    }

    /// Run `f` on the pool and wait for its answer; refuses when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The request was cancelled while this waited: nothing to do.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        rx.await.map_err(|_| PoolError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn pool(workers: usize, queue: usize) -> SignPool {
        SignPool::new(workers, queue).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn runs_on_a_signing_thread() {
        let name = pool(1, 1)
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert_eq!(name, Ok(Some("passgate-sign-0".into())));
    }

    #[tokio::test]
    async fn refuses_when_the_queue_is_full() {
        let p = pool(1, 1);
        let (hold, release) = std::sync::mpsc::channel::<()>();
        // One job runs (blocked), one waits in the queue: the third is refused.
        let running = tokio::spawn({
            let p = p.clone();
            async move { p.run(move || release.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = tokio::spawn({
            let p = p.clone();
            async move { p.run(|| 2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.run(|| 3).await, Err(PoolError::Busy));
        let _ = hold.send(());
        assert_eq!(running.await.ok(), Some(Ok(true)));
        assert_eq!(queued.await.ok(), Some(Ok(2)));
    }

    #[tokio::test]
    async fn a_cancelled_request_leaves_no_work() {
        let p = pool(1, 4);
        let ran = Arc::new(AtomicUsize::new(0));
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let p = p.clone();
            async move { p.run(move || release.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cancelled = tokio::spawn({
            let (p, ran) = (p.clone(), Arc::clone(&ran));
            async move { p.run(move || ran.fetch_add(1, Ordering::SeqCst)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancelled.abort();
        let _ = cancelled.await;
        let _ = hold.send(());
        assert_eq!(running.await.ok(), Some(Ok(true)));
        // A job queued after the cancelled one runs, so the cancelled one was seen.
        assert_eq!(p.run(|| 7).await, Ok(7));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the cancelled job ran");
    }
}
