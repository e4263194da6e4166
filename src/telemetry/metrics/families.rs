//! The registered metric families, their label sets, and the bounded label
//! values for the token endpoint and the script engine.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::LatencyHistogram;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FailureLabels {
    pub route: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TokenLabels {
    pub grant: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ScriptLabels {
    pub kind: &'static str,
    pub script: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ScriptFailureLabels {
    pub kind: &'static str,
    pub script: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MfaLabels {
    pub factor: &'static str,
    pub outcome: &'static str,
}

/// Every family this module records into.
#[derive(Debug)]
pub(super) struct Families {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabel, LatencyHistogram>,
    pub upstream_duration: Family<RouteLabel, LatencyHistogram>,
    pub upstream_failures: Family<FailureLabels, Counter>,
    pub rate_limited: Family<RouteLabel, Counter>,
    pub unavailable: Family<RouteLabel, Counter>,
    pub connections: Gauge,
    pub parked: Gauge,
    pub tls_failures: Family<ReasonLabel, Counter>,
    pub token_requests: Family<TokenLabels, Counter>,
    pub script_duration: Family<ScriptLabels, LatencyHistogram>,
    pub script_failures: Family<ScriptFailureLabels, Counter>,
    pub mfa: Family<MfaLabels, Counter>,
}

impl Families {
    pub fn register(r: &mut Registry) -> Self {
        let f = Families {
            requests: Family::default(),
            request_duration: Family::default(),
            upstream_duration: Family::default(),
            upstream_failures: Family::default(),
            rate_limited: Family::default(),
            unavailable: Family::default(),
            connections: Gauge::default(),
            parked: Gauge::default(),
            tls_failures: Family::default(),
            token_requests: Family::default(),
            script_duration: Family::default(),
            script_failures: Family::default(),
            mfa: Family::default(),
        };
        r.register(
            "http_requests",
            "Requests answered, by route prefix, method class and status class",
            f.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time from the request's head to the response's head, by route",
            f.request_duration.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time from sending a request upstream to its response head, by route",
            f.upstream_duration.clone(),
        );
        r.register(
            "upstream_failures",
            "Requests that could not be forwarded, by route and kind",
            f.upstream_failures.clone(),
        );
        r.register(
            "route_rate_limited",
            "Requests refused by a route's rate_limit, by route",
            f.rate_limited.clone(),
        );
        r.register(
            "route_unavailable",
            "Requests refused with 503 because every upstream of the route was unhealthy",
            f.unavailable.clone(),
        );
        r.register(
            "connections_active",
            "Client connections open (TLS handshake done or under way)",
            f.connections.clone(),
        );
        r.register(
            "connections_parked",
            "Idle HTTP/1.1 client connections holding no HTTP buffers",
            f.parked.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, by reason (error or timeout)",
            f.tls_failures.clone(),
        );
        r.register(
            "token_requests",
            "Token endpoint answers, by grant type and outcome (success or the error code)",
            f.token_requests.clone(),
        );
        r.register(
            "script_duration_seconds",
            "Run time of one rule or action, by kind and name",
            f.script_duration.clone(),
        );
        r.register(
            "script_failures",
            "Rules and actions that failed, by kind, name and reason",
            f.script_failures.clone(),
        );
        r.register(
            "mfa_events",
            "MFA challenges and verifications, by factor and outcome",
            f.mfa.clone(),
        );
        f
    }
}

/// The `grant` label values: no grant sent, the known grants, anything else.
pub(super) const GRANT_LABELS: &[&str] = &[
    "none",
    "other",
    "password",
    "http://auth0.com/oauth/grant-type/password-realm",
    "refresh_token",
    "http://auth0.com/oauth/grant-type/mfa-otp",
    "http://auth0.com/oauth/grant-type/mfa-recovery-code",
    "http://auth0.com/oauth/grant-type/mfa-oob",
];

/// The `outcome` label values: success, the wire error codes, anything else.
pub(super) const OUTCOME_LABELS: &[&str] = &[
    "other",
    "success",
    "access_denied",
    "expired_token",
    "invalid_client",
    "invalid_grant",
    "invalid_request",
    "invalid_scope",
    "mfa_required",
    "payload_too_large",
    "request_timeout",
    "server_error",
    "temporarily_unavailable",
    "too_many_attempts",
    "too_many_requests",
    "unauthorized",
    "unauthorized_client",
    "unsupported_grant_type",
];

pub(super) fn grant_index(grant: Option<&str>) -> usize {
    match grant {
        None => 0,
        Some(g) => GRANT_LABELS[2..]
            .iter()
            .position(|k| *k == g)
            .map_or(1, |i| i + 2),
    }
}

pub(super) fn outcome_index(outcome: &str) -> usize {
    OUTCOME_LABELS[1..]
        .iter()
        .position(|k| *k == outcome)
        .map_or(0, |i| i + 1)
}

/// Which script engine stage ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// A legacy Auth0 Rule (`[[rules]]`).
    Rule,
    /// A post-login Action (`[[actions]]`).
    Action,
}

impl ScriptKind {
    fn as_str(self) -> &'static str {
        match self {
            ScriptKind::Rule => "rule",
            ScriptKind::Action => "action",
        }
    }
}

/// One rule's or action's handles: resolve them when the scripts are
/// loaded, record on every run.
#[derive(Debug, Clone)]
pub struct ScriptMetrics {
    duration: LatencyHistogram,
    failures: [Counter; 4],
}

impl ScriptMetrics {
    pub(super) fn new(f: &Families, kind: ScriptKind, name: &str) -> Self {
        let labels = ScriptLabels {
            kind: kind.as_str(),
            script: name.to_string(),
        };
        Self {
            duration: f.script_duration.get_or_create_owned(&labels),
            failures: ["error", "timeout", "memory", "denied"].map(|reason| {
                f.script_failures.get_or_create_owned(&ScriptFailureLabels {
                    kind: kind.as_str(),
                    script: name.to_string(),
                    reason,
                })
            }),
        }
    }

    /// One run and how long it took.
    pub fn ran(&self, took: Duration) {
        self.duration.observe(took);
    }

    /// The script threw (or failed to compile).
    pub fn error(&self) {
        self.failures[0].inc();
    }

    /// The script ran past `[extensibility] timeout`.
    pub fn timeout(&self) {
        self.failures[1].inc();
    }

    /// The script ran past `[extensibility] memory_limit`.
    pub fn out_of_memory(&self) {
        self.failures[2].inc();
    }

    /// The script refused the login (`callback(new UnauthorizedError)` or `api.access.deny`).
    pub fn denied(&self) {
        self.failures[3].inc();
    }
}
