//! The config file exactly as written: serde structs that reject unknown keys.
//!
//! Nothing here is checked beyond its TOML type; `validate.rs` turns a
//! [`RawConfig`] into a [`super::Config`] and names every problem it finds.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub gate: RawGate,
    pub issuer: Option<RawIssuer>,
    pub store: Option<RawStore>,
    #[serde(default)]
    pub apis: Vec<RawApi>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    #[serde(default)]
    pub realms: Vec<RawRealm>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub trusted_issuers: Vec<RawTrustedIssuer>,
    pub attack_protection: Option<RawAttackProtection>,
    #[serde(default)]
    pub passwords: RawPasswords,
    pub mfa: Option<RawMfa>,
    #[serde(default)]
    pub metrics: RawMetrics,
    pub extensibility: Option<RawExtensibility>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub actions: Vec<RawAction>,
}

/// `[mfa]`: second factors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMfa {
    pub max_failures: Option<i64>,
    pub failure_refill: Option<String>,
    pub email: Option<RawMfaEmail>,
}

/// `[mfa.email]`: the e-mail channel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMfaEmail {
    pub smtp_url: Option<String>,
    pub starttls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub from: Option<String>,
}

/// `[metrics]`: Prometheus metrics on the admin listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: Option<bool>,
}

/// `[[routes]] rate_limit`: a per-consumer request rate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub key: Option<String>,
    pub rate: Option<i64>,
    pub per: Option<String>,
    pub burst: Option<i64>,
    pub methods: Option<Vec<String>>,
}

/// `[[routes]] health_check`: active probes of the route's upstreams.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub unhealthy_after: Option<i64>,
    pub healthy_after: Option<i64>,
}

/// `[extensibility]`: the budget of the Rules and Actions scripts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtensibility {
    pub timeout: Option<String>,
    pub memory_limit: Option<toml::Value>,
    pub workers: Option<i64>,
    pub queue: Option<i64>,
}

/// `[[rules]]`: a legacy Auth0 Rule.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub script: Option<String>,
    pub enabled: Option<bool>,
    pub configuration: Option<BTreeMap<String, String>>,
}

/// `[[actions]]`: an Auth0 post-login Action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub name: Option<String>,
    pub script: Option<String>,
    pub enabled: Option<bool>,
    pub secrets: Option<BTreeMap<String, String>>,
    pub secrets_env: Option<BTreeMap<String, String>>,
}

/// `[passwords]`: argon2id cost and the hashing pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPasswords {
    pub memory: Option<toml::Value>,
    pub iterations: Option<i64>,
    pub parallelism: Option<i64>,
    pub workers: Option<i64>,
    pub queue: Option<i64>,
    pub verify_floor: Option<String>,
}

/// `[server]`: the TLS listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub dev_certificate: Option<bool>,
    pub admin_listen: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections: Option<i64>,
    pub tls_handshake_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub max_concurrent_streams: Option<i64>,
    pub workers: Option<i64>,
    pub worker_cpu_affinity: Option<String>,
    pub allow_underscores_in_headers: Option<bool>,
    pub strip_request_headers: Option<Vec<String>>,
    pub body_read_timeout: Option<String>,
    pub tunnel_idle_timeout: Option<String>,
    pub max_header_size: Option<toml::Value>,
    pub pid_file: Option<String>,
}

/// `[log]`: what is logged and how.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access: Option<bool>,
}

/// `[upstream]`: the shared upstream connection pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle_per_host: Option<i64>,
    pub ca_file: Option<String>,
    pub unhealthy_cooldown: Option<String>,
}

/// `[gate]`: bearer-token checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub realm: Option<String>,
    pub leeway: Option<String>,
    pub cache_entries: Option<i64>,
    pub cache_bytes: Option<toml::Value>,
    pub jwks_refresh: Option<String>,
    pub jwks_min_refresh: Option<String>,
    pub jwks_fetch_timeout: Option<String>,
}

/// `[issuer]`: passgate's own authorization server identity.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    pub url: Option<String>,
    pub signing_keys: Option<String>,
    pub algorithm: Option<String>,
    pub default_audience: Option<String>,
    pub default_realm: Option<String>,
}

/// `[store]`: the embedded database, or PostgreSQL.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub pool_size: Option<i64>,
    pub connect_timeout: Option<String>,
    pub statement_timeout: Option<String>,
    pub tls_ca: Option<String>,
    pub encryption_key_file: Option<String>,
    pub encryption_key_env: Option<String>,
}

/// `[[apis]]`: a resource server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub audience: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub token_lifetime: Option<String>,
    pub allow_offline_access: Option<bool>,
}

/// `[[clients]]`: an application allowed to use the token endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub id: Option<String>,
    pub name: Option<String>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub realms: Option<Vec<String>>,
    pub trust_forwarded_for: Option<bool>,
    pub refresh_token_rotation: Option<bool>,
    pub refresh_token_reuse_leeway: Option<String>,
    pub refresh_token_absolute_lifetime: Option<String>,
    pub refresh_token_idle_lifetime: Option<String>,
    pub refresh_token_max_families: Option<i64>,
}

/// `[[realms]]`: a user directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealm {
    pub name: Option<String>,
    pub mfa: Option<String>,
}

/// `[[routes]]`: a path prefix and where it goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: Option<String>,
    pub upstream: Option<String>,
    pub upstreams: Option<Vec<String>>,
    pub audience: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub methods: Option<BTreeMap<String, Vec<String>>>,
    pub public: Option<bool>,
    pub strip_prefix: Option<bool>,
    pub max_body: Option<toml::Value>,
    pub host_header: Option<String>,
    pub upstream_protocol: Option<String>,
    pub forward_authorization: Option<bool>,
    pub claims_to_headers: Option<BTreeMap<String, String>>,
    pub require_mfa: Option<toml::Value>,
    pub rate_limit: Option<RawRateLimit>,
    pub health_check: Option<RawHealthCheck>,
}

/// `[[trusted_issuers]]`: another token issuer whose tokens routes accept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustedIssuer {
    pub issuer: Option<String>,
    pub jwks_file: Option<String>,
    pub public_key_file: Option<String>,
    pub jwks_url: Option<String>,
    pub algorithms: Option<Vec<String>>,
}

/// `[attack_protection]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttackProtection {
    pub request_limit: Option<i64>,
    pub request_period: Option<String>,
    pub brute_force: Option<bool>,
    pub brute_force_threshold: Option<i64>,
    pub brute_force_expiry: Option<String>,
    pub account_lockout: Option<bool>,
    pub suspicious_ip: Option<bool>,
    pub suspicious_ip_threshold: Option<i64>,
    pub suspicious_ip_regain: Option<String>,
    pub suspicious_ip_allowlist: Option<Vec<String>>,
    pub user_ip_burst: Option<i64>,
    pub user_ip_limit: Option<i64>,
    pub user_ip_period: Option<String>,
    pub sweep_interval: Option<String>,
}
