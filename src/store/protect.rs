//! Attack-protection state in SQLite: brute-force failure streaks per
//! (identifier, IP) and suspicious-IP buckets, so a restart does not reset an
//! attacker's count.
//!
//! A streak's identifier is an account, `user:<user_id>`, when the login
//! name resolved to one (so every alias of the account shares it), else the
//! login name's lookup key, `name:<key>` ([`counter_for_account`],
//! [`counter_for_name`]). IPs are stored as their limiter key
//! (`203.0.113.9`, `2001:db8::/64`). The `protect` module decides what the
//! numbers mean, this file only keeps them.

use rusqlite::{OptionalExtension, params};

use super::StoreError;
use super::sqlite::SqliteDb;

/// Unresolved login names longer than this are counted by their first
/// this-many bytes.
const MAX_NAME: usize = 320;

/// The streak identifier of an account: every alias of it counts here.
pub fn counter_for_account(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The streak identifier of a login name that resolves to no account: its
/// lookup key (see [`super::login_key`]), cut to a bounded length.
pub fn counter_for_name(identifier: &str) -> String {
    let mut key = super::login_key(identifier);
    if key.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    format!("name:{key}")
}

/// Schema of the attack-protection tables (migration 3).
pub const SCHEMA: &str = "CREATE TABLE login_failures (
        identifier TEXT NOT NULL,
        ip TEXT NOT NULL,
        failures INTEGER NOT NULL,
        last_failure INTEGER NOT NULL,
        PRIMARY KEY (identifier, ip)
    );
    CREATE INDEX login_failures_last ON login_failures(last_failure);
    CREATE TABLE ip_failures (
        ip TEXT PRIMARY KEY,
        tat INTEGER NOT NULL
    );
    CREATE INDEX ip_failures_tat ON ip_failures(tat);";

/// A streak of consecutive failed logins for one (identifier, IP) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureStreak {
    /// Consecutive failures.
    pub failures: u32,
    /// Seconds since the epoch.
    pub last_failure: i64,
}

/// What a login attempt needs to know before hashing anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// The pair's failure streak, if any.
    pub streak: Option<FailureStreak>,
    /// The IP's suspicious-failure bucket: the time (seconds since the epoch)
    /// at which it is empty again (GCRA's theoretical arrival time).
    pub ip_tat: Option<i64>,
}

/// Persistence of brute-force and suspicious-IP counters.
#[async_trait::async_trait]
pub trait ProtectStore: Send + Sync + std::fmt::Debug {
    /// The state of `identifier` from `ip` and of `ip` itself, in one read.
    async fn attempt_state(&self, identifier: &str, ip: &str) -> Result<AttemptState, StoreError>;
    /// Count a failure of the pair; a streak whose last failure is before
    /// `streak_starts_after` starts again at 1. Returns the new count.
    async fn add_login_failure(
        &self,
        identifier: &str,
        ip: &str,
        now: i64,
        streak_starts_after: i64,
    ) -> Result<u32, StoreError>;
    /// Forget the streaks of `identifier` (from `ip` only, when given).
    /// Returns how many pairs were cleared.
    async fn clear_login_failures(
        &self,
        identifier: &str,
        ip: Option<&str>,
    ) -> Result<usize, StoreError>;
    /// Count a failure from `ip` in its suspicious-IP bucket: the bucket's
    /// `tat` becomes `max(tat, now) + regain`. Returns the new `tat`.
    async fn add_ip_failure(&self, ip: &str, now: i64, regain: i64) -> Result<i64, StoreError>;
    /// Forget `ip`'s suspicious-IP bucket; false when there was none.
    async fn clear_ip_failures(&self, ip: &str) -> Result<bool, StoreError>;
    /// Delete streaks whose last failure is before `streak_starts_after` and
    /// buckets that are empty at `now`. Returns the rows deleted.
    async fn sweep_protect(&self, now: i64, streak_starts_after: i64) -> Result<usize, StoreError>;
}

impl SqliteDb {
    pub(crate) fn attempt_state(
        &self,
        identifier: &str,
        ip: &str,
    ) -> Result<AttemptState, StoreError> {
        self.with(|c| {
            let streak = c
                .query_row(
                    "SELECT failures, last_failure FROM login_failures WHERE identifier = ?1 AND ip = ?2",
                    params![identifier, ip],
                    |r| {
                        Ok(FailureStreak {
                            failures: r.get(0)?,
                            last_failure: r.get(1)?,
                        })
                    },
                )
                .optional()?;
            let ip_tat = c
                .query_row(
                    "SELECT tat FROM ip_failures WHERE ip = ?1",
                    params![ip],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(AttemptState { streak, ip_tat })
        })
    }

    pub(crate) fn add_login_failure(
        &self,
        identifier: &str,
        ip: &str,
        now: i64,
        streak_starts_after: i64,
    ) -> Result<u32, StoreError> {
        self.with(|c| {
            c.query_row(
                "INSERT INTO login_failures (identifier, ip, failures, last_failure) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT(identifier, ip) DO UPDATE SET
                   failures = CASE WHEN last_failure < ?4 THEN 1 ELSE failures + 1 END,
                   last_failure = ?3
                 RETURNING failures",
                params![identifier, ip, now, streak_starts_after],
                |r| r.get(0),
            )
        })
    }

    pub(crate) fn clear_login_failures(
        &self,
        identifier: &str,
        ip: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.with(|c| match ip {
            Some(ip) => c.execute(
                "DELETE FROM login_failures WHERE identifier = ?1 AND ip = ?2",
                params![identifier, ip],
            ),
            None => c.execute(
                "DELETE FROM login_failures WHERE identifier = ?1",
                params![identifier],
            ),
        })
    }

    pub(crate) fn add_ip_failure(
        &self,
        ip: &str,
        now: i64,
        regain: i64,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row(
                "INSERT INTO ip_failures (ip, tat) VALUES (?1, ?2 + ?3)
                 ON CONFLICT(ip) DO UPDATE SET tat = MAX(tat, ?2) + ?3
                 RETURNING tat",
                params![ip, now, regain],
                |r| r.get(0),
            )
        })
    }

    pub(crate) fn clear_ip_failures(&self, ip: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM ip_failures WHERE ip = ?1", params![ip])
                .map(|n| n > 0)
        })
    }

    pub(crate) fn sweep_protect(
        &self,
        now: i64,
        streak_starts_after: i64,
    ) -> Result<usize, StoreError> {
        self.with(|c| {
            let a = c.execute(
                "DELETE FROM login_failures WHERE last_failure < ?1",
                params![streak_starts_after],
            )?;
            let b = c.execute("DELETE FROM ip_failures WHERE tat <= ?1", params![now])?;
            Ok(a + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SqliteDb {
        SqliteDb::in_memory().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn streaks_count_expire_and_clear() {
        let s = store();
        let add = |now| {
            s.add_login_failure("alice", "192.0.2.1", now, now - 100)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(add(1_000), 1);
        assert_eq!(add(1_050), 2);
        // More than 100 s after the last failure: a new streak.
        assert_eq!(add(1_200), 1);
        let st = s
            .attempt_state("alice", "192.0.2.1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            st.streak,
            Some(FailureStreak {
                failures: 1,
                last_failure: 1_200
            })
        );
        assert_eq!(st.ip_tat, None);
        s.add_login_failure("alice", "192.0.2.2", 1_200, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.clear_login_failures("alice", Some("192.0.2.1")).ok(),
            Some(1)
        );
        assert_eq!(s.clear_login_failures("alice", None).ok(), Some(1));
        assert_eq!(
            s.attempt_state("alice", "192.0.2.2").map(|a| a.streak).ok(),
            Some(None)
        );
    }

    #[test]
    fn ip_bucket_is_gcra_and_sweeps() {
        let s = store();
        assert_eq!(s.add_ip_failure("192.0.2.1", 1_000, 864).ok(), Some(1_864));
        assert_eq!(s.add_ip_failure("192.0.2.1", 1_000, 864).ok(), Some(2_728));
        // Long after: starts from now again.
        assert_eq!(s.add_ip_failure("192.0.2.1", 9_000, 864).ok(), Some(9_864));
        s.add_login_failure("bob", "192.0.2.1", 1_000, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sweep_protect(9_000, 500).ok(), Some(0));
        assert_eq!(s.sweep_protect(9_864, 1_001).ok(), Some(2));
        assert!(!s.clear_ip_failures("192.0.2.1").unwrap_or(true));
    }
}
