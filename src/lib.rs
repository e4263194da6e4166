//! passgate: a TLS gateway with a built-in OAuth 2.0 password grant.
//!
//! A request's path through the crate: [`server`] accepts and terminates TLS,
//! [`service`] normalises the path and picks a handler via [`router`],
//! [`gate`] checks the bearer token, [`proxy`] forwards upstream. passgate's
//! own endpoints live in [`oauth`]. [`Gateway`] ties them together for `main`
//! and for tests.

pub mod clock;
pub mod config;
pub mod gate;
pub mod http;
pub mod identity;
pub mod oauth;
pub mod proxy;
pub mod router;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::gate::issuers::{IssuerKeys, Issuers};
use crate::gate::keys::{KeySet, VerifyKey};
use crate::gate::{Gate, NoRevocations};
use crate::identity::password::{HashParams, Hasher};
use crate::oauth::{AuthParts, AuthServer};
use crate::proxy::{Proxy, UpstreamClient};
use crate::router::Router;
use crate::server::conn::ConnShared;
use crate::service::App;
use crate::store::{SqliteStore, Store};
use crate::tokens::keys::KeyRing;

/// A configured gateway, ready to serve on a bound listener.
pub struct Gateway {
    config: Config,
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
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
        let client = UpstreamClient::new(&config.upstream)?;

        let mut issuers = Issuers::default();
        let mut ring = None;
        if let Some(issuer) = &config.issuer {
            let keys = KeyRing::load_or_generate(&issuer.signing_keys, issuer.algorithm)
                .with_context(|| {
                    format!("issuer.signing_keys: {}", issuer.signing_keys.display())
                })?;
            self_test(&keys)?;
            let verify = keys.keys().iter().map(|k| VerifyKey {
                kid: Some(k.kid.clone()),
                alg: k.alg,
                key: k.decoding.clone(),
            });
            issuers.insert(IssuerKeys::fixed(issuer.url.clone(), KeySet::new(verify)));
            ring = Some(Arc::new(keys));
        }
        issuers.load(&config.trusted_issuers, &config.gate, &client)?;

        let gate = Arc::new(Gate::new(
            &config.gate,
            issuers,
            Arc::clone(&clock),
            Arc::new(NoRevocations),
        ));
        gate.issuers().start(config.gate.jwks_fetch_timeout).await;
        gate.start_sweeper(Duration::from_secs(60));

        let auth = match ring {
            Some(keys) => {
                let store: Arc<dyn Store> = Arc::new(
                    SqliteStore::open(&config.store.path)
                        .with_context(|| format!("store.path: {}", config.store.path.display()))?,
                );
                let hasher = Hasher::new(HashParams::default(), Hasher::default_workers())?;
                AuthServer::new(AuthParts {
                    config: config.clone(),
                    keys,
                    store,
                    hasher,
                    gate: Arc::clone(&gate),
                    clock: Arc::clone(&clock),
                })
                .map(Arc::new)
            }
            None => None,
        };

        let app = Arc::new(App {
            router: Router::new(&config.routes, &config.upstream),
            gate,
            proxy: Proxy::new(client),
            auth,
            access_log: config.log.access,
        });
        Ok(Gateway { config, app, tls })
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

    /// The request handler (for benches that skip the network).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serve on `listener` until `shutdown` completes, then drain in-flight
    /// requests (up to `server.shutdown_timeout`).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let shared = Arc::new(ConnShared::new(
            TlsAcceptor::from(self.tls),
            &self.config.server,
            self.app,
        ));
        let s = &self.config.server;
        server::listener::run(
            listener,
            shared,
            s.max_connections,
            s.shutdown_timeout,
            shutdown,
        )
        .await;
    }
}

/// Sign and verify once with the current key, so a broken crypto setup fails
/// at start and not on the first login.
fn self_test(ring: &KeyRing) -> anyhow::Result<()> {
    let key = ring.current();
    let sig = jsonwebtoken::crypto::sign(b"passgate self-test", &key.encoding, key.alg)
        .context("signing self-test failed")?;
    let ok = jsonwebtoken::crypto::verify(&sig, b"passgate self-test", &key.decoding, key.alg)
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
