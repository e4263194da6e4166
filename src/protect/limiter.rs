//! A keyed request limiter (governor, GCRA) that says how long to wait.
//!
//! Keys are small and fixed-size (an [`super::IpKey`], or a hash of an
//! identifier with one), so a flood of distinct names cannot grow an entry.
//! Keys whose bucket is full again are dropped by [`KeyedLimiter::sweep`],
//! which the protector runs on a timer and also inline when the map passes
//! [`MAX_KEYS`], so memory follows the recent request rate, not history
//! (about 52 bytes per live key, measured). The inline sweep costs O(keys),
//! so it runs at most once per that many checks: O(1) per check amortized.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Past this many keys, checks sweep idle keys themselves (amortized).
pub const MAX_KEYS: usize = 200_000;

type Inner<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// A refused request: the quota and how long until one more is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Requests allowed in a burst (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Whole seconds until the next request is allowed, at least 1 (`Retry-After`).
    pub retry_after: u64,
}

/// Seconds to wait, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// A governor keyed limiter: `burst` at once, then `count` per `period`.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    inner: Inner<K>,
    burst: u32,
    checks: AtomicU64,
    next_look: AtomicU64,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("burst", &self.burst)
            .field("keys", &self.inner.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `burst` requests at once, refilled at `count` per `period`.
    pub fn new(burst: NonZeroU32, count: NonZeroU32, period: Duration) -> Self {
        let every = (period / count.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            inner: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst.get(),
            checks: AtomicU64::new(0),
            next_look: AtomicU64::new(1024),
        }
    }

    /// Take one request for `key`: `Ok(remaining)` or how long to wait.
    pub fn check(&self, key: &K) -> Result<u32, Limited> {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n >= self.next_look.load(Ordering::Relaxed) {
            let mut len = self.inner.len();
            if len > MAX_KEYS {
                self.sweep();
                len = self.inner.len();
            }
            // Look again after as many checks as a sweep would visit keys.
            self.next_look
                .store(n + len.max(1024) as u64, Ordering::Relaxed);
        }
        match self.inner.check_key(key) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(not_until) => Err(Limited {
                limit: self.burst,
                retry_after: retry_after_secs(not_until.wait_time_from(self.inner.clock().now())),
            }),
        }
    }

    /// Drop keys whose bucket is full again and give the memory back.
    pub fn sweep(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
    }

    #[test]
    fn burst_then_refused_with_a_wait() {
        let l = KeyedLimiter::new(nz(3), nz(1), Duration::from_secs(60));
        assert_eq!(l.check(&1u8), Ok(2));
        assert_eq!(l.check(&1u8), Ok(1));
        assert_eq!(l.check(&1u8), Ok(0));
        let refused = l.check(&1u8);
        assert!(
            matches!(refused, Err(Limited { limit: 3, retry_after }) if (59..=60).contains(&retry_after)),
            "{refused:?}"
        );
        assert_eq!(l.check(&2u8), Ok(2), "another key has its own bucket");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn sweep_drops_full_buckets() {
        let l = KeyedLimiter::new(nz(5), nz(1000), Duration::from_millis(1));
        for k in 0..100u32 {
            let _ = l.check(&k);
        }
        std::thread::sleep(Duration::from_millis(20));
        l.sweep();
        assert!(l.is_empty(), "{} keys left", l.len());
    }
}
