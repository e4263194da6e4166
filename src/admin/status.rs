//! `GET /status`: the gateway at a glance, as JSON, for the status page and
//! for people with `curl`.
//!
//! Per-route rate, p50/p99 and error rate cover the last minute: each request
//! for `/status` keeps a snapshot of every route's counters (at most one per
//! 5 s, for a minute), and the figures are the difference between now and the
//! oldest snapshot in the window (the gateway's start while it is younger than
//! a minute). Nothing runs in the background for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::Live;
use crate::clock::SharedClock;
use crate::store::status::{StatusRules, StatusStore};
use crate::telemetry::metrics::Snapshot;
use crate::tokens::ring::LiveRing;

/// The window the per-route figures cover.
pub const WINDOW: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What `/status` reads beyond the request path.
#[derive(Debug)]
pub struct StatusSources {
    /// The store's counts (sessions, blocks, throttles), with passgate's own issuer.
    pub store: Option<(Arc<dyn StatusStore>, StatusRules)>,
    /// passgate's signing keys, as they are now.
    pub keys: Option<LiveRing>,
    /// Whether the store can be reached (`/readyz` says when it cannot).
    pub reachability: Option<Arc<dyn crate::store::Reachability>>,
    /// Wall-clock time.
    pub clock: SharedClock,
}

/// One route's counters at one moment.
#[derive(Debug, Clone, Default)]
struct RouteSample {
    requests: u64,
    errors: u64,
    latency: Snapshot,
}

#[derive(Debug)]
struct Sample {
    at: Instant,
    routes: HashMap<String, RouteSample>,
}

/// The config generation and the last reload, filled in by reload.
#[derive(Debug, Clone)]
pub struct ConfigRecord {
    /// 1 for the config loaded at start, +1 per successful reload.
    pub generation: u64,
    /// When that config was loaded (seconds since the epoch).
    pub loaded_at: i64,
    /// `never reloaded`, `ok`, or the reason the last reload was refused.
    pub last_reload: String,
    /// When the last reload was tried, if ever.
    pub last_reload_at: Option<i64>,
}

/// The admin listener's shared state.
#[derive(Debug)]
pub struct AdminState {
    /// The request handler (routes, gate, auth server, metrics).
    pub app: Arc<dyn Live>,
    sources: StatusSources,
    started: Instant,
    started_at: i64,
    config: Mutex<ConfigRecord>,
    samples: Mutex<VecDeque<Sample>>,
}

impl AdminState {
    /// `None` while the store (if any) can be reached; else why not.
    pub fn store_unavailable(&self) -> Option<String> {
        self.sources.reachability.as_ref()?.unavailable()
    }

    /// State for `app`, loaded now.
    pub fn new(app: Arc<dyn Live>, sources: StatusSources) -> Self {
        let now = sources.clock.now();
        Self {
            app,
            sources,
            started: Instant::now(),
            started_at: now,
            config: Mutex::new(ConfigRecord {
                generation: 1,
                loaded_at: now,
                last_reload: "never reloaded".into(),
                last_reload_at: None,
            }),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Record a reload attempt: `Ok` bumps the generation; `Err` keeps it
    /// and says why the new config was refused.
    pub fn record_reload(&self, result: Result<(), String>) {
        let now = self.sources.clock.now();
        if let Ok(mut c) = self.config.lock() {
            c.last_reload_at = Some(now);
            match result {
                Ok(()) => {
                    c.generation += 1;
                    c.loaded_at = now;
                    c.last_reload = "ok".into();
                }
                Err(why) => c.last_reload = why,
            }
        }
    }

    /// The config record.
    pub fn config_record(&self) -> Option<ConfigRecord> {
        self.config.lock().ok().map(|c| c.clone())
    }

    fn sample(&self) -> Sample {
        let mut routes = HashMap::new();
        for route in self.app.current().router().routes() {
            if let Some(m) = &route.ops.metrics {
                let (requests, errors) = m.totals();
                routes.insert(
                    route.config.prefix.clone(),
                    RouteSample {
                        requests,
                        errors,
                        latency: m.duration().snapshot(),
                    },
                );
            }
        }
        Sample {
            at: Instant::now(),
            routes,
        }
    }

    /// Keep `now` in the window and return the baseline to compare with:
    /// the oldest sample within the window, or the start (all zeros).
    fn baseline(&self, now: &Sample) -> (Duration, HashMap<String, RouteSample>) {
        let Ok(mut samples) = self.samples.lock() else {
            return (now.at - self.started, HashMap::new());
        };
        while samples
            .front()
            .is_some_and(|s| now.at.duration_since(s.at) > WINDOW)
        {
            samples.pop_front();
        }
        let base = match samples.front() {
            Some(s) => (now.at.duration_since(s.at), s.routes.clone()),
            None => (now.at.duration_since(self.started), HashMap::new()),
        };
        if samples
            .back()
            .is_none_or(|s| now.at.duration_since(s.at) >= SAMPLE_EVERY)
        {
            samples.push_back(Sample {
                at: now.at,
                routes: now.routes.clone(),
            });
        }
        base
    }

    /// The `/status` document.
    pub async fn status(&self) -> Value {
        let now_sample = self.sample();
        let (span, base) = self.baseline(&now_sample);
        let secs = span.as_secs_f64().max(1.0);
        let app = self.app.current();
        let metrics = app.metrics();
        let routes: Vec<Value> = app
            .router()
            .routes()
            .iter()
            .map(|route| {
                let prefix = &route.config.prefix;
                let window = now_sample.routes.get(prefix).map(|cur| {
                    let before = base.get(prefix).cloned().unwrap_or_default();
                    let requests = cur.requests.saturating_sub(before.requests);
                    let errors = cur.errors.saturating_sub(before.errors);
                    let lat = cur.latency.since(&before.latency);
                    json!({
                        "requests": requests,
                        "rate_per_second": requests as f64 / secs,
                        "error_rate": if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
                        "p50_ms": lat.quantile(0.5).map(|s| s * 1000.0),
                        "p99_ms": lat.quantile(0.99).map(|s| s * 1000.0),
                        "total_requests": cur.requests,
                    })
                });
                let upstreams: Vec<Value> = route
                    .config
                    .upstreams
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let health = route.ops.health.as_ref();
                        json!({
                            "url": &*t.url,
                            "health_checked": health.is_some(),
                            "healthy": health.is_none_or(|h| h.is_healthy(i)),
                        })
                    })
                    .collect();
                let rate_limit = route.config.rate_limit.as_ref().map(|r| {
                    json!({
                        "key": r.key.as_str(),
                        "rate": r.rate.get(),
                        "per_seconds": r.per.as_secs_f64(),
                        "burst": r.burst.get(),
                        "consumers": route.ops.limiter.as_ref().map_or(0, |l| l.consumers()),
                    })
                });
                json!({
                    "prefix": prefix,
                    "public": matches!(route.config.policy, crate::config::RoutePolicy::Public),
                    "window": window,
                    "upstreams": upstreams,
                    "rate_limit": rate_limit,
                })
            })
            .collect();
        let token: Vec<Value> = metrics
            .token_outcomes()
            .into_iter()
            .map(|(grant, outcome, count)| json!({"grant": grant, "outcome": outcome, "count": count}))
            .collect();
        let now = self.sources.clock.now();
        let counts = match &self.sources.store {
            Some((store, rules)) => store.status_counts(now, *rules).await.ok(),
            None => None,
        };
        let keys: Vec<Value> = self
            .sources
            .keys
            .as_ref()
            .map(|live| {
                let ring = live.snapshot();
                let current = ring.signer(now).kid.clone();
                ring.keys()
                    .iter()
                    .map(|k| {
                        json!({
                            "kid": k.key.kid,
                            "alg": format!("{:?}", k.key.alg),
                            "current": k.key.kid == current,
                            "age_seconds": now.saturating_sub(k.created_at).max(0),
                            "signs_from": k.signs_from,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let config = self.config_record();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "started_at": self.started_at,
            "draining": metrics.draining(),
            "metrics_enabled": metrics.enabled(),
            "window_seconds": span.as_secs_f64(),
            "connections_active": metrics.connections_active(),
            "config": config.map(|c| json!({
                "generation": c.generation,
                "loaded_at": c.loaded_at,
                "last_reload": c.last_reload,
                "last_reload_at": c.last_reload_at,
            })),
            "routes": routes,
            "token_endpoint": {"outcomes": token},
            "attack_protection": counts.map(|c| json!({
                "blocked_pairs": c.blocked_pairs,
                "throttled_ips": c.throttled_ips,
            })),
            "sessions": counts.map(|c| json!({"active": c.active_sessions})),
            "signing_keys": keys,
        })
    }
}
