//! One config generation: the request [`Handler`] built from a [`Config`]
//! (routes and their health probers, trusted issuers and their key sets,
//! the gate and its token cache, the authorization server with its clients,
//! APIs, realms and compiled scripts), on the parts that outlive every
//! generation ([`Lasting`]: the store, sessions, key ring, hasher, attack
//! protection, metrics, supervisor).
//!
//! The gateway builds the first generation at start; a reload builds the
//! next one the same way and swaps it in (`reload.rs`). Everything that can
//! fail (issuer config, script compilation) runs before any background task
//! starts; the tasks a generation starts (JWKS refresh, cache sweep, health
//! probers) hold only a `Weak` reference to it, so they end once the last
//! request of a replaced generation has finished.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::gate::issuers::Issuers;
use crate::gate::{self, Gate, Revocations};
use crate::http::hygiene::RequestHygiene;
use crate::router::Router;
use crate::service::Handler;
use crate::tasks::Supervisor;
use crate::telemetry::metrics::Metrics;
use crate::upstream::UpstreamClient;

use super::auth::{AuthStack, start_scripts};

/// How often the verified-token cache drops expired entries.
const SWEEP_TOKEN_CACHE: Duration = Duration::from_secs(60);

/// What every config generation is built on, kept for the life of the process.
pub(super) struct Lasting {
    pub(super) clock: SharedClock,
    pub(super) tasks: Supervisor,
    /// The gate's client for remote key sets, and the health probers'.
    pub(super) client: UpstreamClient,
    pub(super) metrics: Arc<Metrics>,
    /// passgate as its own issuer, with `[issuer]`.
    pub(super) auth: Option<AuthStack>,
    /// Which sessions were revoked (the sessions, or nothing without `[issuer]`).
    pub(super) revocations: Arc<dyn Revocations>,
}

impl Lasting {
    /// Build the request handler for `config`. Nothing is served by it yet.
    pub(super) async fn handler(&self, config: &Config) -> anyhow::Result<Handler> {
        let mut issuers = Issuers::default();
        if let Some(stack) = &self.auth {
            issuers.insert_shared(stack.own_issuer());
        }
        issuers.load(&config.trusted_issuers, &config.gate, &self.client)?;
        let scripts = match &self.auth {
            Some(_) => start_scripts(config, &self.metrics).await?,
            None => None,
        };

        let gate = Arc::new(Gate::new(
            &config.gate,
            issuers,
            Arc::clone(&self.clock),
            Arc::clone(&self.revocations),
        ));
        gate.issuers()
            .start(&self.tasks, config.gate.jwks_fetch_timeout)
            .await;
        gate.start_sweeper(&self.tasks, SWEEP_TOKEN_CACHE);
        let auth = self
            .auth
            .as_ref()
            .and_then(|stack| stack.server(config, &gate, scripts, &self.metrics));
        let router = Router::with_metrics(&config.routes, &config.upstream, &self.metrics);
        router.start_health_checks(&self.tasks, &self.client);
        Ok(Handler {
            router,
            gate,
            auth,
            access_log: config.log.access,
            metrics: Arc::clone(&self.metrics),
            hygiene: RequestHygiene::new(
                config.server.allow_underscores_in_headers,
                &config.server.strip_request_headers,
            ),
            claim_headers: gate::claim_headers(&config.routes),
            trusted_proxies: config.server.trusted_proxies.clone(),
            tasks: self.tasks.clone(),
        })
    }
}
