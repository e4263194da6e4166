//! A keyed request limiter (governor, GCRA) that says how long to wait.
//!
//! Keys are small and fixed-size (an [`super::IpKey`], or a hash of an
//! identifier with one), so a flood of distinct names cannot grow an entry.
//! Keys whose bucket is full again are dropped by sweeps, so memory follows
//! the recent request rate, not history (about 52 bytes per live key,
//! measured). The keys are spread over [`SHARDS`] governor limiters and a
//! sweep step walks one of them ([`KeyedLimiter::sweep_step`]): the
//! protector's timer sweeps shard by shard, yielding between steps, and a
//! check sweeps its own shard inline when that shard passes its share of
//! [`MAX_KEYS`]. One step walks about keys / SHARDS entries, never the map.

use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Past this many keys, checks sweep idle keys themselves (a shard at a time).
pub const MAX_KEYS: usize = 200_000;
/// Governor limiters the keys are spread over; a sweep step walks one.
pub const SHARDS: usize = 256;
/// Checks between two looks at whether a shard needs an inline sweep.
const LOOK_EVERY: u64 = 1024;

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
    shards: Box<[Inner<K>]>,
    hasher: RandomState,
    burst: u32,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("burst", &self.burst)
            .field("keys", &self.len())
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
        let shards = (0..SHARDS)
            .map(|_| RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            burst: burst.get(),
            checks: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &K) -> &Inner<K> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        &self.shards[i]
    }

    /// Take one request for `key`: `Ok(remaining)` or how long to wait.
    pub fn check(&self, key: &K) -> Result<u32, Limited> {
        let shard = self.shard(key);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(LOOK_EVERY) && shard.len() > MAX_KEYS / SHARDS {
            sweep(shard);
        }
        match shard.check_key(key) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(not_until) => Err(Limited {
                limit: self.burst,
                retry_after: retry_after_secs(not_until.wait_time_from(shard.clock().now())),
            }),
        }
    }

    /// How many sweep steps make a whole sweep.
    pub fn steps(&self) -> usize {
        SHARDS
    }

    /// One bounded sweep step: drop the idle keys of shard `step % SHARDS`.
    pub fn sweep_step(&self, step: usize) {
        sweep(&self.shards[step % SHARDS]);
    }

    /// Drop every idle key, one shard after another (tests; the protector's
    /// timer calls [`KeyedLimiter::sweep_step`] and yields between steps).
    pub fn sweep(&self) {
        self.shards.iter().for_each(sweep);
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }
}

/// Drop one shard's keys whose bucket is full again and give the memory back.
fn sweep<K: Hash + Eq + Clone>(shard: &Inner<K>) {
    shard.retain_recent();
    shard.shrink_to_fit();
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

    /// A sweep step walks one shard, not the map.
    #[test]
    fn a_sweep_step_walks_one_shard() {
        let l = KeyedLimiter::new(nz(5), nz(1000), Duration::from_millis(1));
        let keys = 20 * SHARDS as u32;
        for k in 0..keys {
            let _ = l.check(&k);
        }
        std::thread::sleep(Duration::from_millis(20));
        l.sweep_step(0);
        let left = l.len();
        assert!(left < keys as usize, "the step dropped nothing");
        assert!(
            left > keys as usize / 2,
            "one step dropped {} keys",
            keys as usize - left
        );
        for step in 0..l.steps() {
            l.sweep_step(step);
        }
        assert!(l.is_empty(), "{} keys left", l.len());
    }

    /// Measures (no assert on time) the thread CPU time of a sweep step at
    /// 1M idle keys: `cargo test --lib sweep_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn sweep_cost_at_a_million_keys() {
        let l = KeyedLimiter::new(nz(5), nz(1000), Duration::from_millis(1));
        for k in 0..1_000_000u32 {
            let _ = l.check(&k);
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut worst = Duration::ZERO;
        let all = cpu_time::ThreadTime::now();
        for step in 0..l.steps() {
            let t = cpu_time::ThreadTime::now();
            l.sweep_step(step);
            worst = worst.max(t.elapsed());
        }
        println!(
            "1M keys: whole sweep {:?}, slowest step {worst:?}, {} left",
            all.elapsed(),
            l.len()
        );
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
