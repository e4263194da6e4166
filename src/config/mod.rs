//! Configuration: the TOML file, parsed once into typed, validated values.
//!
//! `raw.rs` mirrors the file (unknown keys rejected), `parse.rs` reads the text
//! into it collecting every unknown key and type error, `validate/` converts it
//! into [`Config`] and reports every problem at once with its key path, and
//! `units.rs` reads durations and sizes. Nothing after [`Config::from_toml`]
//! re-checks the config. The typed values of the larger sections live beside
//! this file, one concept each: `routes.rs`, `clients.rs` (clients and realms),
//! `extensibility.rs`, `mfa.rs`, `attack.rs`, `ops.rs` and `store.rs`.

mod attack;
mod clients;
mod extensibility;
pub mod jwa;
mod mfa;
mod ops;
mod parse;
mod raw;
mod routes;
mod store;
mod units;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

pub use attack::AttackProtectionConfig;
pub use clients::{ClientConfig, MfaPolicy, RealmConfig, RefreshPolicy, Secret};
pub use extensibility::{ExtensibilityConfig, ScriptConfig};
pub use mfa::{EncryptionKeySource, MfaConfig, MfaEmailConfig, SmtpCredentials, SmtpTls, StepUp};
pub use store::{PgSettings, PgTls, StoreBackend, redact_url};
pub use units::{parse_duration, parse_size};

/// The environment variable that names the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "PASSGATE_CONFIG";
/// The config file used when neither `--config` nor `$PASSGATE_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/passgate.toml";

/// A validated configuration. Relative paths are relative to the working directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[upstream]`
    pub upstream: UpstreamConfig,
    /// `[gate]`
    pub gate: GateConfig,
    /// `[issuer]`, when passgate issues tokens itself.
    pub issuer: Option<IssuerConfig>,
    /// `[store]`
    pub store: StoreConfig,
    /// `[[apis]]`
    pub apis: Vec<ApiConfig>,
    /// `[[clients]]`
    pub clients: Vec<ClientConfig>,
    /// `[[realms]]`
    pub realms: Vec<RealmConfig>,
    /// `[[routes]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[[trusted_issuers]]`
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// `[attack_protection]`
    pub attack_protection: AttackProtectionConfig,
    /// `[passwords]`
    pub passwords: PasswordsConfig,
    /// `[mfa]`
    pub mfa: MfaConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[extensibility]`, `[[rules]]` and `[[actions]]`
    pub extensibility: ExtensibilityConfig,
}

pub use ops::{HealthCheckConfig, MetricsConfig, RateLimitConfig, RateLimitKey};
pub use routes::{HostHeader, RouteConfig, RoutePolicy, UpstreamProtocol, UpstreamTarget};

/// `passwords.queue` when not set: this many checks may wait per worker.
pub const DEFAULT_QUEUE_PER_WORKER: usize = 128;

/// `[passwords]`: how passwords are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordsConfig {
    /// argon2id memory, in KiB.
    pub memory_kib: u32,
    /// argon2id passes.
    pub iterations: u32,
    /// argon2id lanes.
    pub parallelism: u32,
    /// Threads that verify passwords (at the lowest scheduling priority).
    pub workers: usize,
    /// Checks that may wait for a worker; more are refused with a 503.
    pub queue: usize,
    /// How soon a password check may be answered at the earliest.
    pub verify_floor: VerifyFloor,
}

/// `passwords.verify_floor`: every password check (unknown user, argon2 or
/// bcrypt hash) is answered no sooner than this, so its time does not tell
/// which case it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyFloor {
    /// `"auto"`: measured at start from the argon2 cost and the bcrypt costs
    /// in the store, with a margin; raised for bcrypt costs met later.
    Auto,
    /// A fixed duration; zero turns the floor off.
    Fixed(std::time::Duration),
}

/// Every problem found in a config file, each as `key.path: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the config:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Parse and validate a config file's text; `secret_env` is read from the process environment.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Self::from_toml_with_env(text, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_toml`], with environment look-ups (`secret_env`) answered by `env`.
    pub fn from_toml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let parse::Parsed {
            raw,
            mut problems,
            removed,
        } = parse::parse(text)?;
        match validate::validate(raw, env) {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigErrors(problems)),
            Err(ConfigErrors(found)) => {
                problems.extend(found.into_iter().filter(|p| !parse::covered(&removed, p)));
                Err(ConfigErrors(problems))
            }
        }
    }

    /// Read, parse and validate the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![format!(
                "{}: cannot read the config file: {e}",
                path.display()
            )])
        })?;
        Self::from_toml(&text)
    }
}

/// `[server]`: the TLS listener and its bounds.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the TLS listener binds.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// Generate a self-signed localhost certificate when both files are missing.
    pub dev_certificate: bool,
    /// Plain-HTTP admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: Option<SocketAddr>,
    /// Proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// The most client connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Deadline for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Deadline for a request's headers (HTTP/1.1), and for a new connection's first request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests get to finish.
    pub shutdown_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Worker threads, each with its own event loop and upstream pool.
    pub workers: usize,
    /// Whether each worker thread is bound to a CPU of its own.
    pub worker_cpu_affinity: WorkerCpuAffinity,
    /// Let client headers with `_` in their names through (except those that
    /// alias identity, claim or forwarding headers).
    pub allow_underscores_in_headers: bool,
    /// Client headers removed beside the built-in address and URL overrides.
    pub strip_request_headers: Vec<HeaderName>,
    /// The longest wait for the next piece of a request body (408 past it).
    pub body_read_timeout: Duration,
    /// A WebSocket tunnel without traffic either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// The largest request header section, HTTP/1.1 and HTTP/2 (431 past it).
    pub max_header_size: usize,
    /// Where `passgate serve` writes its process id at start (removed at
    /// exit); `passgate reload` signals that process.
    pub pid_file: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    pub level: String,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// One line per request.
    pub access: bool,
}

/// `server.worker_cpu_affinity`: where the worker threads may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerCpuAffinity {
    /// `"off"`: wherever the system schedules them.
    #[default]
    Off,
    /// `"auto"`: worker `i` on the `i`-th CPU the process may use (round
    /// robin when there are more workers than CPUs).
    Auto,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[upstream]`: the shared upstream client.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Deadline for a TCP (and TLS) connection to an upstream.
    pub connect_timeout: Duration,
    /// Deadline for an upstream's response headers.
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream.
    pub pool_max_idle_per_host: usize,
    /// Extra CA certificates (PEM) trusted for `https` upstreams, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// An upstream that refused a connection is skipped for this long.
    pub unhealthy_cooldown: Duration,
}

/// `[gate]`: bearer-token checks.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Tolerance on `exp` and `nbf`.
    pub leeway: Duration,
    /// Verified-token cache: most entries.
    pub cache_entries: usize,
    /// Verified-token cache: most bytes (tokens + claims).
    pub cache_bytes: u64,
    /// Remote key sets are refetched this often (bounded by `Cache-Control: max-age`).
    pub jwks_refresh: Duration,
    /// An unknown `kid` refetches a remote key set at most this often.
    pub jwks_min_refresh: Duration,
    /// Deadline for one key-set or discovery fetch.
    pub jwks_fetch_timeout: Duration,
}

/// `[issuer]`: passgate's own token issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` claim, with its trailing slash.
    pub url: String,
    /// Directory of PEM private keys.
    pub signing_keys: PathBuf,
    /// Algorithm for new keys.
    pub algorithm: Algorithm,
    /// Audience used when a token request names none.
    pub default_audience: Option<String>,
    /// Realm used by `grant_type=password`.
    pub default_realm: Option<String>,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite file (`path`, default `data/passgate.db`); the store is
    /// this file only when [`StoreConfig::backend`] is SQLite.
    pub path: PathBuf,
    /// Where the state lives: the SQLite file or PostgreSQL.
    pub backend: StoreBackend,
    /// The key that encrypts secrets at rest (TOTP seeds).
    pub encryption_key: EncryptionKeySource,
}

/// `[[apis]]`: a resource server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API identifier (`aud`).
    pub audience: String,
    /// Scopes the API defines.
    pub scopes: Vec<String>,
    /// Access-token lifetime.
    pub token_lifetime: Duration,
    /// Whether refresh tokens may be issued for it.
    pub allow_offline_access: bool,
}

/// Where a trusted issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A local JWKS file.
    JwksFile(PathBuf),
    /// A local PEM public key (one key, any `kid`).
    PublicKeyFile(PathBuf),
    /// A JWKS fetched and refreshed from this URL.
    JwksUrl(http::Uri),
    /// `<issuer>/.well-known/openid-configuration` → `jwks_uri`.
    Discovery(http::Uri),
}

/// `[[trusted_issuers]]`
#[derive(Debug, Clone)]
pub struct TrustedIssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
    /// Key source.
    pub source: KeySource,
    /// Algorithms accepted from this issuer.
    pub algorithms: Vec<Algorithm>,
}

/// Parse an upstream URL or panic; for tests in other modules.
#[cfg(test)]
pub fn validate_upstream_for_tests(url: &str) -> UpstreamTarget {
    validate::parse_upstream(url).unwrap_or_else(|e| panic!("{e}"))
}

/// True for a grant type passgate knows on the wire.
pub fn known_grant(grant: &str) -> bool {
    validate::KNOWN_GRANTS.contains(&grant)
}
