//! Active health checks (`[[routes]] health_check`): each upstream of the
//! route is probed with `GET <base path><path>` every `interval`; a probe
//! fails without a 2xx answer within `timeout`. `unhealthy_after`
//! consecutive failures take the upstream out of rotation, `healthy_after`
//! consecutive successes put it back. Upstreams start healthy, so a gateway
//! that starts beside a dead upstream serves from the others within
//! `unhealthy_after` probes.
//!
//! The probers hold only a `Weak` reference to the route's [`Health`] and
//! end when the route table that owns it is dropped.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use http::{Method, Request, Uri};

use super::UpstreamClient;
use super::client::HttpsClient;
use crate::config::{HealthCheckConfig, UpstreamProtocol, UpstreamTarget};
use crate::http::body::RequestBody;
use crate::tasks::Supervisor;

#[derive(Debug, Default)]
struct Member {
    healthy: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
    probes: AtomicU64,
}

/// The health of one route's upstreams, in the route's upstream order.
#[derive(Debug)]
pub struct Health {
    config: HealthCheckConfig,
    members: Vec<Member>,
}

impl Health {
    /// Every upstream healthy until probes say otherwise.
    pub fn new(config: HealthCheckConfig, upstreams: usize) -> Self {
        let members = (0..upstreams)
            .map(|_| Member {
                healthy: AtomicBool::new(true),
                ..Member::default()
            })
            .collect();
        Self { config, members }
    }

    /// Is the upstream at `index` in rotation?
    pub fn is_healthy(&self, index: usize) -> bool {
        self.members
            .get(index)
            .is_some_and(|m| m.healthy.load(Ordering::Relaxed))
    }

    /// Probes sent to the upstream at `index` so far.
    pub fn probes(&self, index: usize) -> u64 {
        self.members
            .get(index)
            .map_or(0, |m| m.probes.load(Ordering::Relaxed))
    }

    /// Record one probe's result; returns `Some(new state)` when it changed.
    pub fn record(&self, index: usize, ok: bool) -> Option<bool> {
        let m = self.members.get(index)?;
        m.probes.fetch_add(1, Ordering::Relaxed);
        let healthy = m.healthy.load(Ordering::Relaxed);
        if ok {
            m.failures.store(0, Ordering::Relaxed);
            let n = m.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if !healthy && n >= self.config.healthy_after {
                m.healthy.store(true, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            m.successes.store(0, Ordering::Relaxed);
            let n = m.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if healthy && n >= self.config.unhealthy_after {
                m.healthy.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }

    /// Start one prober per upstream under `tasks`; each ends at shutdown,
    /// or when this `Health` (its route table) is dropped.
    pub fn start(
        self: &Arc<Self>,
        tasks: &Supervisor,
        route: &str,
        targets: &[UpstreamTarget],
        protocol: UpstreamProtocol,
        client: &UpstreamClient,
    ) {
        for (index, target) in targets.iter().enumerate() {
            let Some(uri) = probe_uri(target, &self.config.path) else {
                tracing::warn!(upstream = %target.url, "cannot build the health check URL");
                continue;
            };
            let weak = Arc::downgrade(self);
            // Probed in the HTTP version the route's requests use.
            let client = client.for_protocol(protocol, target, false).clone();
            let (interval, timeout) = (self.config.interval, self.config.timeout);
            let (route, url) = (route.to_string(), target.url.clone());
            tasks.spawn("upstream health check", async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let ok = probe(&client, uri.clone(), timeout).await;
                    let Some(health) = Weak::upgrade(&weak) else {
                        return Ok(());
                    };
                    match health.record(index, ok) {
                        Some(true) => {
                            tracing::info!(route, upstream = %url, "upstream healthy again")
                        }
                        Some(false) => {
                            tracing::warn!(route, upstream = %url, "upstream failed its health checks; out of rotation")
                        }
                        None => {}
                    }
                }
            });
        }
    }
}

fn probe_uri(target: &UpstreamTarget, path: &str) -> Option<Uri> {
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(format!("{}{}", target.base_path, path))
        .build()
        .ok()
}

async fn probe(client: &HttpsClient, uri: Uri, timeout: std::time::Duration) -> bool {
    let authority = uri.authority().map(|a| a.as_str().to_string());
    let mut req = Request::new(RequestBody::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = uri;
    if let Some(host) = authority.and_then(|a| http::HeaderValue::from_str(&a).ok()) {
        req.headers_mut().insert(http::header::HOST, host);
    }
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("passgate-health-check"),
    );
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn thresholds_take_out_and_put_back() {
        let h = Health::new(
            HealthCheckConfig {
                path: "/healthz".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                unhealthy_after: 3,
                healthy_after: 2,
            },
            2,
        );
        assert!(h.is_healthy(0));
        assert_eq!(h.record(0, false), None);
        assert_eq!(h.record(0, true), None); // a success resets the failures
        assert_eq!(h.record(0, false), None);
        assert_eq!(h.record(0, false), None);
        assert_eq!(h.record(0, false), Some(false));
        assert!(!h.is_healthy(0) && h.is_healthy(1));
        assert_eq!(h.record(0, true), None);
        assert_eq!(h.record(0, true), Some(true));
        assert!(h.is_healthy(0));
        assert_eq!(h.probes(0), 7);
        assert!(!h.is_healthy(5));
    }
}
