//! Which handler a request goes to: passgate's own endpoints by exact path,
//! then the route table by longest prefix. Pure functions over a normalised
//! path; the table is compiled once from the config.

mod ops;

use std::sync::Arc;

use crate::config::{RouteConfig, UpstreamConfig};
use crate::tasks::Supervisor;
use crate::telemetry::metrics::Metrics;
use crate::upstream::{Balancer, UpstreamClient};

pub use ops::RouteOps;

/// passgate's own endpoints (the authorization server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEndpoint {
    /// `POST /oauth/token`
    Token,
    /// `POST /oauth/revoke`
    Revoke,
    /// `GET /userinfo`
    UserInfo,
    /// `GET /.well-known/openid-configuration`
    Discovery,
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `/mfa/...`
    Mfa,
}

impl AuthEndpoint {
    /// The endpoint at exactly this path, if any.
    pub fn at(path: &str) -> Option<AuthEndpoint> {
        Some(match path {
            "/oauth/token" => AuthEndpoint::Token,
            "/oauth/revoke" => AuthEndpoint::Revoke,
            "/userinfo" => AuthEndpoint::UserInfo,
            "/.well-known/openid-configuration" => AuthEndpoint::Discovery,
            "/.well-known/jwks.json" => AuthEndpoint::Jwks,
            p if p.starts_with("/mfa/") => AuthEndpoint::Mfa,
            _ => return None,
        })
    }
}

/// A compiled route: its config and its upstreams' balancer.
#[derive(Debug)]
pub struct Route {
    /// The route as configured.
    pub config: RouteConfig,
    /// Round-robin over the route's upstreams, with passive health.
    pub balancer: Balancer,
    /// The prefix, shared cheaply with log lines.
    pub prefix_label: Arc<str>,
    /// Metrics, rate limit and active health (`router/ops.rs`).
    pub ops: RouteOps,
}

/// The route table, longest prefix first.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

/// Does `prefix` cover `path`? Segment-aware: `/api` covers `/api` and `/api/x`
/// but not `/apix`; `/api/` also covers `/api`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => prefix.len() == path.len() + 1 && prefix.ends_with('/') && prefix.starts_with(path),
    }
}

impl Router {
    /// Compile the routes of a config, recording no metrics.
    pub fn new(routes: &[RouteConfig], upstream: &UpstreamConfig) -> Router {
        Self::with_metrics(routes, upstream, &Metrics::disabled())
    }

    /// Compile the routes of a config, each with its handles into `metrics`.
    pub fn with_metrics(
        routes: &[RouteConfig],
        upstream: &UpstreamConfig,
        metrics: &Metrics,
    ) -> Router {
        let mut routes: Vec<Arc<Route>> = routes
            .iter()
            .map(|r| {
                Arc::new(Route {
                    balancer: Balancer::new(r.upstreams.clone(), upstream.unhealthy_cooldown),
                    prefix_label: Arc::from(r.prefix.as_str()),
                    ops: RouteOps::new(r, metrics),
                    config: r.clone(),
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.config.prefix.len()));
        Router { routes }
    }

    /// Start the active health checks of every route that has them, under
    /// `tasks` (they end at shutdown, or when this table is dropped).
    pub fn start_health_checks(&self, tasks: &Supervisor, client: &UpstreamClient) {
        for route in &self.routes {
            if let Some(health) = &route.ops.health {
                let config = &route.config;
                health.start(
                    tasks,
                    &config.prefix,
                    &config.upstreams,
                    config.upstream_protocol,
                    client,
                );
            }
        }
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route with the longest prefix covering `path` (already normalised).
    pub fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| prefix_matches(&r.config.prefix, path))
    }
}

/// The path to send upstream: the route's prefix removed when `strip_prefix` is set.
pub fn upstream_path<'a>(route: &RouteConfig, path: &'a str) -> &'a str {
    if !route.strip_prefix {
        return path;
    }
    let bare = route.prefix.trim_end_matches('/');
    match path.get(bare.len()..) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn router(toml_routes: &str) -> Router {
        let text = toml_routes.to_string();
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        Router::new(&config.routes, &config.upstream)
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router(
            r#"
            [[routes]]
            prefix = "/"
            upstream = "http://127.0.0.1:1"
            public = true
            [[routes]]
            prefix = "/api/"
            upstream = "http://127.0.0.1:2"
            public = true
            [[routes]]
            prefix = "/api/admin"
            upstream = "http://127.0.0.1:3"
            public = true
            "#,
        );
        let cases = [
            ("/", "/"),
            ("/x", "/"),
            ("/api", "/api/"),
            ("/api/", "/api/"),
            ("/api/items", "/api/"),
            ("/api/admin", "/api/admin"),
            ("/api/admin/users", "/api/admin"),
            ("/api/administrator", "/api/"),
            ("/apix", "/"),
        ];
        for (path, want) in cases {
            let got = r.route(path).map(|r| r.config.prefix.as_str());
            assert_eq!(got, Some(want), "{path}");
        }
    }

    #[test]
    fn no_catch_all_means_no_route() {
        let r = router(
            r#"
            [[routes]]
            prefix = "/api/"
            upstream = "http://127.0.0.1:2"
            public = true
            "#,
        );
        assert!(r.route("/other").is_none());
        assert!(r.route("/ap").is_none());
    }

    #[test]
    fn strip_prefix() {
        let r = router(
            r#"
            [[routes]]
            prefix = "/api/"
            upstream = "http://127.0.0.1:2"
            public = true
            strip_prefix = true
            "#,
        );
        let route = &r
            .route("/api/x")
            .map(|r| r.config.clone())
            .unwrap_or_else(|| panic!("no route"));
        assert_eq!(upstream_path(route, "/api/items/1"), "/items/1");
        assert_eq!(upstream_path(route, "/api/"), "/");
        assert_eq!(upstream_path(route, "/api"), "/");
    }

    #[test]
    fn auth_endpoints_by_exact_path() {
        assert_eq!(AuthEndpoint::at("/oauth/token"), Some(AuthEndpoint::Token));
        assert_eq!(AuthEndpoint::at("/oauth/token/"), None);
        assert_eq!(AuthEndpoint::at("/mfa/associate"), Some(AuthEndpoint::Mfa));
        assert_eq!(AuthEndpoint::at("/api"), None);
    }
}
