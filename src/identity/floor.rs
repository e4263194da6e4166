//! The verification floor: every password check is answered no sooner than
//! one duration, so its time does not tell who the user is.
//!
//! Without it an unknown user costs an argon2 verification (the dummy hash),
//! an argon2 user the same, but a user imported from Auth0 costs a bcrypt
//! verification (cost 10: several times argon2's default), which enumerates
//! the imported accounts. Verifying every login with both algorithms would
//! double the CPU of every login; instead the answer waits, asynchronously
//! and after the hashing worker is released, until the floor has passed
//! since the check started. The floor costs latency only, no CPU.
//!
//! `auto` (the default) measures at start the slower of the configured
//! argon2 cost and each bcrypt cost present in the store, and sets the floor
//! a margin above it. A bcrypt cost first met later (an import while running)
//! raises the floor after its first verification. A fixed floor is set from
//! the config and never moves.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How far above the slowest measured verification the floor sits: enough
/// that the medians of the slow and the fast cases meet at the floor, not at
/// the slow case's own time.
pub const MARGIN: f64 = 1.25;

/// How many times each cost is measured at start (the median counts).
pub const SAMPLES: usize = 5;

/// The floor shared by a hasher's clones.
#[derive(Debug, Default)]
pub struct Floor {
    nanos: AtomicU64,
    /// `Some`: adapt to bcrypt costs not yet measured; holds those that are.
    adaptive: Option<Mutex<BTreeSet<u32>>>,
}

impl Floor {
    /// A floor that never moves (zero: none).
    pub fn fixed(floor: Duration) -> Self {
        Self {
            nanos: AtomicU64::new(nanos(floor)),
            adaptive: None,
        }
    }

    /// A measured floor: `slowest` (the median of the slowest kind of check)
    /// times [`MARGIN`], raised later for bcrypt costs not in `measured`.
    pub fn measured(slowest: Duration, measured: &[u32]) -> Self {
        Self {
            nanos: AtomicU64::new(nanos(slowest.mul_f64(MARGIN))),
            adaptive: Some(Mutex::new(measured.iter().copied().collect())),
        }
    }

    /// The current floor.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Whether a bcrypt hash of `cost` should be timed to adapt the floor.
    pub fn wants(&self, cost: u32) -> bool {
        self.adaptive
            .as_ref()
            .and_then(|m| m.lock().ok())
            .is_some_and(|known| !known.contains(&cost))
    }

    /// A bcrypt verification of `cost` took `took`: raise the floor to cover it.
    pub fn learn(&self, cost: u32, took: Duration) {
        let Some(Ok(mut known)) = self.adaptive.as_ref().map(Mutex::lock) else {
            return;
        };
        if known.insert(cost) {
            let raised = self
                .nanos
                .fetch_max(nanos(took.mul_f64(MARGIN)), Ordering::Relaxed);
            tracing::info!(
                target: "passgate::auth",
                event = "verify_floor_raised",
                bcrypt_cost = cost,
                floor_ms = self.get().as_millis() as u64,
                was_ms = Duration::from_nanos(raised).as_millis() as u64,
                "a bcrypt cost first seen now: password checks answer no sooner than the new floor"
            );
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The cost of a bcrypt hash (`$2b$10$...` → 10).
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

/// The median of `samples` runs of `f`, timed on the calling thread.
pub fn median_time(samples: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::password::{HashParams, Hasher};

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn fixed_floors_never_move() {
        let f = Floor::fixed(Duration::from_millis(300));
        assert!(!f.wants(10));
        f.learn(10, Duration::from_secs(9));
        assert_eq!(f.get(), Duration::from_millis(300));
    }

    #[test]
    fn measured_floors_rise_for_a_new_cost_only() {
        let f = Floor::measured(Duration::from_millis(40), &[10]);
        assert_eq!(f.get(), Duration::from_millis(50));
        assert!(!f.wants(10));
        assert!(f.wants(12));
        f.learn(12, Duration::from_millis(200));
        assert_eq!(f.get(), Duration::from_millis(250));
        assert!(!f.wants(12));
        // Learned once: a later slow run of a known cost changes nothing.
        f.learn(12, Duration::from_secs(5));
        // A faster new cost never lowers it.
        f.learn(4, Duration::from_millis(1));
        assert_eq!(f.get(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn every_check_waits_for_the_floor_without_holding_a_worker() {
        let floor = Duration::from_secs(10);
        let h = Hasher::new(cheap(), 1)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_floor(floor);
        let stored = h.hash_blocking("correct horse").unwrap_or_default();
        let bcrypt = bcrypt::hash("imported pw", 4).unwrap_or_default();
        for (stored, password) in [
            (None, "x"),
            (Some(stored.clone()), "wrong"),
            (Some(bcrypt), "wrong"),
            (Some(stored), "correct horse"),
        ] {
            let t = tokio::time::Instant::now();
            assert!(h.verify(stored, password.into()).await.is_ok());
            assert!(t.elapsed() >= floor, "{:?}", t.elapsed());
        }
        // One worker, two checks: both wait out the floor together, since
        // the worker is free while the first one waits.
        let t = tokio::time::Instant::now();
        let (a, b) = tokio::join!(h.verify(None, "a".into()), h.verify(None, "b".into()));
        assert!(a.is_ok() && b.is_ok());
        assert!(t.elapsed() >= floor);
        assert!(t.elapsed() < floor * 2, "{:?}", t.elapsed());
    }

    #[test]
    fn a_measured_floor_covers_the_slowest_kind_and_learns_new_costs() {
        let h = Hasher::new(cheap(), 1)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_measured_floor(&[4]);
        let start = h.floor();
        assert!(start > Duration::ZERO);
        let slow = bcrypt::hash("imported pw", 8).unwrap_or_default();
        assert!(!h.verify_blocking(Some(&slow), "wrong").ok);
        assert!(h.floor() >= start);
        assert!(!h.floor_state().wants(8), "cost 8 was learned");
        // Without a floor, nothing waits.
        let none = Hasher::new(cheap(), 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.floor(), Duration::ZERO);
    }

    #[test]
    fn bcrypt_costs_are_read_from_the_hash() {
        assert_eq!(bcrypt_cost("$2b$10$abc"), Some(10));
        assert_eq!(bcrypt_cost("$2y$04$abc"), Some(4));
        assert_eq!(bcrypt_cost("$argon2id$v=19"), None);
    }
}
