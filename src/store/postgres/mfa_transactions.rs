//! MFA transactions (one per `mfa_required` answer, by the hash of its
//! `mfa_token`) and the per-user count of wrong codes, in PostgreSQL.
//! "Finish once" is one conditional write; the count is read and rewritten
//! under the user's advisory lock, since its row may not exist yet.

use tokio_postgres::Row;

use super::super::StoreError;
use super::super::mfa_transactions::{
    FailureCount, MfaTransaction, MfaTransactionStore, OobChallenge, UpdateFailures,
};
use super::errors::pg;
use super::{LockSpace, PgStore, begin, commit, lock};

const TX_COLUMNS: &str = "token_hash, user_id, client_id, realm, audience, decision, created_at, expires_at, used_at, oob_authenticator, oob_code_hash, binding_hash, oob_expires_at";

fn transaction_from_row(r: &Row) -> Result<MfaTransaction, tokio_postgres::Error> {
    let oob = match (
        r.try_get::<_, Option<String>>(9)?,
        r.try_get::<_, Option<String>>(10)?,
        r.try_get::<_, Option<String>>(11)?,
        r.try_get::<_, Option<i64>>(12)?,
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
        token_hash: r.try_get(0)?,
        user_id: r.try_get(1)?,
        client_id: r.try_get(2)?,
        realm: r.try_get(3)?,
        audience: r.try_get(4)?,
        decision: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        used_at: r.try_get(8)?,
        oob,
    })
}

#[async_trait::async_trait]
impl MfaTransactionStore for PgStore {
    /// Store a new transaction.
    async fn create_transaction(&self, t: &MfaTransaction) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO mfa_transactions (token_hash, user_id, client_id, realm, audience, decision, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &t.token_hash,
                    &t.user_id,
                    &t.client_id,
                    &t.realm,
                    &t.audience,
                    &t.decision,
                    &t.created_at,
                    &t.expires_at,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// A transaction by the hash of its token.
    async fn find_transaction(
        &self,
        token_hash: &str,
    ) -> Result<Option<MfaTransaction>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {TX_COLUMNS} FROM mfa_transactions WHERE token_hash = $1"),
                &[&token_hash],
            )
            .await
            .map_err(pg)?;
        row.as_ref()
            .map(transaction_from_row)
            .transpose()
            .map_err(pg)
    }

    /// Finish a transaction once: false when it was already used.
    async fn finish_transaction(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE mfa_transactions SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                &[&token_hash, &now],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    /// Record (replacing any earlier one) the e-mail challenge of a transaction.
    async fn set_oob(&self, token_hash: &str, o: &OobChallenge) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE mfa_transactions SET oob_authenticator = $2, oob_code_hash = $3, binding_hash = $4, oob_expires_at = $5 \
                 WHERE token_hash = $1",
                &[
                    &token_hash,
                    &o.authenticator_id,
                    &o.oob_code_hash,
                    &o.binding_hash,
                    &o.expires_at,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Drop transactions that expired before `now`.
    async fn sweep_transactions(&self, now: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM mfa_transactions WHERE expires_at < $1",
                &[&now],
            )
            .await
            .map_err(pg)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Read and rewrite `user_id`'s wrong-code count in one transaction,
    /// under the user's advisory lock (the row may not exist yet).
    async fn update_failures(
        &self,
        user_id: &str,
        mut update: UpdateFailures,
    ) -> Result<Option<FailureCount>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock(&tx, LockSpace::MfaFailures, user_id).await?;
        let stored: Option<FailureCount> = tx
            .query_opt(
                "SELECT failures, since FROM mfa_failures WHERE user_id = $1",
                &[&user_id],
            )
            .await
            .map_err(pg)?
            .map(|r| Ok::<_, tokio_postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
            .map_err(pg)?;
        let next = update(stored);
        if next != stored {
            match next {
                Some((failures, since)) => {
                    tx.execute(
                        "INSERT INTO mfa_failures (user_id, failures, since) VALUES ($1, $2, $3) \
                         ON CONFLICT (user_id) DO UPDATE SET failures = $2, since = $3",
                        &[&user_id, &failures, &since],
                    )
                    .await
                }
                None => {
                    tx.execute("DELETE FROM mfa_failures WHERE user_id = $1", &[&user_id])
                        .await
                }
            }
            .map_err(pg)?;
        }
        commit(tx).await?;
        Ok(next)
    }
}
