//! Extensibility: the tenant's Auth0 Rules and post-login Actions, run as
//! they are on the password grants and the refresh exchange
//! (docs/extensibility.md).
//!
//! - `source.rs`: script files, rule or action, compile errors at `file:line:col`;
//! - `prelude.js`: the Auth0 surfaces (`user`/`context`/`callback`,
//!   `event`/`api`), in JavaScript;
//! - `host.rs`: one QuickJS runtime with every script compiled in, and the
//!   interrupt handler and memory limit that stop runaway scripts;
//! - `pool.rs`: the threads that own the runtimes, behind a bounded queue;
//! - `meters.rs`: each script's run time and failures, for `/metrics`;
//! - `facts.rs`: what scripts are told about a login;
//! - `decision.rs`: what they decided, checked (restricted claims, scopes);
//! - `cache.rs`: `api.cache`, per process;
//! - `trial.rs`: one script run once, for `passgate actions try`.
//!
//! The token endpoint (`oauth/`) builds the facts, runs the chain here
//! and applies the verdict to its `LoginDecision`.

pub mod cache;
pub mod decision;
pub mod facts;
mod host;
pub mod meters;
pub mod pool;
pub mod source;
pub mod trial;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ExtensibilityConfig;
use crate::telemetry::metrics::Metrics;

pub use decision::{Changes, Refusal, Verdict};
pub use facts::{LoginFacts, Protocol, RequestFacts};
pub use host::Failure;
use meters::Meters;
use pool::{PoolRefusal, ScriptPool};
use source::Source;

/// Why a chain gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// A script ran out of time or memory, never settled, or the engine
    /// failed: the login fails with a generic 500 (details logged here).
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The queue is full: 503, nothing ran.
    #[error("the script queue is full")]
    Busy,
    /// The pool stopped.
    #[error("the script pool stopped")]
    Stopped,
}

/// The configured rules and actions, compiled into a pool of runtimes.
#[derive(Debug)]
pub struct Scripts {
    pool: ScriptPool,
    timeout: Duration,
}

impl Scripts {
    /// Read and compile every configured script on every worker; `None`
    /// when no script is configured. Fails with every problem, each as
    /// `rules[0].script: file:line:col: message`.
    pub fn start(config: &ExtensibilityConfig) -> Result<Option<Scripts>, Vec<String>> {
        Scripts::start_metered(config, &Metrics::disabled())
    }

    /// [`Scripts::start`], recording each script's runs and failures in
    /// `metrics` (docs/metrics.md).
    pub fn start_metered(
        config: &ExtensibilityConfig,
        metrics: &Metrics,
    ) -> Result<Option<Scripts>, Vec<String>> {
        if config.is_empty() {
            return Ok(None);
        }
        let sources = Source::all(config).map_err(strings)?;
        let meters = Meters::new(metrics, &sources);
        let pool = ScriptPool::start(
            sources,
            meters,
            config.workers,
            config.queue,
            config.memory_limit,
            config.timeout,
            Arc::new(cache::ScriptCache::default()),
        )?;
        Ok(Some(Scripts {
            pool,
            timeout: config.timeout,
        }))
    }

    /// Run every rule, then every action, on one login. `granted` are the
    /// scopes before any script; `api_scopes` those the API defines.
    pub async fn run(
        &self,
        facts: &LoginFacts,
        api_scopes: &[String],
    ) -> Result<Verdict, ScriptError> {
        let input =
            serde_json::to_string(facts).map_err(|e| Failure::Engine(format!("facts: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        let json = match self.pool.run(input, deadline).await {
            Ok(answer) => answer?,
            Err(PoolRefusal::Full) => return Err(ScriptError::Busy),
            Err(PoolRefusal::Stopped) => return Err(ScriptError::Stopped),
        };
        decision::read(&json, &facts.scopes, api_scopes)
            .map_err(|e| ScriptError::Failed(Failure::Engine(e)))
    }

    /// The pool's counters and each runtime's memory.
    pub fn stats(&self) -> &pool::PoolStats {
        self.pool.stats()
    }
}

/// Compile every configured script once, on this thread, and name every
/// problem (`check-config`).
pub fn check(config: &ExtensibilityConfig) -> Vec<String> {
    if config.is_empty() {
        return Vec::new();
    }
    let sources = match Source::all(config) {
        Ok(s) => s,
        Err(problems) => return strings(problems),
    };
    match host::Host::build(
        &sources,
        config.memory_limit,
        Arc::new(cache::ScriptCache::default()),
        host::compile_deadline(config.timeout),
    ) {
        Ok(_) => Vec::new(),
        Err(problems) => strings(problems),
    }
}

fn strings(problems: Vec<source::SyntaxProblem>) -> Vec<String> {
    problems.iter().map(|p| p.to_string()).collect()
}
