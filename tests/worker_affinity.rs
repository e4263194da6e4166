//! `server.worker_cpu_affinity`: with `"auto"` each worker thread is bound to
//! one CPU of those the process may use, a different one per worker while
//! there are enough; with the default (`"off"`) the workers may run on any of
//! them. Read from the kernel's own view of each thread
//! (`/proc/self/task/*/status`, `Cpus_allowed_list`), so Linux only.
//!
//! One test in this binary: the workers are told apart from other gateways'
//! by their thread ids, which only this test's gateways create here.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};

/// The CPUs each live `passgate-worker-*` thread of this process may run on,
/// by thread id.
fn worker_cpus() -> BTreeMap<u32, BTreeSet<u32>> {
    let mut found = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread has just ended
        };
        if !name.starts_with("passgate-worker") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("the kernel lists the thread's CPUs");
        let tid: u32 = dir.file_name().unwrap().to_str().unwrap().parse().unwrap();
        found.insert(tid, parse_cpu_list(list.trim()));
    }
    found
}

/// `0-2,5` → {0, 1, 2, 5}.
fn parse_cpu_list(list: &str) -> BTreeSet<u32> {
    let mut cpus = BTreeSet::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse().unwrap()),
            None => {
                cpus.insert(part.parse().unwrap());
            }
        }
    }
    cpus
}

/// The CPUs this (test) thread may run on: what the process was given.
fn process_cpus() -> BTreeSet<u32> {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    parse_cpu_list(list.trim())
}

/// The workers a gateway started: the worker threads that were not there before.
async fn started_workers(
    before: &BTreeMap<u32, BTreeSet<u32>>,
    server: &str,
    upstream: &Upstream,
) -> (TestGateway, Vec<BTreeSet<u32>>) {
    let gw = TestGateway::builder()
        .server(server)
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    // Serving a request proves every worker has passed its start.
    assert_eq!(gw.client(Proto::H1).get("/public/x").await.status, 200);
    let workers = worker_cpus()
        .into_iter()
        .filter(|(tid, _)| !before.contains_key(tid))
        .map(|(_, cpus)| cpus)
        .collect();
    (gw, workers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_binds_each_worker_to_a_cpu_of_its_own_and_off_leaves_them_free() {
    init_logs();
    let upstream = Upstream::start().await;
    let allowed = process_cpus();
    assert!(!allowed.is_empty());

    // "auto": one CPU each, all of them the process's, distinct while there
    // are CPUs enough (round robin after that).
    let before = worker_cpus();
    let (gw, workers) = started_workers(
        &before,
        "workers = 2\nworker_cpu_affinity = \"auto\"",
        &upstream,
    )
    .await;
    assert_eq!(workers.len(), 2, "two new worker threads");
    for cpus in &workers {
        assert_eq!(cpus.len(), 1, "a bound worker has one CPU: {cpus:?}");
        assert!(cpus.is_subset(&allowed), "{cpus:?} within {allowed:?}");
    }
    if allowed.len() >= 2 {
        assert_ne!(workers[0], workers[1], "two workers, two CPUs");
    }
    // The bound CPUs are the first of the allowed ones, in order.
    let bound: BTreeSet<u32> = workers.iter().flatten().copied().collect();
    let first: BTreeSet<u32> = allowed.iter().take(2).copied().collect();
    assert_eq!(bound, first);
    gw.shutdown().await;

    // The default: every worker may run on every CPU the process may.
    let before = worker_cpus();
    let (gw, workers) = started_workers(&before, "workers = 2", &upstream).await;
    assert_eq!(workers.len(), 2, "two new worker threads");
    for cpus in &workers {
        assert_eq!(cpus, &allowed, "an unbound worker keeps the process's CPUs");
    }
    gw.shutdown().await;
}
