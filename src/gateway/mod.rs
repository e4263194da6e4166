//! The one place passgate is put together: [`Gateway`] builds every part from
//! a validated [`Config`] (the gate, passgate's own issuer when configured,
//! the request handler), owns the supervisor every background task runs
//! under, and serves on a bound listener until shutdown.

mod auth;
mod generation;
mod reload;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminState, StatusSources};
use crate::clock::{self, SharedClock};
use crate::config::Config;
use crate::gate::{NoRevocations, Revocations};
use crate::server::workers::Workers;
use crate::service::App;
use crate::store::status::{StatusRules, StatusStore};
use crate::tasks::Supervisor;
use crate::telemetry::metrics::Metrics;
use crate::tls::{self, CertSlot};
use crate::upstream::{UpstreamClient, client::root_store};
use auth::AuthStack;
pub use auth::key_source;
use generation::Lasting;
pub use reload::Reloader;

/// How long the background loops get to stop once the workers have drained.
const STOP_BACKGROUND: Duration = Duration::from_secs(5);

/// A configured gateway, ready to serve on a bound listener.
pub struct Gateway {
    config: Config,
    app: Arc<App>,
    admin: Arc<AdminState>,
    tls: Arc<rustls::ServerConfig>,
    cert: Arc<CertSlot>,
    roots: rustls::RootCertStore,
    tasks: Supervisor,
    lasting: Arc<Lasting>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.config.server.listen)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Build a gateway on the system clock.
    pub async fn new(config: Config) -> anyhow::Result<Gateway> {
        Self::with_clock(config, clock::system()).await
    }

    /// Build a gateway whose expiry checks read `clock`.
    pub async fn with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Gateway> {
        tls::install_crypto_providers();
        let cert = Arc::new(CertSlot::new(Self::certificate(&config)?));
        let tls = tls::server_config_with(Arc::clone(&cert))?;
        let roots = root_store(config.upstream.ca_file.as_deref())?;
        // The gate's own client fetches remote key sets.
        let client = UpstreamClient::with_roots(&config.upstream, roots.clone());
        let tasks = Supervisor::new();

        let stack = match &config.issuer {
            Some(issuer) => Some(AuthStack::open(&config, issuer, &clock, &tasks).await?),
            None => None,
        };
        let revocations: Arc<dyn Revocations> = match &stack {
            Some(stack) => stack.sessions().clone(),
            None => Arc::new(NoRevocations),
        };
        // The status page reads the store and the signing keys.
        let status_store = stack.as_ref().map(|s| s.store());
        let status_keys = stack.as_ref().map(|s| s.keys().ring().clone());
        let lasting = Arc::new(Lasting {
            clock: Arc::clone(&clock),
            tasks: tasks.clone(),
            client,
            metrics: Arc::new(Metrics::new(config.metrics.enabled)),
            auth: stack,
            revocations,
        });
        let app = Arc::new(App::new(lasting.handler(&config).await?));
        let ap = &config.attack_protection;
        let rules = StatusRules {
            block_threshold: ap.brute_force_threshold.get(),
            block_expiry: i64::try_from(ap.brute_force_expiry.as_secs()).unwrap_or(i64::MAX),
            ip_threshold: ap.suspicious_ip_threshold.get(),
            ip_regain: i64::try_from(ap.suspicious_ip_regain.as_secs()).unwrap_or(i64::MAX),
        };
        let admin = Arc::new(AdminState::new(
            Arc::clone(&app) as Arc<dyn admin::Live>,
            StatusSources {
                reachability: status_store
                    .clone()
                    .map(|s| s as Arc<dyn crate::store::Reachability>),
                store: status_store.map(|s| (s as Arc<dyn StatusStore>, rules)),
                keys: status_keys,
                clock: Arc::clone(&clock),
            },
        ));
        Ok(Gateway {
            config,
            app,
            admin,
            tls,
            cert,
            roots,
            tasks,
            lasting,
        })
    }

    fn certificate(config: &Config) -> anyhow::Result<rustls::sign::CertifiedKey> {
        let s = &config.server;
        if s.dev_certificate && tls::ensure_dev_certificate(&s.tls_cert, &s.tls_key)? {
            tracing::warn!(
                cert = %s.tls_cert.display(),
                "generated a self-signed development certificate for localhost; do not use it in production"
            );
        }
        tls::certified_key(&s.tls_cert, &s.tls_key)
    }

    /// A handle that reloads this gateway from the config file at `path`
    /// (`SIGHUP`, `passgate reload`): see `gateway/reload.rs`.
    pub fn reloader(&self, path: PathBuf) -> Reloader {
        Reloader::new(
            path,
            self.config.clone(),
            Arc::clone(&self.app),
            Arc::clone(&self.admin),
            Arc::clone(&self.cert),
            Arc::clone(&self.lasting),
        )
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serve the admin endpoints (`/healthz`, `/readyz`, `/metrics`,
    /// `/status` and the status page) on
    /// `listener` until `stop` turns true; run it beside [`Gateway::serve`].
    pub fn admin(
        &self,
        listener: TcpListener,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + use<> {
        admin::serve(listener, Arc::clone(&self.admin), stop)
    }

    /// The admin listener's state (status page, reload record).
    pub fn admin_state(&self) -> &Arc<AdminState> {
        &self.admin
    }

    /// The request handler (for benches that skip the network).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The supervisor every background task of this gateway runs under.
    pub fn tasks(&self) -> &Supervisor {
        &self.tasks
    }

    /// Serve on `listener` until `shutdown` completes, then drain in-flight
    /// requests (up to `server.shutdown_timeout`) and stop every background
    /// task. A worker that cannot start is an error: nothing is served then.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let s = self.config.server.clone();
        let permits = Arc::new(Semaphore::new(s.max_connections));
        // Accepted connections; a worker waiting in accept holds a permit too.
        let open = Arc::new(AtomicUsize::new(0));
        // The workers are stopped and drained before the loops they rely on
        // (revocation feed, key refresh) stop.
        let workers = self.tasks.child();
        let started = Workers {
            acceptor: TlsAcceptor::from(Arc::clone(&self.tls)),
            server: s.clone(),
            upstream: self.config.upstream.clone(),
            roots: self.roots.clone(),
            app: Arc::clone(&self.app),
            permits: Arc::clone(&permits),
            open: Arc::clone(&open),
        }
        .start(&workers, listener)
        .await;
        if let Err(e) = started {
            self.tasks.shutdown(s.shutdown_timeout).await;
            return Err(e);
        }
        shutdown.await;
        self.app.metrics.set_draining();

        tracing::info!(
            open_connections = open.load(Ordering::Relaxed),
            "shutting down: finishing in-flight requests"
        );
        // Each worker gives its connections `shutdown_timeout`; allow a
        // little over it for the threads to end.
        workers
            .shutdown(s.shutdown_timeout + Duration::from_secs(1))
            .await;
        match open.load(Ordering::Relaxed) {
            0 => tracing::info!("all connections closed"),
            n => tracing::warn!(
                still_open = n,
                "drain deadline passed; closed the remaining connections"
            ),
        }
        self.tasks.shutdown(STOP_BACKGROUND).await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
