//! What a route carries for operations beside its config: metric handles,
//! its per-consumer rate limiter, and its upstreams' active health. Built with
//! the route table, so a rebuilt table (a reload) starts them afresh for the
//! new config.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode};

use crate::config::{RateLimitKey, RouteConfig};
use crate::gate::cache::Verified;
use crate::http::body::ResponseBody;
use crate::http::response::{Fault, gateway_error};
use crate::protect::route_limit::MAX_CONSUMERS;
use crate::protect::{Consumer, RouteLimiter, Verdict};
use crate::telemetry::metrics::{Metrics, RouteMetrics};
use crate::upstream::health::Health;

/// A route's operational state.
#[derive(Debug, Default)]
pub struct RouteOps {
    /// Metric handles (`None` with `[metrics] enabled = false`).
    pub metrics: Option<RouteMetrics>,
    /// `rate_limit`, when configured.
    pub limiter: Option<RouteLimiter>,
    /// `health_check`, when configured.
    pub health: Option<Arc<Health>>,
}

impl RouteOps {
    /// The state for `route`, recording into `metrics`.
    pub fn new(route: &RouteConfig, metrics: &Metrics) -> Self {
        Self {
            metrics: metrics.route(&route.prefix),
            limiter: route
                .rate_limit
                .clone()
                .map(|c| RouteLimiter::new(c, MAX_CONSUMERS)),
            health: route
                .health_check
                .clone()
                .map(|c| Arc::new(Health::new(c, route.upstreams.len()))),
        }
    }
}

/// A request counted by the route's rate limit and let through: the
/// `RateLimit` headers go on its response.
#[derive(Debug, Clone, Copy)]
pub struct Admitted(Verdict);

/// A request over the route's rate limit; [`RouteOps::refusal`] is its 429.
#[derive(Debug, Clone, Copy)]
pub struct Refused(Verdict);

impl RouteOps {
    /// Count the request under the route's rate limit: `Ok(None)` when the
    /// route has none (or does not count `method`), `Err` with the 429 to send
    /// when the consumer is over it. The consumer is the token's subject or
    /// client, or the client address (also for a token without that claim).
    /// Refusals are counted in the route's metrics.
    pub fn admit(
        &self,
        method: &Method,
        verified: Option<&Verified>,
        client_ip: IpAddr,
    ) -> Result<Option<Admitted>, Refused> {
        let Some(limiter) = &self.limiter else {
            return Ok(None);
        };
        if !limiter.counts(method) {
            return Ok(None);
        }
        let claims = verified.map(|v| &v.claims);
        let name = match limiter.key() {
            RateLimitKey::Subject => claims.and_then(|c| c.sub.as_deref()),
            RateLimitKey::Client => claims.and_then(|c| c.client.as_deref()),
            RateLimitKey::Ip => None,
        };
        let consumer = match name {
            Some(n) => Consumer::Name(n.into()),
            None => Consumer::ip(client_ip),
        };
        match limiter.check(consumer) {
            allowed @ Verdict::Allowed { .. } => Ok(Some(Admitted(allowed))),
            limited @ Verdict::Limited { .. } => {
                if let Some(m) = &self.metrics {
                    m.rate_limited();
                }
                Err(Refused(limited))
            }
        }
    }

    /// The 429 `too_many_requests` for a refused request, with `Retry-After`
    /// and the `RateLimit` headers.
    pub fn refusal(&self, refused: Refused) -> Response<ResponseBody> {
        let mut resp = gateway_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many requests; retry later",
            Fault::Client,
        );
        if let Some(limiter) = &self.limiter {
            limiter.headers(refused.0, resp.headers_mut());
        }
        resp
    }

    /// Put the `RateLimit-Policy` / `RateLimit` headers of an admitted request on its response.
    pub fn rate_headers(&self, admitted: Admitted, headers: &mut HeaderMap) {
        if let Some(limiter) = &self.limiter {
            limiter.headers(admitted.0, headers);
        }
    }
}
