//! The only place that reads the system clock.
//!
//! Expiry checks, key refresh intervals and (later) lockout windows take their
//! `now` from a [`Clock`], so tests move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in whole seconds (and milliseconds) since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, for what whole seconds are too coarse
    /// for (a refresh token's reuse leeway). Defaults to [`Clock::now`] in milliseconds.
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// A shared, dynamically chosen clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(_) => 0,
        }
    }

    #[allow(clippy::disallowed_methods)]
    fn now_millis(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// The wall clock since the Unix epoch, to the nanosecond, for the logs'
/// timestamps (`telemetry/timestamp.rs`) only: when a line was written, never
/// what time decides. `None` before 1970.
#[allow(clippy::disallowed_methods)]
pub fn log_time() -> Option<std::time::Duration> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok()
}

/// A clock that only moves when told to; for tests. It keeps milliseconds.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A manual clock that starts at `now` seconds since the epoch.
    pub fn new(now: i64) -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicI64::new(now.saturating_mul(1000)),
        })
    }

    /// A manual clock that starts at the current wall-clock second.
    pub fn starting_now() -> Arc<Self> {
        Self::new(SystemClock.now())
    }

    /// Move the clock forward (or back, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.advance_millis(secs.saturating_mul(1000));
    }

    /// Move the clock forward (or back, with a negative value) by `ms` milliseconds.
    pub fn advance_millis(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Set the clock to `now` seconds since the epoch.
    pub fn set(&self, now: i64) {
        self.now_ms
            .store(now.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    fn now_millis(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now(), 1_000);
        clock.advance(30);
        assert_eq!(clock.now(), 1_030);
        clock.set(5);
        assert_eq!(clock.now(), 5);
    }

    #[test]
    fn manual_clock_keeps_milliseconds() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_millis(), 1_000_000);
        clock.advance_millis(999);
        assert_eq!((clock.now(), clock.now_millis()), (1_000, 1_000_999));
        clock.advance_millis(1);
        assert_eq!(clock.now(), 1_001);
    }

    #[test]
    fn system_clock_millis_agree_with_seconds() {
        let (s, ms) = (SystemClock.now(), SystemClock.now_millis());
        assert!(ms / 1000 - s <= 1 && ms / 1000 >= s);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800);
    }
}
