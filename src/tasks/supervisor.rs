//! The owner of every background task and worker thread: one
//! [`CancellationToken`] that stops them, one [`TaskTracker`] that waits for
//! them, and a log line (and a count) for each one that dies.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Starts, stops and watches background work. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tracker: TaskTracker,
    cancel: CancellationToken,
    died: Arc<AtomicU64>,
    /// The supervisor this one was made from: it waits for this one's tasks too.
    parent: Option<Supervisor>,
}

/// How a task ended.
enum Ended {
    Done,
    Stopped,
    Failed(anyhow::Error),
    Panicked(String),
}

impl Supervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// A supervisor under this one: shut down on its own (the server's workers
    /// drain before the background loops stop), or with this one, which also
    /// waits for its tasks. Deaths are counted in this one.
    pub fn child(&self) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                tracker: TaskTracker::new(),
                cancel: self.inner.cancel.child_token(),
                died: Arc::clone(&self.inner.died),
                parent: Some(self.clone()),
            }),
        }
    }

    /// Run `task` until it returns or shutdown begins (it is then aborted at
    /// its next `.await`: background loops keep nothing that needs finishing).
    /// An error or a panic is logged with `name` and counted.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut handle = tokio::spawn(task);
        let cancel = self.inner.cancel.clone();
        let died = Arc::clone(&self.inner.died);
        let held = self.ancestors();
        self.inner.tracker.spawn(async move {
            let outcome = tokio::select! {
                out = &mut handle => out,
                () = cancel.cancelled() => {
                    handle.abort();
                    handle.await
                }
            };
            report(name, joined(outcome), &died);
            drop(held);
        });
    }

    /// Start a thread named `name`. `setup` runs on it first and its answer
    /// is awaited, so a thread that cannot start is an error here, not a log
    /// line. Then `run` gets what `setup` made and the cancellation token, and
    /// is tracked until it returns; an error or a panic is logged and counted.
    pub async fn start_thread<S, Setup, Run>(
        &self,
        name: String,
        setup: Setup,
        run: Run,
    ) -> anyhow::Result<()>
    where
        Setup: FnOnce() -> anyhow::Result<S> + Send + 'static,
        Run: FnOnce(S, CancellationToken) -> anyhow::Result<()> + Send + 'static,
    {
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let (done_tx, done_rx) = oneshot::channel::<anyhow::Result<()>>();
        let cancel = self.inner.cancel.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let state = match setup() {
                    Ok(state) => state,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let _ = done_tx.send(run(state, cancel));
            })
            .with_context(|| format!("cannot start the thread {name}"))?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context(format!("{name} did not start"))),
            Err(_) => anyhow::bail!("{name} panicked while starting"),
        }
        let died = Arc::clone(&self.inner.died);
        let held = self.ancestors();
        self.inner.tracker.spawn(async move {
            let outcome = match done_rx.await {
                Ok(Ok(())) => Ended::Done,
                Ok(Err(e)) => Ended::Failed(e),
                // The sender is dropped without a word only by a panic.
                Err(_) => Ended::Panicked("the thread panicked".into()),
            };
            report(&name, outcome, &died);
            drop(held);
        });
        Ok(())
    }

    /// A token that is cancelled when shutdown begins.
    pub fn token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// Cancel every task (and every child's) and wait for them, at most
    /// `deadline`. Returns how many were still running after it.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(deadline, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = self.inner.tracker.len(),
                "background tasks did not stop within {deadline:?}"
            );
        }
        self.inner.tracker.len()
    }

    /// Tasks and threads still running, its children's included.
    pub fn running(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Tasks and threads that failed or panicked, since start.
    pub fn died(&self) -> u64 {
        self.inner.died.load(Ordering::Relaxed)
    }

    /// Tokens that keep every ancestor's `wait` pending while a task runs.
    fn ancestors(&self) -> Vec<TaskTrackerToken> {
        let mut held = Vec::new();
        let mut next = self.inner.parent.as_ref();
        while let Some(p) = next {
            held.push(p.inner.tracker.token());
            next = p.inner.parent.as_ref();
        }
        held
    }
}

fn joined(outcome: Result<anyhow::Result<()>, JoinError>) -> Ended {
    match outcome {
        Ok(Ok(())) => Ended::Done,
        Ok(Err(e)) => Ended::Failed(e),
        Err(e) if e.is_cancelled() => Ended::Stopped,
        Err(e) => Ended::Panicked(panic_text(e.into_panic())),
    }
}

fn panic_text(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "a panic".to_string(), |s| (*s).to_string()),
    }
}

fn report(name: &str, outcome: Ended, died: &AtomicU64) {
    match outcome {
        Ended::Done => tracing::debug!(task = name, "background task ended"),
        Ended::Stopped => tracing::debug!(task = name, "background task stopped"),
        Ended::Failed(e) => {
            died.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                task = name,
                error = format!("{e:#}"),
                "background task failed"
            );
        }
        Ended::Panicked(why) => {
            died.fetch_add(1, Ordering::Relaxed);
            tracing::error!(task = name, panic = %why, "background task panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Log lines written while the guard lives (on this thread: the tests
    /// run on a current-thread runtime).
    fn capture_logs() -> (
        Arc<std::sync::Mutex<Vec<u8>>>,
        tracing::subscriber::DefaultGuard,
    ) {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        (buf, tracing::subscriber::set_default(subscriber))
    }

    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_task_that_dies_is_logged_counted_and_the_others_run_on() {
        let (logs, _guard) = capture_logs();
        let sup = Supervisor::new();
        sup.spawn("panics", async { panic!("boom") });
        sup.spawn("fails", async { anyhow::bail!("no store") });
        sup.spawn("loops", std::future::pending());
        for _ in 0..100 {
            if sup.died() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(sup.died(), 2);
        assert_eq!(sup.running(), 1, "the loop still runs");
        assert_eq!(sup.shutdown(Duration::from_secs(5)).await, 0);
        assert_eq!(sup.died(), 2, "a cancelled task did not die");
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        let line = |needle: &str| logs.lines().find(|l| l.contains(needle)).unwrap_or("");
        let panicked = line("background task panicked");
        assert!(
            panicked.contains("panics") && panicked.contains("boom"),
            "{logs}"
        );
        let failed = line("background task failed");
        assert!(
            failed.contains("fails") && failed.contains("no store"),
            "{logs}"
        );
    }

    #[tokio::test]
    async fn shutdown_stops_loops_and_waits_for_threads_and_children() {
        let sup = Supervisor::new();
        let workers = sup.child();
        sup.spawn("sweeper", async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let drained = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&drained);
        workers
            .start_thread(
                "worker".into(),
                || Ok(()),
                move |(), stop| {
                    while !stop.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    seen.store(1, Ordering::Relaxed);
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert_eq!(sup.running(), 2, "its own sweeper and the child's worker");
        assert_eq!(workers.running(), 1);
        assert_eq!(sup.shutdown(Duration::from_secs(5)).await, 0);
        assert_eq!(drained.load(Ordering::Relaxed), 1, "waited for the drain");
        assert_eq!(workers.running(), 0);
        assert_eq!(sup.died(), 0);
    }

    #[tokio::test]
    async fn a_thread_that_cannot_start_is_an_error() {
        let sup = Supervisor::new();
        let started = sup
            .start_thread(
                "worker".into(),
                || -> anyhow::Result<()> { anyhow::bail!("no runtime") },
                |(), _| Ok(()),
            )
            .await;
        let e = started.expect_err("setup failed");
        assert_eq!(format!("{e:#}"), "worker did not start: no runtime");
        assert_eq!(sup.running(), 0);
    }

    #[tokio::test]
    async fn a_thread_that_panics_is_counted() {
        let sup = Supervisor::new();
        sup.start_thread("worker".into(), || Ok(()), |(), _| panic!("boom"))
            .await
            .unwrap();
        assert_eq!(sup.shutdown(Duration::from_secs(5)).await, 0);
        assert_eq!(sup.died(), 1);
    }
}
