//! `[metrics]`, and a route's `rate_limit` and `health_check`.

use std::num::NonZeroU32;
use std::str::FromStr;

use http::Method;

use super::*;

pub(super) fn metrics(raw: RawMetrics) -> MetricsConfig {
    MetricsConfig {
        enabled: raw.enabled.unwrap_or(true),
    }
}

fn nonzero(p: &mut Problems, path: &str, value: Option<i64>) -> Option<NonZeroU32> {
    match value {
        None => None,
        Some(n) => match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(v) => Some(v),
            None => {
                p.add(
                    path,
                    format!("must be between 1 and {}, found {n}", u32::MAX),
                );
                None
            }
        },
    }
}

/// `routes[i].rate_limit`; `public` routes have no token to key by subject or client.
pub(super) fn rate_limit(
    p: &mut Problems,
    path: &str,
    raw: Option<RawRateLimit>,
    public: bool,
) -> Option<RateLimitConfig> {
    let raw = raw?;
    let path = format!("{path}.rate_limit");
    let key = match raw.key.as_deref() {
        Some("subject") => Some(RateLimitKey::Subject),
        Some("client") => Some(RateLimitKey::Client),
        Some("ip") => Some(RateLimitKey::Ip),
        Some(other) => {
            p.add(
                format!("{path}.key"),
                format!("\"{other}\" is not one of \"subject\", \"client\", \"ip\""),
            );
            None
        }
        None => {
            p.add(format!("{path}.key"), "missing; one of subject, client, ip");
            None
        }
    };
    if public && matches!(key, Some(RateLimitKey::Subject | RateLimitKey::Client)) {
        p.add(
            format!("{path}.key"),
            "a public route has no token to take a subject or client from; use key = \"ip\"",
        );
    }
    let rate = nonzero(p, &format!("{path}.rate"), raw.rate);
    if raw.rate.is_none() {
        p.add(
            format!("{path}.rate"),
            "missing; requests allowed per `per`",
        );
    }
    let per_path = format!("{path}.per");
    let per = p.duration(&per_path, &raw.per, std::time::Duration::from_secs(1));
    let burst = nonzero(p, &format!("{path}.burst"), raw.burst);
    if let (Some(rate), Some(burst)) = (rate, burst)
        && burst < rate
    {
        p.add(
            format!("{path}.burst"),
            format!("must be at least rate ({rate}), found {burst}"),
        );
    }
    let mut methods = Vec::new();
    for (j, name) in raw.methods.unwrap_or_default().into_iter().enumerate() {
        match Method::from_str(&name) {
            Ok(m) if name.chars().all(|c| c.is_ascii_uppercase()) => methods.push(m),
            _ => p.add(
                format!("{path}.methods[{j}]"),
                format!("\"{name}\" is not an HTTP method in capitals, like POST"),
            ),
        }
    }
    let (key, rate) = (key?, rate?);
    Some(RateLimitConfig {
        key,
        rate,
        per,
        burst: burst.unwrap_or(rate),
        methods,
    })
}

/// `routes[i].health_check`.
pub(super) fn health_check(
    p: &mut Problems,
    path: &str,
    raw: Option<RawHealthCheck>,
) -> Option<HealthCheckConfig> {
    let raw = raw?;
    let path = format!("{path}.health_check");
    let probe = match raw.path {
        Some(s) if s.starts_with('/') && http::uri::PathAndQuery::from_str(&s).is_ok() => s,
        Some(s) => {
            p.add(
                format!("{path}.path"),
                format!("\"{s}\" must be a path starting with /"),
            );
            "/".to_string()
        }
        None => {
            p.add(
                format!("{path}.path"),
                "missing; the path to probe, e.g. /healthz",
            );
            "/".to_string()
        }
    };
    let interval = p.duration(
        &format!("{path}.interval"),
        &raw.interval,
        std::time::Duration::from_secs(5),
    );
    let timeout = p.duration(
        &format!("{path}.timeout"),
        &raw.timeout,
        std::time::Duration::from_secs(1),
    );
    if timeout > interval {
        p.add(
            format!("{path}.timeout"),
            "must not be longer than the interval",
        );
    }
    let count = |p: &mut Problems, key: &str, v: Option<i64>, default: u64| {
        let n = p.positive(&format!("{path}.{key}"), v, default);
        u32::try_from(n.min(1000)).unwrap_or(1000)
    };
    Some(HealthCheckConfig {
        path: probe,
        interval,
        timeout,
        unhealthy_after: count(p, "unhealthy_after", raw.unhealthy_after, 3),
        healthy_after: count(p, "healthy_after", raw.healthy_after, 2),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RateLimitKey};

    fn route(extra: &str, public: bool) -> String {
        let policy = if public {
            "public = true"
        } else {
            "audience = \"https://api\""
        };
        format!(
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:1\"\n{policy}\n{extra}\n"
        )
    }

    #[test]
    fn a_full_rate_limit_and_health_check_parse() {
        let text = route(
            "rate_limit = { key = \"subject\", rate = 100, per = \"1s\", burst = 200, methods = [\"POST\"] }\n\
             health_check = { path = \"/healthz\", interval = \"5s\", timeout = \"1s\", unhealthy_after = 3, healthy_after = 2 }",
            false,
        );
        let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let rl = c.routes[0]
            .rate_limit
            .clone()
            .unwrap_or_else(|| panic!("rate limit"));
        assert_eq!(rl.key, RateLimitKey::Subject);
        assert_eq!((rl.rate.get(), rl.burst.get()), (100, 200));
        assert_eq!(rl.methods, [http::Method::POST]);
        let hc = c.routes[0]
            .health_check
            .clone()
            .unwrap_or_else(|| panic!("health check"));
        assert_eq!(hc.path, "/healthz");
        assert_eq!((hc.unhealthy_after, hc.healthy_after), (3, 2));
        assert!(c.metrics.enabled);
    }

    #[test]
    fn every_problem_is_named() {
        let text = format!(
            "[metrics]\nenabled = false\n{}",
            route(
                "rate_limit = { key = \"subject\", rate = 0, burst = 5, per = \"0s\", methods = [\"get\"] }\n\
                 health_check = { path = \"healthz\", interval = \"1s\", timeout = \"2s\", unhealthy_after = 0 }",
                true,
            )
        );
        let errors = Config::from_toml(&text)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        for want in [
            "routes[0].rate_limit.key: a public route",
            "routes[0].rate_limit.rate: must be between 1",
            "routes[0].rate_limit.per: must be longer than zero",
            "routes[0].rate_limit.methods[0]",
            "routes[0].health_check.path",
            "routes[0].health_check.timeout: must not be longer",
            "routes[0].health_check.unhealthy_after: must be at least 1",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "{want} not in {errors:#?}"
            );
        }
        let unknown = route("rate_limit = { key = \"ip\", rate = 1, bogus = 1 }", true);
        let errors = Config::from_toml(&unknown)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(errors.iter().any(|e| e.contains("bogus")), "{errors:?}");
    }
}
