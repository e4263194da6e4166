//! Per-consumer rate limits on proxied routes (`[[routes]] rate_limit`).
//!
//! A GCRA per consumer (the token's subject or client, or the client IP,
//! IPv6 by /64): one atomic "theoretical arrival time" each, updated with a
//! compare-and-swap, so a request costs a lookup and a CAS. The consumers
//! live in a bounded [`quick_cache`] (CLOCK-Pro): a flood of distinct keys
//! evicts the coldest consumers instead of growing memory, at worst giving an
//! evicted consumer a fresh allowance. Answers carry the IETF httpapi
//! draft's `RateLimit-Policy` / `RateLimit` fields and, when refused,
//! `Retry-After`.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue, Method};
use quick_cache::sync::Cache;
use tokio::time::Instant;

use super::client_ip::IpKey;
use crate::config::{RateLimitConfig, RateLimitKey};

/// Consumers remembered per route; the coldest go first beyond it.
pub const MAX_CONSUMERS: usize = 100_000;

/// Whom one request counts under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Consumer {
    /// A subject or client id from the verified token.
    Name(Box<str>),
    /// A client address.
    Ip(IpKey),
}

impl Consumer {
    /// The consumer for an address.
    pub fn ip(ip: IpAddr) -> Self {
        Consumer::Ip(IpKey::of(ip))
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; this many requests remain in the current window.
    Allowed {
        /// Requests left before the consumer is limited.
        remaining: u32,
        /// Seconds until the allowance is whole again.
        reset: u64,
    },
    /// Refuse it with 429; the consumer may retry after this many seconds (at least 1).
    Limited {
        /// `Retry-After`, rounded up.
        retry_after: u64,
    },
}

/// One route's limiter.
pub struct RouteLimiter {
    config: RateLimitConfig,
    /// Nanoseconds between two requests at the sustained rate.
    interval: u64,
    /// `burst * interval`: how far ahead of now a consumer's arrival time may run.
    capacity: u64,
    consumers: Cache<Consumer, Arc<AtomicU64>>,
    epoch: Instant,
    policy: HeaderValue,
}

impl std::fmt::Debug for RouteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLimiter")
            .field("config", &self.config)
            .field("consumers", &self.consumers.len())
            .finish()
    }
}

impl RouteLimiter {
    /// A limiter for `config`, remembering at most `max_consumers`.
    pub fn new(config: RateLimitConfig, max_consumers: usize) -> Self {
        let per = u64::try_from(config.per.as_nanos()).unwrap_or(u64::MAX);
        let interval = (per / u64::from(config.rate.get())).max(1);
        let capacity = interval.saturating_mul(u64::from(config.burst.get()));
        let window = config.per.as_secs().max(1);
        let policy = HeaderValue::from_str(&format!(
            "\"{}\";q={};w={window}",
            config.key.as_str(),
            config.rate
        ))
        .unwrap_or(HeaderValue::from_static("\"default\""));
        Self {
            interval,
            capacity,
            consumers: Cache::new(max_consumers.max(1)),
            epoch: Instant::now(),
            policy,
            config,
        }
    }

    /// Whom the limit counts.
    pub fn key(&self) -> RateLimitKey {
        self.config.key
    }

    /// True when requests with `method` are counted.
    pub fn counts(&self, method: &Method) -> bool {
        self.config.methods.is_empty() || self.config.methods.contains(method)
    }

    /// Consumers currently remembered.
    pub fn consumers(&self) -> usize {
        self.consumers.len()
    }

    /// Count one request from `consumer`.
    pub fn check(&self, consumer: Consumer) -> Verdict {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let state = match self.consumers.get(&consumer) {
            Some(s) => s,
            None => {
                let fresh = Arc::new(AtomicU64::new(0));
                self.consumers.insert(consumer, Arc::clone(&fresh));
                fresh
            }
        };
        let mut tat = state.load(Ordering::Acquire);
        loop {
            let next = tat.max(now).saturating_add(self.interval);
            let ahead = next - now;
            if ahead > self.capacity {
                let wait = ahead - self.capacity;
                return Verdict::Limited {
                    retry_after: wait.div_ceil(1_000_000_000).max(1),
                };
            }
            match state.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let left = (self.capacity - ahead) / self.interval;
                    return Verdict::Allowed {
                        remaining: u32::try_from(left).unwrap_or(u32::MAX),
                        reset: ahead.div_ceil(1_000_000_000),
                    };
                }
                Err(current) => tat = current,
            }
        }
    }

    /// Write `RateLimit-Policy` and `RateLimit` (and `Retry-After` when limited).
    pub fn headers(&self, verdict: Verdict, headers: &mut HeaderMap) {
        headers.insert("ratelimit-policy", self.policy.clone());
        let name = self.config.key.as_str();
        let (remaining, reset) = match verdict {
            Verdict::Allowed { remaining, reset } => (remaining, reset),
            Verdict::Limited { retry_after } => {
                headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
                (0, retry_after)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r={remaining};t={reset}")) {
            headers.insert("ratelimit", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn limiter(rate: u32, burst: u32, per: Duration) -> RouteLimiter {
        RouteLimiter::new(
            RateLimitConfig {
                key: RateLimitKey::Subject,
                rate: NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN),
                per,
                burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
                methods: vec![],
            },
            1000,
        )
    }

    fn name(s: &str) -> Consumer {
        Consumer::Name(s.into())
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_the_sustained_rate_per_consumer() {
        let l = limiter(2, 4, Duration::from_secs(1));
        for i in 0..4 {
            assert!(
                matches!(l.check(name("alice")), Verdict::Allowed { remaining, .. } if remaining == 3 - i),
                "request {i}"
            );
        }
        assert_eq!(l.check(name("alice")), Verdict::Limited { retry_after: 1 });
        // Another consumer is not affected.
        assert!(matches!(l.check(name("bob")), Verdict::Allowed { .. }));
        // Half a second later, alice has one more request (2 per second).
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(matches!(l.check(name("alice")), Verdict::Allowed { .. }));
        assert!(matches!(l.check(name("alice")), Verdict::Limited { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn headers_follow_the_draft() {
        let l = limiter(100, 100, Duration::from_secs(1));
        let mut h = HeaderMap::new();
        let v = l.check(name("a"));
        l.headers(v, &mut h);
        assert_eq!(h["ratelimit-policy"], "\"subject\";q=100;w=1");
        assert_eq!(h["ratelimit"], "\"subject\";r=99;t=1");
        let l = limiter(1, 1, Duration::from_secs(10));
        l.check(name("a"));
        let v = l.check(name("a"));
        let mut h = HeaderMap::new();
        l.headers(v, &mut h);
        assert_eq!(h[http::header::RETRY_AFTER], "10");
        assert_eq!(h["ratelimit"], "\"subject\";r=0;t=10");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_distinct_keys_stays_bounded() {
        let l = limiter(1, 1, Duration::from_secs(60));
        for i in 0..20_000u32 {
            l.check(Consumer::ip(IpAddr::from(i.to_be_bytes())));
        }
        assert!(l.consumers() <= 1000 + 100, "{}", l.consumers());
    }
}
