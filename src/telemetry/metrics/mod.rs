//! Prometheus metrics (prometheus-client), served by the admin listener.
//!
//! Every label value comes from the config (route prefixes, upstream URLs,
//! issuer names, script names) or from a fixed list in the code (status
//! classes, grant types, error codes), never from a request, so the number of
//! series is bounded by the config. Hot-path handles are resolved once
//! ([`Metrics::route`]) and record with atomics only. Values that other
//! modules already count (attack protection, the hashing pool, the token
//! cache, JWKS fetches) are read at scrape time by the admin listener into a
//! scrape-time [`Registry`] and rendered after this one ([`Metrics::render`]).
//! `[metrics] enabled = false` gives [`Metrics::disabled`]: every handle is
//! `None` and nothing is recorded. Every metric is described in
//! `docs/metrics.md`.

mod families;
mod histogram;
mod route;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use families::{ScriptKind, ScriptMetrics};
pub use histogram::{LATENCY_BUCKETS, LatencyHistogram, Snapshot};
pub use route::{MethodClass, RouteMetrics, STATUS_CLASSES, UpstreamFailure};

use families::*;

/// The content type of [`Metrics::render`]'s output (OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The gateway's metric families and its readiness flag.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    draining: AtomicBool,
    registry: Mutex<Registry>,
    f: Families,
    /// Token answers by grant and outcome, mirrored for the status page.
    token_counts: Box<[AtomicU64]>,
    log_drops: OnceLock<crate::telemetry::DropCounter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Metrics {
    /// Metrics that record (`enabled`) or do nothing.
    pub fn new(enabled: bool) -> Self {
        let mut registry = Registry::with_prefix("passgate");
        let f = Families::register(&mut registry);
        Self {
            enabled,
            draining: AtomicBool::new(false),
            registry: Mutex::new(registry),
            f,
            token_counts: (0..GRANT_LABELS.len() * OUTCOME_LABELS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            log_drops: OnceLock::new(),
        }
    }

    /// Metrics that record nothing (`[metrics] enabled = false`).
    pub fn disabled() -> Self {
        Self::new(false)
    }

    /// True unless `[metrics] enabled = false`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The handles of the route with this prefix, or `None` when disabled.
    pub fn route(&self, prefix: &str) -> Option<RouteMetrics> {
        if !self.enabled {
            return None;
        }
        let f = &self.f;
        let requests = MethodClass::ALL.map(|m| {
            STATUS_CLASSES.map(|code| {
                f.requests.get_or_create_owned(&RequestLabels {
                    route: prefix.to_string(),
                    method: m.as_str(),
                    code,
                })
            })
        });
        let route = RouteLabel {
            route: prefix.to_string(),
        };
        Some(RouteMetrics {
            requests,
            duration: f.request_duration.get_or_create_owned(&route),
            upstream_duration: f.upstream_duration.get_or_create_owned(&route),
            upstream_failures: UpstreamFailure::ALL.map(|k| {
                f.upstream_failures.get_or_create_owned(&FailureLabels {
                    route: prefix.to_string(),
                    kind: k.as_str(),
                })
            }),
            rate_limited: f.rate_limited.get_or_create_owned(&route),
            unavailable: f.unavailable.get_or_create_owned(&route),
        })
    }

    /// Count a request answered by passgate itself (token endpoint, 404s,
    /// malformed requests), under `route` = `auth` or `-`.
    pub fn local_request(&self, route: &'static str, method: MethodClass, status: u16) {
        if !self.enabled {
            return;
        }
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.f
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.as_str(),
                code: STATUS_CLASSES[class],
            })
            .inc();
    }

    /// A client connection opened; the gauge goes down when the guard drops.
    pub fn connection(&self) -> Option<ConnectionGuard> {
        self.enabled.then(|| {
            self.f.connections.inc();
            ConnectionGuard(self.f.connections.clone())
        })
    }

    /// An idle connection parked (`server/park.rs`); the gauge goes down
    /// when the guard drops, as the connection resumes or closes.
    pub fn parked(&self) -> Option<ConnectionGuard> {
        self.enabled.then(|| {
            self.f.parked.inc();
            ConnectionGuard(self.f.parked.clone())
        })
    }

    /// Idle connections parked now.
    pub fn connections_parked(&self) -> i64 {
        self.f.parked.get()
    }

    /// A TLS handshake failed (`timeout` when it ran out of time).
    pub fn tls_handshake_failed(&self, timeout: bool) {
        if self.enabled {
            let reason = if timeout { "timeout" } else { "error" };
            self.f
                .tls_failures
                .get_or_create(&ReasonLabel { reason })
                .inc();
        }
    }

    /// One token-endpoint answer: `grant` as sent (unknown grants count as
    /// `other`), `outcome` `success` or the wire error code.
    pub fn token_outcome(&self, grant: Option<&str>, outcome: &str) {
        if !self.enabled {
            return;
        }
        let (g, o) = (grant_index(grant), outcome_index(outcome));
        self.f
            .token_requests
            .get_or_create(&TokenLabels {
                grant: GRANT_LABELS[g],
                outcome: OUTCOME_LABELS[o],
            })
            .inc();
        if let Some(c) = self.token_counts.get(g * OUTCOME_LABELS.len() + o) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Token answers so far, by (grant, outcome); only those seen.
    pub fn token_outcomes(&self) -> Vec<(&'static str, &'static str, u64)> {
        let per = OUTCOME_LABELS.len();
        self.token_counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (GRANT_LABELS[i / per], OUTCOME_LABELS[i % per], n))
            })
            .collect()
    }

    /// Count access-log lines the log writer dropped (from `telemetry::init`).
    pub fn set_log_drops(&self, counter: crate::telemetry::DropCounter) {
        let _ = self.log_drops.set(counter);
    }

    /// Access-log lines dropped so far.
    pub fn log_lines_dropped(&self) -> u64 {
        self.log_drops
            .get()
            .map_or(0, crate::telemetry::DropCounter::get)
    }

    /// Client connections open now.
    pub fn connections_active(&self) -> i64 {
        self.f.connections.get()
    }

    /// Handles for one rule or action, by its config name.
    pub fn script(&self, kind: ScriptKind, name: &str) -> Option<ScriptMetrics> {
        self.enabled
            .then(|| ScriptMetrics::new(&self.f, kind, name))
    }

    /// One MFA event: `factor` (`otp`, `email`, `recovery_code`) and
    /// `outcome` (`challenged`, `verified`, `failed`, `enrolled`, `locked`).
    pub fn mfa(&self, factor: &'static str, outcome: &'static str) {
        if self.enabled {
            self.f
                .mfa
                .get_or_create(&MfaLabels { factor, outcome })
                .inc();
        }
    }

    /// The gateway stopped accepting: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once the gateway is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The OpenMetrics text: these families, then `scraped` (values read at
    /// scrape time), then `# EOF`.
    pub fn render(&self, scraped: &Registry) -> String {
        let mut out = String::new();
        let ok = match self.registry.lock() {
            Ok(r) => encode_registry(&mut out, &r),
            Err(poisoned) => encode_registry(&mut out, &poisoned.into_inner()),
        }
        .and_then(|_| encode_registry(&mut out, scraped))
        .and_then(|_| encode_eof(&mut out));
        if ok.is_err() {
            tracing::warn!("could not encode the metrics");
        }
        out
    }
}

/// A token-endpoint answer's grant and outcome, carried on the response
/// (as an extension) to where the metrics are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOutcome {
    /// `grant_type` as sent, if any.
    pub grant: Option<String>,
    /// `success` or the wire error code.
    pub outcome: String,
}

/// Holds one open connection in `passgate_connections_active`.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Label pairs of a scrape-time value.
pub type Labels = Vec<(&'static str, String)>;

/// A scrape-time counter family, for values another module counts.
pub fn snapshot_counter(registry: &mut Registry, name: &str, help: &str, values: &[(Labels, u64)]) {
    let family = Family::<Labels, Counter>::default();
    for (labels, n) in values {
        family.get_or_create(labels).inc_by(*n);
    }
    registry.register(name, help, family);
}

/// A scrape-time gauge family (one series with no labels: an empty label list).
pub fn snapshot_gauge(registry: &mut Registry, name: &str, help: &str, values: &[(Labels, i64)]) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, n) in values {
        family.get_or_create(labels).set(*n);
    }
    registry.register(name, help, family);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};
    use std::time::Duration;

    #[test]
    fn route_requests_render_with_config_labels() {
        let m = Metrics::new(true);
        let r = m.route("/api/").unwrap_or_else(|| panic!("enabled"));
        r.request(
            MethodClass::of(&Method::GET),
            StatusCode::OK,
            Duration::from_millis(2),
        );
        r.request(
            MethodClass::of(&Method::POST),
            StatusCode::BAD_GATEWAY,
            Duration::from_millis(2),
        );
        m.token_outcome(Some("password"), "invalid_grant");
        m.token_outcome(Some("x-made-up"), "made_up_code");
        let text = m.render(&Registry::default());
        for want in [
            "passgate_http_requests_total{route=\"/api/\",method=\"read\",code=\"2xx\"} 1",
            "passgate_http_requests_total{route=\"/api/\",method=\"write\",code=\"5xx\"} 1",
            "passgate_http_request_duration_seconds_count{route=\"/api/\"} 2",
            "passgate_token_requests_total{grant=\"password\",outcome=\"invalid_grant\"} 1",
            "passgate_token_requests_total{grant=\"other\",outcome=\"other\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert_eq!(r.totals(), (2, 1));
    }

    #[test]
    fn disabled_metrics_hand_out_no_handles() {
        let m = Metrics::disabled();
        assert!(m.route("/api/").is_none());
        assert!(m.connection().is_none());
        m.token_outcome(Some("password"), "success");
        assert!(
            !m.render(&Registry::default())
                .contains("outcome=\"success\"")
        );
    }
}
