//! Binding the worker threads to CPUs (`server.worker_cpu_affinity = "auto"`).
//!
//! Each worker is one event loop carrying its share of the connections. Left
//! to the scheduler, on a machine with more runnable threads than CPUs (the
//! load generator and the upstream beside passgate, say), two workers can end
//! up queued on one CPU, and every connection of the one waiting stalls for a
//! scheduler time slice: milliseconds, which is what the tail latency shows
//! (docs/benchmarks.md). Bound, each worker waits only for what else runs on
//! its own CPU. Off by default, as in nginx (`worker_cpu_affinity`): on a host
//! shared with other busy processes, or with several passgate processes, a
//! bound worker cannot move to an idle CPU.

use core_affinity::CoreId;

/// The CPUs the process may run on, in the system's order.
#[derive(Debug, Clone)]
pub struct Cpus(Vec<CoreId>);

impl Cpus {
    /// The CPU for worker `i`: the `i`-th, round robin when there are more
    /// workers than CPUs.
    pub fn for_worker(&self, i: usize) -> CoreId {
        self.0[i % self.0.len()]
    }
}

/// The CPUs the calling thread (so far, the process) may run on; `None`,
/// with a warning, where the system does not say.
pub fn allowed() -> Option<Cpus> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => Some(Cpus(ids)),
        _ => {
            tracing::warn!(
                "server.worker_cpu_affinity: cannot read the CPUs this process may use; the workers are not bound"
            );
            None
        }
    }
}

/// Bind the calling thread to `cpu`. A refusal leaves the thread where it
/// was, with a warning: binding is a matter of speed, never of correctness.
pub fn bind_current_thread(cpu: CoreId) {
    if !core_affinity::set_for_current(cpu) {
        tracing::warn!(
            cpu = cpu.id,
            "server.worker_cpu_affinity: cannot bind a worker to its CPU; it runs unbound"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_go_round_robin_over_the_cpus() {
        let cpus = Cpus(vec![CoreId { id: 2 }, CoreId { id: 5 }, CoreId { id: 7 }]);
        let ids: Vec<usize> = (0..5).map(|i| cpus.for_worker(i).id).collect();
        assert_eq!(ids, [2, 5, 7, 2, 5]);
    }
}
