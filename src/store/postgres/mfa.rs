//! Second factors in PostgreSQL: authenticators (MFA transactions and the
//! wrong-code count are `mfa_transactions.rs`). Each "use once" (a TOTP
//! step, a recovery code) is one conditional write, so two instances racing
//! on one code cannot both accept it.

use tokio_postgres::Row;

use super::super::StoreError;
use super::super::mfa::{Confirmed, MfaStore, OtpConfirmation, StoredAuthenticator};
use super::errors::pg;
use super::{PgStore, begin, commit};

const AUTH_COLUMNS: &str = "id, user_id, kind, secret, active, last_step, created_at";

fn authenticator_from_row(r: &Row) -> Result<StoredAuthenticator, tokio_postgres::Error> {
    Ok(StoredAuthenticator {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        secret: r.try_get(3)?,
        active: r.try_get(4)?,
        last_step: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

async fn insert_authenticator(
    tx: &deadpool_postgres::Transaction<'_>,
    a: &StoredAuthenticator,
) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO mfa_authenticators ({AUTH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ),
        &[
            &a.id,
            &a.user_id,
            &a.kind,
            &a.secret,
            &a.active,
            &a.last_step,
            &a.created_at,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

#[async_trait::async_trait]
impl MfaStore for PgStore {
    /// Every authenticator of `user_id`, oldest first.
    async fn authenticators(&self, user_id: &str) -> Result<Vec<StoredAuthenticator>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {AUTH_COLUMNS} FROM mfa_authenticators WHERE user_id = $1 ORDER BY created_at, seq"
            ))
            .await
            .map_err(pg)?;
        let rows = client.query(&stmt, &[&user_id]).await.map_err(pg)?;
        rows.iter()
            .map(authenticator_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg)
    }

    /// Add authenticators (an enrolment), in one transaction.
    async fn add_authenticators(&self, list: &[StoredAuthenticator]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        for a in list {
            insert_authenticator(&tx, a).await?;
        }
        commit(tx).await
    }

    /// Accept TOTP step `step` of `id` once.
    async fn accept_step(&self, id: &str, step: i64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE mfa_authenticators SET last_step = $2, active = true WHERE id = $1 AND last_step < $2",
                &[&id, &step],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    /// Finish an MFA transaction with a TOTP step, in one transaction: the
    /// MFA transaction's row is locked first, then each check is a
    /// conditional write; when one fails nothing is written.
    async fn confirm_otp(&self, c: &OtpConfirmation<'_>) -> Result<Confirmed, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let open: Option<bool> = tx
            .query_opt(
                "SELECT used_at IS NULL FROM mfa_transactions WHERE token_hash = $1 FOR UPDATE",
                &[&c.token_hash],
            )
            .await
            .map_err(pg)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(pg)?;
        if open != Some(true) {
            return Ok(Confirmed::TransactionUsed);
        }
        let accepted = tx
            .execute(
                "UPDATE mfa_authenticators SET last_step = $3, active = true \
                 WHERE id = $1 AND user_id = $2 AND last_step < $3",
                &[&c.authenticator_id, &c.user_id, &c.step],
            )
            .await
            .map_err(pg)?;
        if accepted != 1 {
            return Ok(Confirmed::StepUsed);
        }
        tx.execute(
            "UPDATE mfa_authenticators SET active = true \
             WHERE user_id = $1 AND kind = 'recovery-code' AND NOT active",
            &[&c.user_id],
        )
        .await
        .map_err(pg)?;
        tx.execute("DELETE FROM mfa_failures WHERE user_id = $1", &[&c.user_id])
            .await
            .map_err(pg)?;
        tx.execute(
            "UPDATE mfa_transactions SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            &[&c.token_hash, &c.now],
        )
        .await
        .map_err(pg)?;
        commit(tx).await?;
        Ok(Confirmed::Done)
    }

    /// Mark these authenticators of `user_id` active.
    async fn activate(&self, user_id: &str, ids: &[String]) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE mfa_authenticators SET active = true WHERE user_id = $1 AND id = ANY($2)",
                &[&user_id, &ids],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Spend an active recovery code of `user_id` (by hash) and store its
    /// successor, at once; false when no such code was live.
    async fn replace_recovery_code(
        &self,
        user_id: &str,
        used_hash: &[u8],
        successor: &StoredAuthenticator,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let spent = tx
            .execute(
                "DELETE FROM mfa_authenticators \
                 WHERE user_id = $1 AND kind = 'recovery-code' AND active AND secret = $2",
                &[&user_id, &used_hash],
            )
            .await
            .map_err(pg)?;
        if spent != 1 {
            return Ok(false);
        }
        insert_authenticator(&tx, successor).await?;
        commit(tx).await?;
        Ok(true)
    }

    /// Remove one authenticator of `user_id` (only an inactive one when
    /// `inactive_only`); the recovery codes go too when no factor is left.
    async fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        inactive_only: bool,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let removed = tx
            .execute(
                "DELETE FROM mfa_authenticators WHERE user_id = $1 AND id = $2 AND (NOT active OR NOT $3)",
                &[&user_id, &id, &inactive_only],
            )
            .await
            .map_err(pg)?;
        if removed == 1 {
            let factors: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM mfa_authenticators WHERE user_id = $1 AND kind != 'recovery-code'",
                    &[&user_id],
                )
                .await
                .map_err(pg)?
                .try_get(0)
                .map_err(pg)?;
            if factors == 0 {
                tx.execute(
                    "DELETE FROM mfa_authenticators WHERE user_id = $1",
                    &[&user_id],
                )
                .await
                .map_err(pg)?;
            }
        }
        commit(tx).await?;
        Ok(removed == 1)
    }

    /// Remove every authenticator of `user_id`; the number removed.
    async fn reset_authenticators(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        tx.execute("DELETE FROM mfa_failures WHERE user_id = $1", &[&user_id])
            .await
            .map_err(pg)?;
        let n = tx
            .execute(
                "DELETE FROM mfa_authenticators WHERE user_id = $1",
                &[&user_id],
            )
            .await
            .map_err(pg)?;
        commit(tx).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Users (ids) with at least one active authenticator.
    async fn enrolled_users(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT user_id FROM mfa_authenticators WHERE active AND kind != 'recovery-code'",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(pg)
    }
}
