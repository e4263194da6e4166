//! Operations settings: `[metrics]`, and the `rate_limit` and `health_check`
//! of a route (validated in `validate/ops.rs`).

use std::num::NonZeroU32;
use std::time::Duration;

use http::Method;

/// `[metrics]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Record and serve Prometheus metrics (default true).
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Whom a route's rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKey {
    /// The verified token's `sub` (protected routes only).
    Subject,
    /// The verified token's `azp` or `client_id` (protected routes only).
    Client,
    /// The client address (`trusted_proxies` decide which one).
    Ip,
}

impl RateLimitKey {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitKey::Subject => "subject",
            RateLimitKey::Client => "client",
            RateLimitKey::Ip => "ip",
        }
    }
}

/// `[[routes]] rate_limit = { key, rate, per, burst, methods }`: each
/// consumer may send `rate` requests per `per`, with bursts up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Whom to count.
    pub key: RateLimitKey,
    /// Requests per window.
    pub rate: NonZeroU32,
    /// The window.
    pub per: Duration,
    /// The most requests at once after a quiet spell (at least `rate`).
    pub burst: NonZeroU32,
    /// Only these methods are counted; empty: every method.
    pub methods: Vec<Method>,
}

/// `[[routes]] health_check = { path, interval, timeout, unhealthy_after, healthy_after }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// The path probed with `GET` on every upstream (after its base path).
    pub path: String,
    /// Time between probes of one upstream.
    pub interval: Duration,
    /// A probe without a 2xx answer within this long fails.
    pub timeout: Duration,
    /// Consecutive failed probes that take an upstream out.
    pub unhealthy_after: u32,
    /// Consecutive good probes that put it back.
    pub healthy_after: u32,
}
