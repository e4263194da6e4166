//! Work that runs beside the requests, with one owner.
//!
//! Every background loop (the gate's cache sweep, the protector's sweep, the
//! sessions' revocation feed and sweep, each remote issuer's key refresh) and
//! every server worker thread is started through a [`Supervisor`], which
//! cancels them all on shutdown, waits for them, and logs and counts a task
//! that dies. Blocking calls go through [`run_blocking`], the one way passgate
//! uses tokio's blocking pool, and the threads of passgate's own bounded
//! pools share one job loop ([`run_jobs`]). See docs/architecture.md, "Who
//! runs what in the background".

mod blocking;
mod jobs;
mod supervisor;

pub use blocking::{Unfinished, run_blocking};
pub use jobs::run_jobs;
pub use supervisor::Supervisor;
