//! `[[routes]]`: which paths go to which upstreams, and who may use them.

use std::collections::HashMap;
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Method};

use super::{HealthCheckConfig, RateLimitConfig, StepUp};

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
    /// The URL as written, for logs (shared: every proxied request's
    /// access-log line names it).
    pub url: Arc<str>,
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
