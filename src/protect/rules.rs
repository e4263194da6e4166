//! The arithmetic of blocks and throttles, as pure functions of stored
//! counters and `now` (seconds), so the thresholds are tested without a
//! server or a clock.
//!
//! - Brute force: a pair with `threshold` consecutive failures is blocked
//!   until `expiry` after its last failure (no failure is counted while it is
//!   blocked, so the block does not extend itself).
//! - Suspicious IP: a GCRA bucket per IP holding `threshold` failures and
//!   regaining one every `regain` seconds; `tat` is when it is empty again.

use crate::store::protect::FailureStreak;

/// Why an attempt is refused before any hashing, and until when (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The (identifier, IP) pair is blocked after consecutive failures.
    BruteForce {
        /// When the block ends by itself.
        until: i64,
    },
    /// The IP is throttled after failures across identifiers.
    SuspiciousIp {
        /// When the next attempt is allowed.
        until: i64,
    },
}

/// Until when a pair with this streak is blocked; `None` when it is not.
pub fn pair_blocked(
    streak: Option<FailureStreak>,
    now: i64,
    threshold: u32,
    expiry: i64,
) -> Option<i64> {
    let s = streak?;
    let until = s.last_failure.saturating_add(expiry);
    (s.failures >= threshold && until > now).then_some(until)
}

/// Until when an IP whose bucket empties at `tat` is throttled; `None` when it is not.
pub fn ip_throttled(tat: Option<i64>, now: i64, threshold: u32, regain: i64) -> Option<i64> {
    let tat = tat?;
    let allowance = i64::from(threshold.saturating_sub(1)).saturating_mul(regain);
    let until = tat.saturating_sub(allowance);
    (until > now).then_some(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn tenth_failure_blocks_until_thirty_days_after_it() {
        let streak = |failures| {
            Some(FailureStreak {
                failures,
                last_failure: 1_000,
            })
        };
        assert_eq!(pair_blocked(streak(9), 1_000, 10, 30 * DAY), None);
        assert_eq!(
            pair_blocked(streak(10), 1_001, 10, 30 * DAY),
            Some(1_000 + 30 * DAY)
        );
        assert_eq!(
            pair_blocked(streak(10), 1_000 + 30 * DAY, 10, 30 * DAY),
            None
        );
        assert_eq!(pair_blocked(None, 0, 10, 30 * DAY), None);
    }

    #[test]
    fn hundred_failures_throttle_and_one_attempt_returns_every_864_s() {
        let mut tat = None::<i64>;
        let now = 10_000;
        for _ in 0..99 {
            tat = Some(tat.unwrap_or(now).max(now) + 864);
            assert_eq!(ip_throttled(tat, now, 100, 864), None);
        }
        tat = tat.map(|t| t + 864);
        assert_eq!(ip_throttled(tat, now, 100, 864), Some(now + 864));
        assert_eq!(ip_throttled(tat, now + 863, 100, 864), Some(now + 864));
        assert_eq!(ip_throttled(tat, now + 864, 100, 864), None);
        // That one attempt fails: throttled again for 864 s.
        tat = tat.map(|t| t.max(now + 864) + 864);
        assert_eq!(ip_throttled(tat, now + 864, 100, 864), Some(now + 2 * 864));
    }
}
