//! The script pool: low-priority threads that each own one JavaScript runtime with every
//! script compiled in, behind a bounded queue (like the hashing pool,
//! `identity/pool.rs`). Scripts never run on the async workers.
//!
//! A chain first takes a place (refused at once when the queue is full), and
//! the place moves into the job, so it is given back only when the job ends.
//! A job whose requester has gone is dropped before it runs. A runtime that a
//! script ran out of time or memory in is dropped and rebuilt before the next
//! job, so a hostile script costs its own login and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::cache::ScriptCache;
use super::host::{Failure, Host};
use super::meters::Meters;
use super::source::{Source, SyntaxProblem};

/// Why the pool did not run a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolRefusal {
    /// Every worker is busy and the queue is full.
    #[error("the script queue is full")]
    Full,
    /// The workers are gone.
    #[error("the script pool stopped")]
    Stopped,
}

struct Job {
    input: String,
    deadline: Instant,
    reply: oneshot::Sender<Result<String, Failure>>,
    _place: OwnedSemaphorePermit,
}

/// What the pool did and holds, for `/metrics`, tests and the bench.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Bytes held by each worker's runtime after its last job.
    pub memory: Vec<AtomicU64>,
    /// Runtimes rebuilt after a runaway script.
    pub rebuilt: AtomicU64,
    /// Chains run.
    pub ran: AtomicU64,
    /// Chains handed to the pool that no worker has taken yet.
    pub queued: AtomicU64,
}

/// Threads with a runtime each, behind a bounded queue.
#[derive(Debug)]
pub struct ScriptPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    places: Arc<Semaphore>,
    stats: Arc<PoolStats>,
}

struct WorkerSetup {
    sources: Arc<Vec<Source>>,
    meters: Arc<Meters>,
    memory_limit: usize,
    cache: Arc<ScriptCache>,
    timeout: Duration,
}

impl WorkerSetup {
    fn host(&self) -> Result<Host, Vec<SyntaxProblem>> {
        Host::build(
            &self.sources,
            self.memory_limit,
            Arc::clone(&self.cache),
            super::host::compile_deadline(self.timeout),
        )
        .map(|h| h.with_meters(Arc::clone(&self.meters)))
    }
}

impl ScriptPool {
    /// Start `workers` threads, each compiling every script once; fails with
    /// the problems of the scripts that do not compile. Each script's runs
    /// are recorded in `meters`.
    pub fn start(
        sources: Vec<Source>,
        meters: Meters,
        workers: usize,
        queue: usize,
        memory_limit: usize,
        timeout: Duration,
        cache: Arc<ScriptCache>,
    ) -> Result<ScriptPool, Vec<String>> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(PoolStats {
            memory: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            ..PoolStats::default()
        });
        let setup = Arc::new(WorkerSetup {
            sources: Arc::new(sources),
            meters: Arc::new(meters),
            memory_limit,
            cache,
            timeout,
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), Vec<String>>>();
        for i in 0..workers {
            let (rx, stats, setup, ready) = (
                Arc::clone(&rx),
                Arc::clone(&stats),
                Arc::clone(&setup),
                ready_tx.clone(),
            );
            std::thread::Builder::new()
                .name(format!("passgate-js-{i}"))
                .stack_size(8 << 20)
                .spawn(move || worker(i, &rx, &stats, &setup, ready))
                .map_err(|e| vec![format!("extensibility: cannot start a script thread: {e}")])?;
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(problems)) => return Err(problems),
                Err(_) => return Err(vec!["extensibility: a script thread died at start".into()]),
            }
        }
        Ok(ScriptPool {
            jobs: Mutex::new(Some(tx)),
            places: Arc::new(Semaphore::new(workers.saturating_add(queue))),
            stats,
        })
    }

    /// What the pool did.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Run the chain on `input` (JSON facts) by `deadline`, on a worker.
    pub async fn run(
        &self,
        input: String,
        deadline: Instant,
    ) -> Result<Result<String, Failure>, PoolRefusal> {
        let place = Arc::clone(&self.places)
            .try_acquire_owned()
            .map_err(|_| PoolRefusal::Full)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            input,
            deadline,
            reply,
            _place: place,
        };
        {
            let jobs = self.jobs.lock().map_err(|_| PoolRefusal::Stopped)?;
            let tx = jobs.as_ref().ok_or(PoolRefusal::Stopped)?;
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
            if tx.send(job).is_err() {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(PoolRefusal::Stopped);
            }
        }
        answer.await.map_err(|_| PoolRefusal::Stopped)
    }
}

impl Drop for ScriptPool {
    fn drop(&mut self) {
        // Closing the queue ends every worker after its current job.
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

fn worker(
    i: usize,
    rx: &Mutex<mpsc::Receiver<Job>>,
    stats: &PoolStats,
    setup: &WorkerSetup,
    ready: mpsc::Sender<Result<(), Vec<String>>>,
) {
    // Scripts yield the CPU to the proxy, as password hashing does. Best
    // effort: where the OS refuses, the thread runs at normal priority.
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
    let mut host = match setup.host() {
        Ok(h) => {
            let _ = ready.send(Ok(()));
            Some(h)
        }
        Err(problems) => {
            let _ = ready.send(Err(problems.iter().map(|p| p.to_string()).collect()));
            return;
        }
    };
    drop(ready);
    loop {
        let job = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    job
                }
                Err(_) => return,
            },
            Err(_) => return,
        };
        if job.reply.is_closed() {
            continue;
        }
        if host.is_none() {
            host = rebuild(setup, stats);
        }
        let Some(h) = host.as_mut() else {
            let _ = job.reply.send(Err(Failure::Engine(
                "the script runtime could not be rebuilt".into(),
            )));
            continue;
        };
        let answer = h.run(&job.input, job.deadline);
        stats.ran.fetch_add(1, Ordering::Relaxed);
        let poisoned = answer.as_ref().is_err_and(Failure::poisons);
        let _ = job.reply.send(answer);
        if poisoned {
            // A runaway script may have left the runtime in any state: start over.
            drop(host.take());
            host = rebuild(setup, stats);
        }
        if let (Some(h), Some(m)) = (host.as_ref(), stats.memory.get(i)) {
            m.store(h.memory(), Ordering::Relaxed);
        }
    }
}

fn rebuild(setup: &WorkerSetup, stats: &PoolStats) -> Option<Host> {
    stats.rebuilt.fetch_add(1, Ordering::Relaxed);
    match setup.host() {
        Ok(h) => Some(h),
        Err(problems) => {
            for p in problems {
                tracing::error!(problem = %p, "rebuilding a script runtime failed");
            }
            None
        }
    }
}
