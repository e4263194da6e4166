//! passgate: a TLS gateway with a built-in OAuth 2.0 password grant.
//!
//! A request's path through the crate: [`server`] accepts and terminates TLS,
//! [`service`] normalises the path and picks a handler via [`router`],
//! [`gate`] checks the bearer token, [`proxy`] forwards upstream. passgate's
//! own endpoints live in [`oauth`]. [`Gateway`] ties them together for `main`
//! and for tests.

pub mod admin;
pub mod clock;
pub mod config;
pub mod extensibility;
pub mod gate;
pub mod http;
pub mod identity;
pub mod oauth;
pub mod protect;
pub mod proxy;
pub mod router;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::gate::issuers::{IssuerKeys, Issuers};
use crate::gate::keys::{KeySet, VerifyKey};
use crate::gate::typ::AccessTyp;
use crate::gate::{Gate, NoRevocations, Revocations};
use crate::http::hygiene::RequestHygiene;
use crate::identity::password::{HashParams, Hasher};
use crate::oauth::{AuthParts, AuthServer};
use crate::protect::Protect;
use crate::proxy::{Proxy, UpstreamClient};
use crate::router::Router;
use crate::server::conn::ConnShared;
use crate::service::App;
use crate::sessions::Sessions;
use crate::store::SqliteStore;
use crate::tokens::keys::KeyRing;

/// A configured gateway, ready to serve on a bound listener.
pub struct Gateway {
    config: Config,
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    roots: rustls::RootCertStore,
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
        server::tls::install_crypto_providers();
        let tls = Self::tls(&config)?;
        let roots = proxy::client::root_store(config.upstream.ca_file.as_deref())?;
        // The gate's own client fetches remote key sets.
        let client = UpstreamClient::with_roots(&config.upstream, roots.clone());

        let mut issuers = Issuers::default();
        let mut ring = None;
        let mut own_store = None;
        if let Some(issuer) = &config.issuer {
            let keys = KeyRing::load_or_generate(&issuer.signing_keys, issuer.algorithm)
                .with_context(|| {
                    format!("issuer.signing_keys: {}", issuer.signing_keys.display())
                })?;
            self_test(&keys)?;
            let store = Arc::new(
                SqliteStore::open(&config.store.path)
                    .with_context(|| format!("store.path: {}", config.store.path.display()))?,
            );
            // Own tokens must be typed at+jwt once the legacy window closes (gate/typ.rs).
            let longest = config.apis.iter().map(|a| a.token_lifetime.as_secs());
            let longest = i64::try_from(longest.max().unwrap_or(0)).unwrap_or(i64::MAX);
            let access_typ = AccessTyp::load(store.as_ref(), clock.now(), longest)
                .context("recording the access-token type cut-over")?;
            let verify = keys.keys().iter().map(|k| VerifyKey {
                kid: Some(k.kid.clone()),
                alg: k.alg,
                key: k.decoding.clone(),
            });
            issuers.insert(
                IssuerKeys::fixed(issuer.url.clone(), KeySet::new(verify))
                    .with_access_typ(access_typ),
            );
            ring = Some(Arc::new(keys));
            own_store = Some(store);
        }
        issuers.load(&config.trusted_issuers, &config.gate, &client)?;

        // The store and the sessions exist with passgate's own issuer; the
        // gate asks the sessions whether a token's `sid` was revoked.
        let mut state = None;
        if let (Some(issuer), Some(store)) = (&config.issuer, own_store) {
            let sessions = Arc::new(
                Sessions::load(store.clone(), issuer.url.clone(), Arc::clone(&clock))
                    .context("loading revoked sessions")?,
            );
            sessions.start_background(Duration::from_secs(1), Duration::from_secs(600));
            state = Some((store, sessions));
        }
        let revocations: Arc<dyn Revocations> = match &state {
            Some((_, sessions)) => sessions.clone(),
            None => Arc::new(NoRevocations),
        };
        let gate = Arc::new(Gate::new(
            &config.gate,
            issuers,
            Arc::clone(&clock),
            revocations,
        ));
        gate.issuers().start(config.gate.jwks_fetch_timeout).await;
        gate.start_sweeper(Duration::from_secs(60));

        let auth = match (ring, state) {
            (Some(keys), Some((store, sessions))) => {
                let pw = &config.passwords;
                let params = HashParams {
                    memory_kib: pw.memory_kib,
                    iterations: pw.iterations,
                    parallelism: pw.parallelism,
                };
                let hasher = Hasher::bounded(params, pw.workers, pw.queue)?;
                let hasher = match pw.verify_floor {
                    config::VerifyFloor::Fixed(floor) => hasher.with_floor(floor),
                    config::VerifyFloor::Auto => {
                        let costs = store::Store::bcrypt_costs(store.as_ref())
                            .context("reading bcrypt costs")?;
                        tokio::task::spawn_blocking(move || hasher.with_measured_floor(&costs))
                            .await
                            .context("measuring password checks")?
                    }
                };
                tracing::info!(
                    floor_ms = hasher.floor().as_millis() as u64,
                    "password checks are answered no sooner than this"
                );
                let protect = Arc::new(Protect::new(&config, store.clone(), Arc::clone(&clock)));
                protect.start_sweeper();
                AuthServer::new(AuthParts {
                    config: config.clone(),
                    keys,
                    store,
                    sessions,
                    protect,
                    hasher,
                    gate: Arc::clone(&gate),
                    clock: Arc::clone(&clock),
                    signing: tokens::pool::SignPool::for_machine()
                        .context("starting the signing threads")?,
                    scripts: start_scripts(&config).await?,
                })
                .map(Arc::new)
            }
            _ => None,
        };

        let app = Arc::new(App {
            router: Router::new(&config.routes, &config.upstream),
            gate,
            auth,
            access_log: config.log.access,
            metrics: Default::default(),
            hygiene: RequestHygiene::new(
                config.server.allow_underscores_in_headers,
                &config.server.strip_request_headers,
            ),
            claim_headers: gate::claim_headers(&config.routes),
            trusted_proxies: config.server.trusted_proxies.clone(),
        });
        Ok(Gateway {
            config,
            app,
            tls,
            roots,
        })
    }

    fn tls(config: &Config) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let s = &config.server;
        if s.dev_certificate && server::tls::ensure_dev_certificate(&s.tls_cert, &s.tls_key)? {
            tracing::warn!(
                cert = %s.tls_cert.display(),
                "generated a self-signed development certificate for localhost; do not use it in production"
            );
        }
        server::tls::server_config(&s.tls_cert, &s.tls_key)
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serve the admin endpoints (`/healthz`, `/readyz`, `/metrics`) on
    /// `listener` until `stop` turns true; run it beside [`Gateway::serve`].
    pub fn admin(
        &self,
        listener: TcpListener,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + use<> {
        admin::serve(listener, Arc::clone(&self.app), stop)
    }

    /// The request handler (for benches that skip the network).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serve on `listener` until `shutdown` completes, then drain in-flight
    /// requests (up to `server.shutdown_timeout`).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let s = self.config.server.clone();
        let std_listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot hand the listener to the workers");
                return;
            }
        };
        let permits = Arc::new(Semaphore::new(s.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::clone(&self.tls));
        let mut threads = Vec::new();
        for i in 0..s.workers {
            let socket = match std_listener.try_clone() {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot clone the listener for a worker");
                    break;
                }
            };
            // Each worker has its own upstream pool, so a request and its
            // upstream connection live on one thread.
            let proxy = Proxy::new(UpstreamClient::with_roots(
                &self.config.upstream,
                self.roots.clone(),
            ));
            let shared = Arc::new(ConnShared::new(
                acceptor.clone(),
                &s,
                Arc::clone(&self.app),
                proxy,
            ));
            let (permits, stop) = (Arc::clone(&permits), stop_rx.clone());
            let (max, drain) = (s.max_connections, s.shutdown_timeout);
            let spawned = std::thread::Builder::new()
                .name(format!("passgate-worker-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a worker runtime");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match TcpListener::from_std(socket) {
                            Ok(listener) => {
                                server::listener::accept_until_stopped(
                                    listener,
                                    shared,
                                    Arc::clone(&permits),
                                    stop,
                                )
                                .await
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "a worker cannot use the listener")
                            }
                        }
                        // Keep this worker's connections running until all have closed.
                        server::listener::wait_drained(&permits, max, drain).await;
                    });
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
            }
        }
        drop(std_listener);
        shutdown.await;
        self.app.metrics.set_draining();

        let open = s.max_connections - permits.available_permits();
        tracing::info!(
            open_connections = open,
            "shutting down: finishing in-flight requests"
        );
        let _ = stop_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = joined.await;
        match s.max_connections - permits.available_permits() {
            0 => tracing::info!("all connections closed"),
            n => tracing::warn!(
                still_open = n,
                "drain deadline passed; closed the remaining connections"
            ),
        }
    }
}

/// Sign and verify once with the current key, so a broken crypto setup fails
/// at start and not on the first login.
fn self_test(ring: &KeyRing) -> anyhow::Result<()> {
    let key = ring.current();
    let jwt = key
        .sign_jwt(
            tokens::issue::ACCESS_TOKEN_TYP,
            &serde_json::json!({"self_test": true}),
        )
        .with_context(|| format!("the signing key {} cannot sign", key.kid))?;
    let (message, sig) = jwt.rsplit_once('.').context("self-test token")?;
    let ok = jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key.decoding, key.alg)
        .context("verification self-test failed")?;
    anyhow::ensure!(
        ok,
        "the signing key {} does not verify its own signature",
        key.kid
    );
    Ok(())
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

/// Compile the configured Rules and Actions on their own threads; a script
/// that does not compile stops the start with every problem named.
async fn start_scripts(config: &Config) -> anyhow::Result<Option<Arc<extensibility::Scripts>>> {
    let x = config.extensibility.clone();
    let started = tokio::task::spawn_blocking(move || extensibility::Scripts::start(&x))
        .await
        .context("starting the script threads")?;
    match started {
        Ok(scripts) => {
            if let Some(s) = &scripts {
                tracing::info!(
                    rules = config.extensibility.rules.len(),
                    actions = config.extensibility.actions.len(),
                    workers = s.stats().memory.len(),
                    "rules and actions compiled"
                );
            }
            Ok(scripts.map(Arc::new))
        }
        Err(problems) => anyhow::bail!("the scripts do not compile:\n  {}", problems.join("\n  ")),
    }
}
