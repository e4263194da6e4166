//! MFA transactions (one per `mfa_required` answer, by the hash of its
//! `mfa_token`) and the per-user count of wrong codes, in SQLite (tables of
//! migration 8, `mfa.rs`). "Finish once" is one conditional write; the count
//! is read and rewritten in one write transaction.

use rusqlite::{OptionalExtension, Row, params};

use super::StoreError;
use super::sqlite::SqliteDb;

/// One MFA transaction: a password step that answered `mfa_required`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaTransaction {
    /// SHA-256 of the `mfa_token`, hex.
    pub token_hash: String,
    /// The user whose password was verified.
    pub user_id: String,
    /// The client that asked.
    pub client_id: String,
    /// The realm.
    pub realm: String,
    /// The audience asked for.
    pub audience: String,
    /// The login decision (JSON), finished as is after the second factor.
    pub decision: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// The token is refused after this.
    pub expires_at: i64,
    /// When a second factor finished it (then it is refused).
    pub used_at: Option<i64>,
    /// The e-mail challenge under way: authenticator, code hashes, expiry.
    pub oob: Option<OobChallenge>,
}

/// An e-mail code sent for a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OobChallenge {
    /// The e-mail authenticator.
    pub authenticator_id: String,
    /// SHA-256 of the `oob_code` handed to the client.
    pub oob_code_hash: String,
    /// SHA-256 of the code sent by e-mail (the `binding_code`).
    pub binding_hash: String,
    /// Neither is accepted after this.
    pub expires_at: i64,
}

/// Wrong codes of one user: how many still count, and since when the refill runs.
pub type FailureCount = (i64, i64);

/// What rewrites a wrong-code count, inside the store's transaction (see
/// [`MfaTransactionStore::update_failures`]).
pub type UpdateFailures = Box<dyn FnMut(Option<FailureCount>) -> Option<FailureCount> + Send>;

/// Persistence of MFA transactions and wrong-code counts.
#[async_trait::async_trait]
pub trait MfaTransactionStore: Send + Sync + std::fmt::Debug {
    /// Store a new transaction.
    async fn create_transaction(&self, t: &MfaTransaction) -> Result<(), StoreError>;
    /// A transaction by the hash of its token.
    async fn find_transaction(
        &self,
        token_hash: &str,
    ) -> Result<Option<MfaTransaction>, StoreError>;
    /// Finish a transaction once: false when it was already used.
    async fn finish_transaction(&self, token_hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Record (replacing any earlier one) the e-mail challenge of a transaction.
    async fn set_oob(&self, token_hash: &str, oob: &OobChallenge) -> Result<(), StoreError>;
    /// Drop transactions that expired before `now`.
    async fn sweep_transactions(&self, now: i64) -> Result<usize, StoreError>;

    /// Read and rewrite `user_id`'s wrong-code count in one write transaction:
    /// `update` gets the stored count (if any) and returns the one to store
    /// (`None` clears it).
    async fn update_failures(
        &self,
        user_id: &str,
        update: UpdateFailures,
    ) -> Result<Option<FailureCount>, StoreError>;
}

const TX_COLUMNS: &str = "token_hash, user_id, client_id, realm, audience, decision, created_at, expires_at, used_at, oob_authenticator, oob_code_hash, binding_hash, oob_expires_at";

fn transaction_from_row(r: &Row<'_>) -> rusqlite::Result<MfaTransaction> {
    let oob = match (
        r.get::<_, Option<String>>(9)?,
        r.get::<_, Option<String>>(10)?,
        r.get::<_, Option<String>>(11)?,
        r.get::<_, Option<i64>>(12)?,
    ) {
        (Some(authenticator_id), Some(oob_code_hash), Some(binding_hash), Some(expires_at)) => {
            Some(OobChallenge {
                authenticator_id,
                oob_code_hash,
                binding_hash,
                expires_at,
            })
        }
        _ => None,
    };
    Ok(MfaTransaction {
        token_hash: r.get(0)?,
        user_id: r.get(1)?,
        client_id: r.get(2)?,
        realm: r.get(3)?,
        audience: r.get(4)?,
        decision: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        used_at: r.get(8)?,
        oob,
    })
}

impl SqliteDb {
    pub(crate) fn create_transaction(&self, t: &MfaTransaction) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO mfa_transactions (token_hash, user_id, client_id, realm, audience, decision, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![t.token_hash, t.user_id, t.client_id, t.realm, t.audience, t.decision, t.created_at, t.expires_at],
            )
            .map(|_| ())
        })
    }

    pub(crate) fn find_transaction(
        &self,
        token_hash: &str,
    ) -> Result<Option<MfaTransaction>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {TX_COLUMNS} FROM mfa_transactions WHERE token_hash = ?1"),
                params![token_hash],
                transaction_from_row,
            )
            .optional()
        })
    }

    pub(crate) fn finish_transaction(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mfa_transactions SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
                params![token_hash, now],
            )
            .map(|n| n == 1)
        })
    }

    pub(crate) fn set_oob(&self, token_hash: &str, o: &OobChallenge) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mfa_transactions SET oob_authenticator = ?2, oob_code_hash = ?3, binding_hash = ?4, oob_expires_at = ?5 \
                 WHERE token_hash = ?1",
                params![token_hash, o.authenticator_id, o.oob_code_hash, o.binding_hash, o.expires_at],
            )
            .map(|_| ())
        })
    }

    pub(crate) fn sweep_transactions(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM mfa_transactions WHERE expires_at < ?1",
                params![now],
            )
        })
    }

    pub(crate) fn update_failures(
        &self,
        user_id: &str,
        update: &mut dyn FnMut(Option<FailureCount>) -> Option<FailureCount>,
    ) -> Result<Option<FailureCount>, StoreError> {
        self.in_write_tx(|tx| {
            let stored: Option<FailureCount> = tx
                .query_row(
                    "SELECT failures, since FROM mfa_failures WHERE user_id = ?1",
                    params![user_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let next = update(stored);
            if next != stored {
                match next {
                    Some((failures, since)) => tx.execute(
                        "INSERT INTO mfa_failures (user_id, failures, since) VALUES (?1, ?2, ?3) \
                         ON CONFLICT(user_id) DO UPDATE SET failures = ?2, since = ?3",
                        params![user_id, failures, since],
                    )?,
                    None => tx.execute(
                        "DELETE FROM mfa_failures WHERE user_id = ?1",
                        params![user_id],
                    )?,
                };
            }
            Ok(next)
        })
    }
}
