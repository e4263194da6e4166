//! The worker threads: one per `server.workers`, each a current-thread
//! runtime running the accept loop on a listening socket of its own
//! (`SO_REUSEPORT`, else a clone of the one socket: `listen.rs`), with its own
//! upstream pool so a request and its upstream connection live on one thread.
//! They run under the gateway's supervisor; a worker that cannot start is an
//! error for the caller (passgate exits), never a gateway running with fewer.
//!
//! With `server.worker_cpu_affinity = "auto"` each worker is bound to a CPU of
//! its own, of those the process may use (`cpus.rs`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use anyhow::Context;
use rustls::RootCertStore;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::conn::ConnShared;
use super::cpus;
use super::listen::worker_sockets;
use super::listener::{accept_until_stopped, wait_drained};
use crate::config::{ServerConfig, UpstreamConfig, WorkerCpuAffinity};
use crate::proxy::Proxy;
use crate::service::App;
use crate::tasks::Supervisor;
use crate::upstream::UpstreamClient;

/// What every worker serves with.
pub struct Workers {
    /// The TLS acceptor (server certificate, ALPN).
    pub acceptor: TlsAcceptor,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[upstream]`, for each worker's own pool.
    pub upstream: UpstreamConfig,
    /// The roots upstream certificates are checked against.
    pub roots: RootCertStore,
    /// The request handler.
    pub app: Arc<App>,
    /// Connection permits shared by all workers (`server.max_connections`).
    pub permits: Arc<Semaphore>,
    /// Connections accepted and not yet closed, by all workers.
    pub open: Arc<AtomicUsize>,
}

impl Workers {
    /// Start `server.workers` threads on `listener` under `tasks`. Each stops
    /// accepting when `tasks` shuts down, then keeps its open connections
    /// until they close or `server.shutdown_timeout` passes. A listener
    /// bound with [`super::listen::bind`] gives each worker a socket of its own.
    pub async fn start(self, tasks: &Supervisor, listener: TcpListener) -> anyhow::Result<()> {
        let listener = listener
            .into_std()
            .context("cannot hand the listener to the workers")?;
        let (sockets, sharing) = worker_sockets(listener, self.server.workers)
            .context("cannot give each worker a listening socket")?;
        tracing::debug!(workers = self.server.workers, ?sharing, "workers accepting");
        let cpus = match self.server.worker_cpu_affinity {
            WorkerCpuAffinity::Auto => cpus::allowed(),
            WorkerCpuAffinity::Off => None,
        };
        for (i, socket) in sockets.into_iter().enumerate() {
            let proxy = Proxy::new(UpstreamClient::with_roots(
                &self.upstream,
                self.roots.clone(),
            ));
            let shared = Arc::new(ConnShared::new(
                self.acceptor.clone(),
                &self.server,
                Arc::clone(&self.app),
                proxy,
            ));
            let permits = Arc::clone(&self.permits);
            let open = Arc::clone(&self.open);
            let (max, drain) = (self.server.max_connections, self.server.shutdown_timeout);
            let cpu = cpus.as_ref().map(|cpus| cpus.for_worker(i));
            let setup = move || {
                if let Some(cpu) = cpu {
                    cpus::bind_current_thread(cpu);
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start a worker runtime")?;
                let listener = {
                    let _in_runtime = runtime.enter();
                    TcpListener::from_std(socket).context("a worker cannot use the listener")?
                };
                Ok((runtime, listener))
            };
            let run = move |(runtime, listener): (tokio::runtime::Runtime, TcpListener),
                            stop: tokio_util::sync::CancellationToken| {
                runtime.block_on(async move {
                    let (stop_tx, stop_rx) = watch::channel(false);
                    tokio::spawn(async move {
                        stop.cancelled().await;
                        let _ = stop_tx.send(true);
                    });
                    accept_until_stopped(listener, shared, Arc::clone(&permits), open, stop_rx)
                        .await;
                    // Keep this worker's connections running until all have closed.
                    wait_drained(&permits, max, drain).await;
                });
                Ok(())
            };
            tasks
                .start_thread(format!("passgate-worker-{i}"), setup, run)
                .await?;
        }
        Ok(())
    }
}
