//! Attack-protection counters, values written once, and the status page's
//! counts, in PostgreSQL. Every counter moves in one atomic upsert
//! (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), so failures split
//! across instances add up exactly.

use super::super::StoreError;
use super::super::protect::{AttemptState, FailureStreak, ProtectStore};
use super::super::settings::SettingsStore;
use super::super::status::{StatusCounts, StatusRules, StatusStore};
use super::errors::pg;
use super::{PgStore, count};

/// `identifier` as PostgreSQL text, which cannot hold a NUL character: each
/// NUL becomes U+FFFD. Such a login names no stored user (see `users.rs`), and
/// its failures share a counter with the U+FFFD spelling, which an attacker
/// could have used anyway; the query no longer fails.
fn storable(identifier: &str) -> std::borrow::Cow<'_, str> {
    if identifier.contains('\0') {
        identifier.replace('\0', "\u{FFFD}").into()
    } else {
        identifier.into()
    }
}

fn u32_of(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[async_trait::async_trait]
impl ProtectStore for PgStore {
    /// The state of `identifier` from `ip` and of `ip` itself, in one read.
    async fn attempt_state(&self, identifier: &str, ip: &str) -> Result<AttemptState, StoreError> {
        let identifier = &*storable(identifier);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT (SELECT failures FROM login_failures WHERE identifier = $1 AND ip = $2), \
                        (SELECT last_failure FROM login_failures WHERE identifier = $1 AND ip = $2), \
                        (SELECT tat FROM ip_failures WHERE ip = $2)",
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one(&stmt, &[&identifier, &ip])
            .await
            .map_err(pg)?;
        let read = || -> Result<AttemptState, tokio_postgres::Error> {
            let failures: Option<i64> = row.try_get(0)?;
            let last_failure: Option<i64> = row.try_get(1)?;
            Ok(AttemptState {
                streak: failures
                    .zip(last_failure)
                    .map(|(f, last_failure)| FailureStreak {
                        failures: u32_of(f),
                        last_failure,
                    }),
                ip_tat: row.try_get(2)?,
            })
        };
        read().map_err(pg)
    }

    /// Count a failure of the pair; a streak whose last failure is before
    /// `streak_starts_after` starts again at 1. Returns the new count.
    async fn add_login_failure(
        &self,
        identifier: &str,
        ip: &str,
        now: i64,
        streak_starts_after: i64,
    ) -> Result<u32, StoreError> {
        let identifier = &*storable(identifier);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO login_failures AS f (identifier, ip, failures, last_failure) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (identifier, ip) DO UPDATE SET \
                   failures = CASE WHEN f.last_failure < $4 THEN 1 ELSE f.failures + 1 END, \
                   last_failure = $3 \
                 RETURNING failures",
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one(&stmt, &[&identifier, &ip, &now, &streak_starts_after])
            .await
            .map_err(pg)?;
        Ok(u32_of(row.try_get(0).map_err(pg)?))
    }

    /// Forget the streaks of `identifier` (from `ip` only, when given).
    async fn clear_login_failures(
        &self,
        identifier: &str,
        ip: Option<&str>,
    ) -> Result<usize, StoreError> {
        let identifier = &*storable(identifier);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "DELETE FROM login_failures WHERE identifier = $1 AND ($2::TEXT IS NULL OR ip = $2)",
            )
            .await
            .map_err(pg)?;
        let n = client
            .execute(&stmt, &[&identifier, &ip])
            .await
            .map_err(pg)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Count a failure from `ip` in its suspicious-IP bucket; returns the new `tat`.
    async fn add_ip_failure(&self, ip: &str, now: i64, regain: i64) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO ip_failures AS b (ip, tat) VALUES ($1, $2::BIGINT + $3::BIGINT) \
                 ON CONFLICT (ip) DO UPDATE SET tat = GREATEST(b.tat, $2::BIGINT) + $3::BIGINT \
                 RETURNING tat",
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one(&stmt, &[&ip, &now, &regain])
            .await
            .map_err(pg)?;
        row.try_get(0).map_err(pg)
    }

    /// Forget `ip`'s suspicious-IP bucket; false when there was none.
    async fn clear_ip_failures(&self, ip: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM ip_failures WHERE ip = $1", &[&ip])
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    /// Delete old streaks and empty buckets; returns the rows deleted.
    async fn sweep_protect(&self, now: i64, streak_starts_after: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let a = client
            .execute(
                "DELETE FROM login_failures WHERE last_failure < $1",
                &[&streak_starts_after],
            )
            .await
            .map_err(pg)?;
        let b = client
            .execute("DELETE FROM ip_failures WHERE tat <= $1", &[&now])
            .await
            .map_err(pg)?;
        Ok(usize::try_from(a + b).unwrap_or(usize::MAX))
    }
}

#[async_trait::async_trait]
impl SettingsStore for PgStore {
    /// The value stored under `name`; when there is none yet, store `value`
    /// and return it. Concurrent first calls, from any instance, agree.
    async fn remember_first(&self, name: &str, value: i64) -> Result<i64, StoreError> {
        let client = self.client().await?;
        // A no-op update on conflict makes RETURNING give the stored row.
        let row = client
            .query_one(
                "INSERT INTO settings AS s (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = s.value RETURNING value",
                &[&name, &value],
            )
            .await
            .map_err(pg)?;
        row.try_get(0).map_err(pg)
    }
}

#[async_trait::async_trait]
impl StatusStore for PgStore {
    /// The counts at `now` for the status page.
    async fn status_counts(
        &self,
        now: i64,
        rules: StatusRules,
    ) -> Result<StatusCounts, StoreError> {
        let allowance =
            i64::from(rules.ip_threshold.saturating_sub(1)).saturating_mul(rules.ip_regain);
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT \
                   (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1), \
                   (SELECT COUNT(*) FROM login_failures WHERE failures >= $2 AND last_failure + $3 > $1), \
                   (SELECT COUNT(*) FROM ip_failures WHERE tat - $4 > $1)",
                &[
                    &now,
                    &i64::from(rules.block_threshold),
                    &rules.block_expiry,
                    &allowance,
                ],
            )
            .await
            .map_err(pg)?;
        let read = || -> Result<StatusCounts, tokio_postgres::Error> {
            Ok(StatusCounts {
                active_sessions: count(row.try_get(0)?),
                blocked_pairs: count(row.try_get(1)?),
                throttled_ips: count(row.try_get(2)?),
            })
        };
        read().map_err(pg)
    }
}
