//! Configuration: the TOML file, parsed once into typed, validated values.
//!
//! `raw.rs` mirrors the file (unknown keys rejected), `parse.rs` reads the text
//! into it collecting every unknown key and type error, `validate/` converts it
//! into [`Config`] and reports every problem at once with its key path, and
//! `units.rs` reads durations and sizes. Nothing after [`Config::from_toml`]
//! re-checks the config.

mod attack;
pub mod jwa;
mod mfa;
mod ops;
mod parse;
mod raw;
mod store;
mod units;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Method};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

pub use attack::AttackProtectionConfig;
pub use mfa::{EncryptionKeySource, MfaConfig, MfaEmailConfig, StepUp};
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

/// `[extensibility]` with the `[[rules]]` and `[[actions]]` it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensibilityConfig {
    /// Wall-clock budget of one login's whole script chain.
    pub timeout: std::time::Duration,
    /// Memory limit of each JavaScript runtime, in bytes.
    pub memory_limit: usize,
    /// Threads that run scripts (each owns one runtime).
    pub workers: usize,
    /// Script chains that may wait for a worker; more are refused with a 503.
    pub queue: usize,
    /// Enabled rules, in file order.
    pub rules: Vec<ScriptConfig>,
    /// Enabled actions, in file order.
    pub actions: Vec<ScriptConfig>,
}

impl Default for ExtensibilityConfig {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(2),
            memory_limit: 32 << 20,
            workers: 2,
            queue: 64,
            rules: Vec::new(),
            actions: Vec::new(),
        }
    }
}

impl ExtensibilityConfig {
    /// Whether any script runs on a login.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.actions.is_empty()
    }
}

/// One `[[rules]]` or `[[actions]]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Its name, in logs and errors.
    pub name: String,
    /// The script file, as written in the config.
    pub script: PathBuf,
    /// Its key path in the config (`rules[0]`), for errors.
    pub key: String,
    /// A rule's `configuration` global, or an action's `event.secrets`.
    pub values: BTreeMap<String, String>,
}

impl fmt::Debug for ScriptConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: only their names are shown.
        f.debug_struct("ScriptConfig")
            .field("name", &self.name)
            .field("script", &self.script)
            .field("key", &self.key)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

pub use ops::{HealthCheckConfig, MetricsConfig, RateLimitConfig, RateLimitKey};

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

/// A secret from the config: compared in constant time, never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[[clients]]`
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client_id`
    pub id: String,
    /// Display name (rules' `context.clientName`).
    pub name: String,
    /// `None` for a public client.
    pub secret: Option<Secret>,
    /// Grants the client may use.
    pub grant_types: Vec<String>,
    /// Realms the client may log users into.
    pub realms: Vec<String>,
    /// Honour `auth0-forwarded-for` from this client (only with a secret).
    pub trust_forwarded_for: bool,
    /// Refresh-token policy.
    pub refresh: RefreshPolicy,
}

/// How a client's refresh tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Every exchange returns a new refresh token and retires the old one.
    pub rotation: bool,
    /// A retired token presented again within this long is a race, not a theft.
    pub reuse_leeway: Duration,
    /// A family ends this long after its login, however often it is rotated.
    pub absolute_lifetime: Duration,
    /// A family ends when unused for this long.
    pub idle_lifetime: Duration,
    /// Live families per user with this client; the oldest are dropped beyond it.
    pub max_families: usize,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        let thirty_days = Duration::from_secs(30 * 86_400);
        Self {
            rotation: true,
            reuse_leeway: Duration::ZERO,
            absolute_lifetime: thirty_days,
            idle_lifetime: thirty_days,
            max_families: 200,
        }
    }
}

/// MFA policy of a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    /// Never asked.
    Off,
    /// Asked once the user has enrolled.
    Optional,
    /// Always asked.
    Required,
}

/// `[[realms]]`
#[derive(Debug, Clone)]
pub struct RealmConfig {
    /// The realm (Auth0 connection) name.
    pub name: String,
    /// MFA policy.
    pub mfa: MfaPolicy,
}

/// One upstream base URL of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `http` or `https` (`http` for an `h2c://` upstream).
    pub scheme: Scheme,
    /// Written `h2c://`: HTTP/2 with prior knowledge, in cleartext.
    pub h2c: bool,
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix to put before the forwarded path, without a trailing slash ("" for none).
    pub base_path: String,
    /// The URL as written, for logs.
    pub url: String,
}

/// `upstream_protocol`: which HTTP version a route speaks to its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/2 where ALPN picks it (`https`), HTTP/1.1 over `http`, HTTP/2 over `h2c`.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN offers only `http/1.1`).
    Http1,
    /// HTTP/2 only: ALPN `h2` for `https`, prior knowledge for `http`.
    Http2,
}

/// Which `Host` header the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostHeader {
    /// The upstream's own `host:port`.
    Upstream,
    /// The `Host` (or HTTP/2 `:authority`) the client sent.
    Client,
}

/// Who may use a route.
#[derive(Debug, Clone)]
pub enum RoutePolicy {
    /// No token needed.
    Public,
    /// A bearer token valid for `audience` with the method's scopes.
    Protected {
        /// Required audience.
        audience: String,
        /// Scopes required when the method has no list of its own.
        scopes: Vec<String>,
        /// Per-method scope lists.
        methods: HashMap<Method, Vec<String>>,
    },
}

/// `[[routes]]`
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Path prefix (normalised, starts with `/`).
    pub prefix: String,
    /// One or more upstreams, balanced round-robin.
    pub upstreams: Vec<UpstreamTarget>,
    /// Token policy.
    pub policy: RoutePolicy,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
    /// Request-body limit in bytes.
    pub max_body: Option<u64>,
    /// `Host` header behaviour.
    pub host_header: HostHeader,
    /// HTTP version towards the upstreams (`upstream_protocol`).
    pub upstream_protocol: UpstreamProtocol,
    /// Pass the client's `Authorization` header upstream.
    pub forward_authorization: bool,
    /// Claims copied into request headers (`header <- claim path`).
    pub claims_to_headers: Vec<(HeaderName, String)>,
    /// Step-up: which requests need a token from a login that did MFA.
    pub require_mfa: StepUp,
    /// Per-consumer request rate (`rate_limit`).
    pub rate_limit: Option<RateLimitConfig>,
    /// Active health checks of the upstreams (`health_check`).
    pub health_check: Option<HealthCheckConfig>,
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
