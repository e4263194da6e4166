//! Counts for the admin status page: live sessions, brute-force blocks and
//! throttled IPs. Read-only, one query each, on the admin listener only.

use rusqlite::params;

use super::{SqliteDb, StoreError};

/// How many of each the store holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatusCounts {
    /// Sessions neither revoked nor expired.
    pub active_sessions: u64,
    /// (identifier, IP) pairs under a brute-force block.
    pub blocked_pairs: u64,
    /// IPs under a suspicious-IP throttle.
    pub throttled_ips: u64,
}

/// The thresholds that decide what counts as blocked or throttled
/// (`[attack_protection]`, see `protect/rules.rs`).
#[derive(Debug, Clone, Copy)]
pub struct StatusRules {
    /// `brute_force_threshold`
    pub block_threshold: u32,
    /// `brute_force_expiry`, in seconds.
    pub block_expiry: i64,
    /// `suspicious_ip_threshold`
    pub ip_threshold: u32,
    /// `suspicious_ip_regain`, in seconds.
    pub ip_regain: i64,
}

/// A store that can count what the status page shows.
#[async_trait::async_trait]
pub trait StatusStore: Send + Sync + std::fmt::Debug {
    /// The counts at `now` (seconds since the epoch).
    async fn status_counts(&self, now: i64, rules: StatusRules)
    -> Result<StatusCounts, StoreError>;
}

impl SqliteDb {
    pub(crate) fn status_counts(
        &self,
        now: i64,
        rules: StatusRules,
    ) -> Result<StatusCounts, StoreError> {
        self.with(|c| {
            let count = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<u64> {
                c.query_row(sql, args, |r| r.get::<_, i64>(0))
                    .map(|n| u64::try_from(n).unwrap_or(0))
            };
            let allowance =
                i64::from(rules.ip_threshold.saturating_sub(1)).saturating_mul(rules.ip_regain);
            Ok(StatusCounts {
                active_sessions: count(
                    "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1",
                    params![now],
                )?,
                blocked_pairs: count(
                    "SELECT COUNT(*) FROM login_failures WHERE failures >= ?1 AND last_failure + ?2 > ?3",
                    params![rules.block_threshold, rules.block_expiry, now],
                )?,
                throttled_ips: count(
                    "SELECT COUNT(*) FROM ip_failures WHERE tat - ?1 > ?2",
                    params![allowance, now],
                )?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_blocks_and_throttles_by_the_rules() {
        let store = SqliteDb::in_memory().unwrap();
        let rules = StatusRules {
            block_threshold: 2,
            block_expiry: 100,
            ip_threshold: 2,
            ip_regain: 10,
        };
        assert_eq!(
            store.status_counts(1000, rules).unwrap(),
            StatusCounts::default()
        );
        for _ in 0..2 {
            store
                .add_login_failure("alice", "10.0.0.1", 1000, 0)
                .unwrap();
        }
        store.add_login_failure("bob", "10.0.0.1", 1000, 0).unwrap();
        for _ in 0..3 {
            store.add_ip_failure("10.0.0.9", 1000, 10).unwrap();
        }
        let counts = store.status_counts(1001, rules).unwrap();
        assert_eq!((counts.blocked_pairs, counts.throttled_ips), (1, 1));
        // Blocks expire with brute_force_expiry.
        assert_eq!(store.status_counts(1200, rules).unwrap().blocked_pairs, 0);
    }
}
