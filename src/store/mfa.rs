//! Second factors in SQLite: authenticators (TOTP seeds sealed with the
//! store's key, e-mail addresses, recovery-code hashes), MFA transactions
//! (one per `mfa_required` answer, by the hash of its `mfa_token`) and the
//! per-user count of wrong codes (those two in `mfa_transactions.rs`). The decisions (which code is right, when a
//! transaction is over) are the `mfa` module's; this file only keeps the state,
//! and makes each "use once" a single conditional write.

use rusqlite::{OptionalExtension, Row, params};

use super::StoreError;
pub use super::mfa_transactions::{
    FailureCount, MfaTransaction, MfaTransactionStore, OobChallenge, UpdateFailures,
};
use super::sqlite::SqliteDb;

/// Migration 8: MFA tables, and the methods a session's login used.
pub const SCHEMA: &str = "CREATE TABLE mfa_authenticators (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        secret BLOB NOT NULL,
        active INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX mfa_authenticators_user ON mfa_authenticators(user_id);
    CREATE TABLE mfa_transactions (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        realm TEXT NOT NULL,
        audience TEXT NOT NULL,
        decision TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        oob_authenticator TEXT,
        oob_code_hash TEXT,
        binding_hash TEXT,
        oob_expires_at INTEGER
    );
    CREATE INDEX mfa_transactions_expiry ON mfa_transactions(expires_at);
    CREATE TABLE mfa_failures (
        user_id TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
        failures INTEGER NOT NULL,
        since INTEGER NOT NULL
    );
    ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';";

/// One stored authenticator.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAuthenticator {
    /// `totp|<hex>`, `email|<hex>` or `recovery-code|<hex>`.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// `otp`, `email` or `recovery-code`.
    pub kind: String,
    /// OTP: the sealed seed; e-mail: the address; recovery code: its SHA-256.
    pub secret: Vec<u8>,
    /// Confirmed by a first successful verification.
    pub active: bool,
    /// The last TOTP time step accepted (codes of earlier steps are replays).
    pub last_step: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl std::fmt::Debug for StoredAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAuthenticator")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Persistence of second factors: authenticators here; transactions and the
/// wrong-code count through the supertrait ([`MfaTransactionStore`]).
#[async_trait::async_trait]
pub trait MfaStore: MfaTransactionStore + Send + Sync + std::fmt::Debug {
    /// Every authenticator of `user_id`, oldest first.
    async fn authenticators(&self, user_id: &str) -> Result<Vec<StoredAuthenticator>, StoreError>;
    /// Add authenticators (an enrolment), in one transaction.
    async fn add_authenticators(&self, list: &[StoredAuthenticator]) -> Result<(), StoreError>;
    /// Accept TOTP step `step` of `id` once: true (and the authenticator
    /// active) when no step as late was accepted before.
    async fn accept_step(&self, id: &str, step: i64) -> Result<bool, StoreError>;
    /// Finish an MFA transaction with a TOTP step, in one write transaction:
    /// the transaction must still be open and step `step` of `id` not yet
    /// accepted (each a single conditional write); then the step is
    /// accepted, the authenticator and the user's pending recovery codes go
    /// live, the wrong-code count clears and the transaction ends. When
    /// either check fails nothing is written.
    async fn confirm_otp(&self, c: &OtpConfirmation<'_>) -> Result<Confirmed, StoreError>;
    /// Mark these authenticators of `user_id` active.
    async fn activate(&self, user_id: &str, ids: &[String]) -> Result<(), StoreError>;
    /// Spend an active recovery code of `user_id` (by hash) and store its
    /// successor, at once; false when no such code was live.
    async fn replace_recovery_code(
        &self,
        user_id: &str,
        used_hash: &[u8],
        successor: &StoredAuthenticator,
    ) -> Result<bool, StoreError>;
    /// Remove one authenticator of `user_id` (only an inactive one when
    /// `inactive_only`); removing an OTP or e-mail one also removes the
    /// recovery codes of its enrolment when no other active factor is left.
    async fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        inactive_only: bool,
    ) -> Result<bool, StoreError>;
    /// Remove every authenticator of `user_id`; the number removed.
    async fn reset_authenticators(&self, user_id: &str) -> Result<usize, StoreError>;
    /// Users (ids) with at least one active authenticator.
    async fn enrolled_users(&self) -> Result<Vec<String>, StoreError>;
}

/// What [`MfaStore::confirm_otp`] writes.
#[derive(Debug, Clone, Copy)]
pub struct OtpConfirmation<'a> {
    /// The transaction's user.
    pub user_id: &'a str,
    /// The TOTP authenticator whose code matched.
    pub authenticator_id: &'a str,
    /// The time step the code matched.
    pub step: i64,
    /// The MFA transaction (hash of its `mfa_token`).
    pub token_hash: &'a str,
    /// Seconds since the epoch (`used_at`).
    pub now: i64,
}

/// How [`MfaStore::confirm_otp`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Everything was written.
    Done,
    /// The step (or a later one) was accepted before: a replay.
    StepUsed,
    /// The MFA transaction was already finished.
    TransactionUsed,
}

const AUTH_COLUMNS: &str = "id, user_id, kind, secret, active, last_step, created_at";

fn authenticator_from_row(r: &Row<'_>) -> rusqlite::Result<StoredAuthenticator> {
    Ok(StoredAuthenticator {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: r.get(2)?,
        secret: r.get(3)?,
        active: r.get(4)?,
        last_step: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn insert_authenticator(
    c: &rusqlite::Connection,
    a: &StoredAuthenticator,
) -> rusqlite::Result<usize> {
    c.execute(
        &format!(
            "INSERT INTO mfa_authenticators ({AUTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            a.id,
            a.user_id,
            a.kind,
            a.secret,
            a.active,
            a.last_step,
            a.created_at
        ],
    )
}

impl SqliteDb {
    pub(crate) fn authenticators(
        &self,
        user_id: &str,
    ) -> Result<Vec<StoredAuthenticator>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {AUTH_COLUMNS} FROM mfa_authenticators WHERE user_id = ?1 ORDER BY created_at, rowid"
            ))?;
            let rows = stmt.query_map(params![user_id], authenticator_from_row)?;
            rows.collect()
        })
    }

    pub(crate) fn add_authenticators(
        &self,
        list: &[StoredAuthenticator],
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            for a in list {
                insert_authenticator(tx, a)?;
            }
            Ok(())
        })
    }

    pub(crate) fn accept_step(&self, id: &str, step: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mfa_authenticators SET last_step = ?2, active = 1 WHERE id = ?1 AND last_step < ?2",
                params![id, step],
            )
            .map(|n| n == 1)
        })
    }

    pub(crate) fn confirm_otp(&self, c: &OtpConfirmation<'_>) -> Result<Confirmed, StoreError> {
        // The write lock is held from the first statement, so the check of
        // the transaction still holds when the step is accepted.
        self.in_write_tx(|tx| {
            let open: Option<bool> = tx
                .query_row(
                    "SELECT used_at IS NULL FROM mfa_transactions WHERE token_hash = ?1",
                    params![c.token_hash],
                    |r| r.get(0),
                )
                .optional()?;
            if open != Some(true) {
                return Ok(Confirmed::TransactionUsed);
            }
            let accepted = tx.execute(
                "UPDATE mfa_authenticators SET last_step = ?3, active = 1 \
                 WHERE id = ?1 AND user_id = ?2 AND last_step < ?3",
                params![c.authenticator_id, c.user_id, c.step],
            )?;
            if accepted != 1 {
                return Ok(Confirmed::StepUsed);
            }
            tx.execute(
                "UPDATE mfa_authenticators SET active = 1 \
                 WHERE user_id = ?1 AND kind = 'recovery-code' AND active = 0",
                params![c.user_id],
            )?;
            tx.execute(
                "DELETE FROM mfa_failures WHERE user_id = ?1",
                params![c.user_id],
            )?;
            tx.execute(
                "UPDATE mfa_transactions SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
                params![c.token_hash, c.now],
            )?;
            Ok(Confirmed::Done)
        })
    }

    pub(crate) fn activate(&self, user_id: &str, ids: &[String]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            for id in ids {
                tx.execute(
                    "UPDATE mfa_authenticators SET active = 1 WHERE user_id = ?1 AND id = ?2",
                    params![user_id, id],
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn replace_recovery_code(
        &self,
        user_id: &str,
        used_hash: &[u8],
        successor: &StoredAuthenticator,
    ) -> Result<bool, StoreError> {
        self.in_write_tx(|tx| {
            let spent = tx.execute(
                "DELETE FROM mfa_authenticators WHERE user_id = ?1 AND kind = 'recovery-code' AND active = 1 AND secret = ?2",
                params![user_id, used_hash],
            )?;
            if spent != 1 {
                return Ok(false);
            }
            insert_authenticator(tx, successor)?;
            Ok(true)
        })
    }

    pub(crate) fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        inactive_only: bool,
    ) -> Result<bool, StoreError> {
        self.in_write_tx(|tx| {
            let removed = tx.execute(
                "DELETE FROM mfa_authenticators WHERE user_id = ?1 AND id = ?2 AND (active = 0 OR ?3 = 0)",
                params![user_id, id, inactive_only],
            )?;
            if removed == 1 {
                // Recovery codes only back a real factor: without one left, they go too.
                let factors: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM mfa_authenticators WHERE user_id = ?1 AND kind != 'recovery-code'",
                    params![user_id],
                    |r| r.get(0),
                )?;
                if factors == 0 {
                    tx.execute(
                        "DELETE FROM mfa_authenticators WHERE user_id = ?1",
                        params![user_id],
                    )?;
                }
            }
            Ok(removed == 1)
        })
    }

    pub(crate) fn reset_authenticators(&self, user_id: &str) -> Result<usize, StoreError> {
        self.in_tx(|tx| {
            tx.execute(
                "DELETE FROM mfa_failures WHERE user_id = ?1",
                params![user_id],
            )?;
            tx.execute(
                "DELETE FROM mfa_authenticators WHERE user_id = ?1",
                params![user_id],
            )
        })
    }

    pub(crate) fn enrolled_users(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT user_id FROM mfa_authenticators WHERE active = 1 AND kind != 'recovery-code'",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
#[path = "mfa_tests.rs"]
mod tests;
