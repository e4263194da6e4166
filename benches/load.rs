//! End-to-end load generator for passgate (loopback or your own hosts only).
//!
//!     cargo bench --bench load -- --scenario proxy --http 2 --streams 8 -c 32
//!     cargo bench --bench load -- --scenario flood --rate 2000 --duration 20s
//!     cargo bench --bench load -- --target https://127.0.0.1:8443 --ca certs/localhost.pem \
//!         --username alice --password ... --client-id demo-app --scenario token
//!     cargo bench --bench load -- --help
//!
//! See docs/benchmarks.md for what each figure means.

// `cargo bench` builds this target with cfg(test) but no test harness: the
// modules' unit tests (run by tests/load_bench.rs) are compiled and unused here.
#![cfg_attr(test, allow(unused_imports))]

use std::process::ExitCode;

#[path = "load/mod.rs"]
mod load;

fn main() -> ExitCode {
    let args = match load::args::Args::parse_from_list(std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("load")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(load::run(&args)) {
        Ok(w) => {
            print!("{}", w.report.text());
            println!("results: {}  plot: {}", w.json.display(), w.svg.display());
            if w.report.fatal.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
