//! Values other modules already count, copied into a scrape-time registry on
//! each `/metrics` request: attack protection, the hashing pool, the token
//! cache, JWKS fetches, active health, rate-limit consumers, log drops, the
//! script pool's queue and runtime memory.

use std::sync::atomic::Ordering;

use prometheus_client::registry::Registry;

use super::Observed;
use crate::telemetry::metrics::{Labels, snapshot_counter, snapshot_gauge};

fn one(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_string())]
}

/// The scrape-time families for `app`.
pub(super) fn registry(app: &dyn Observed) -> Registry {
    let mut r = Registry::with_prefix("passgate");
    let cache = app.gate().cache();
    snapshot_gauge(
        &mut r,
        "token_cache_entries",
        "Verified tokens held in the cache",
        &[(vec![], i64::try_from(cache.len()).unwrap_or(i64::MAX))],
    );
    snapshot_gauge(
        &mut r,
        "token_cache_bytes",
        "Approximate bytes held by the token cache",
        &[(vec![], i64::try_from(cache.bytes()).unwrap_or(i64::MAX))],
    );
    let c = cache.counts();
    snapshot_counter(
        &mut r,
        "token_cache_events",
        "Token cache lookups (hit, miss) and evictions to stay under its bounds",
        &[
            (one("event", "hit"), c.hits),
            (one("event", "miss"), c.misses),
            (one("event", "eviction"), c.evictions),
        ],
    );
    let jwks: Vec<(Labels, u64)> = app
        .gate()
        .issuers()
        .all()
        .filter_map(|i| i.fetches().map(|f| (i.issuer.clone(), f)))
        .flat_map(|(iss, (ok, failed))| {
            [
                (vec![("issuer", iss.clone()), ("result", "ok".into())], ok),
                (vec![("issuer", iss), ("result", "error".into())], failed),
            ]
        })
        .collect();
    snapshot_counter(
        &mut r,
        "jwks_fetches",
        "Key-set fetches of remote trusted issuers, by issuer and result",
        &jwks,
    );
    let mut health = Vec::new();
    let mut consumers = Vec::new();
    for route in app.router().routes() {
        let prefix = &route.config.prefix;
        if let Some(h) = &route.ops.health {
            for (i, t) in route.config.upstreams.iter().enumerate() {
                let labels = vec![("route", prefix.clone()), ("upstream", t.url.to_string())];
                health.push((labels, i64::from(h.is_healthy(i))));
            }
        }
        if let Some(l) = &route.ops.limiter {
            let n = i64::try_from(l.consumers()).unwrap_or(i64::MAX);
            consumers.push((one("route", prefix), n));
        }
    }
    snapshot_gauge(
        &mut r,
        "upstream_healthy",
        "1 when the upstream passes its route's active health checks, else 0",
        &health,
    );
    snapshot_gauge(
        &mut r,
        "route_rate_limit_consumers",
        "Consumers the route's rate limiter remembers (bounded)",
        &consumers,
    );
    snapshot_counter(
        &mut r,
        "access_log_dropped",
        "Log lines the log writer dropped",
        &[(vec![], app.metrics().log_lines_dropped())],
    );
    snapshot_counter(
        &mut r,
        "background_task_failures",
        "Background tasks and worker threads that failed or panicked",
        &[(vec![], app.tasks().died())],
    );
    if let Some(auth) = app.auth() {
        let c = auth.protect().counters();
        let kinds = [
            ("request_rate_limited", &c.rate_limited),
            ("user_ip_throttled", &c.user_ip_throttled),
            ("brute_force_refused", &c.brute_force_refused),
            ("suspicious_ip_refused", &c.suspicious_ip_refused),
            ("brute_force_block", &c.blocks),
            ("suspicious_ip_throttle", &c.throttles),
        ]
        .map(|(k, n)| (one("kind", k), n.load(Ordering::Relaxed)));
        snapshot_counter(
            &mut r,
            "attack_protection",
            "Attack-protection actions, by kind",
            &kinds,
        );
        let pool = auth.hasher().stats();
        snapshot_counter(
            &mut r,
            "password_checks",
            "Password checks, by what the hashing pool did: run, skipped (the client had gone), refused (queue full)",
            &[
                (one("outcome", "run"), pool.ran()),
                (one("outcome", "skipped"), pool.skipped()),
                (one("outcome", "refused"), pool.refused()),
            ],
        );
        r.register(
            "password_wait_seconds",
            "Time a password check waited for a hashing worker",
            pool.wait().clone(),
        );
        snapshot_gauge(
            &mut r,
            "password_checks_in_flight",
            "Password checks running or waiting for a hashing worker (the argon2 queue depth)",
            &[(
                vec![],
                i64::try_from(auth.hasher().in_flight()).unwrap_or(i64::MAX),
            )],
        );
        if let Some(scripts) = auth.scripts() {
            let stats = scripts.stats();
            let gauge = |n: &std::sync::atomic::AtomicU64| {
                i64::try_from(n.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
            };
            snapshot_gauge(
                &mut r,
                "script_queue_depth",
                "Rule-and-action chains waiting for a script worker",
                &[(vec![], gauge(&stats.queued))],
            );
            let memory: Vec<(Labels, i64)> = stats
                .memory
                .iter()
                .enumerate()
                .map(|(i, m)| (one("worker", &i.to_string()), gauge(m)))
                .collect();
            snapshot_gauge(
                &mut r,
                "script_runtime_bytes",
                "Bytes each script worker's JavaScript runtime held after its last chain",
                &memory,
            );
        }
    }
    r
}
