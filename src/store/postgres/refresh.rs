//! A refresh exchange in PostgreSQL: read the token and its session with
//! `FOR UPDATE` (both rows locked until the transaction ends), ask the
//! caller's decision, and write it, with the refresh's metadata, in the same
//! transaction.
//!
//! Retiring the token is one conditional write, `UPDATE ... WHERE
//! retired_at_ms IS NULL RETURNING`: of two instances exchanging one token at
//! once, the second waits on the row lock, then reads the token as retired
//! (and decides on a reuse); were a decision to rotate a retired token
//! anyway, the guard changes no row and nothing is written. A revocation
//! (which updates the session row) either committed before the read, and
//! the decision sees it, or waits for the exchange.

use tokio_postgres::Row;

use super::super::sessions::{Decide, Decision, RefreshRecord, Session};
use super::super::{MetadataUpdate, StoreError};
use super::errors::pg;
use super::sessions::{SESSION_COLUMNS, insert_refresh, session_from_row};
use super::{PgStore, begin, commit};

fn select_sql(lock: bool) -> String {
    let session_columns = SESSION_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT r.token_hash, r.sid, r.client_id, r.created_at, r.last_used_at, r.absolute_expires_at, r.retired_at_ms, \
         {session_columns} FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid WHERE r.token_hash = $1{}",
        if lock { " FOR UPDATE OF r, s" } else { "" }
    )
}

fn from_row(row: &Row) -> Result<(RefreshRecord, Session), StoreError> {
    let read = || -> Result<(RefreshRecord, Session), tokio_postgres::Error> {
        let r = RefreshRecord {
            token_hash: row.try_get(0)?,
            sid: row.try_get(1)?,
            client_id: row.try_get(2)?,
            created_at: row.try_get(3)?,
            last_used_at: row.try_get(4)?,
            absolute_expires_at: row.try_get(5)?,
            retired_at_ms: row.try_get(6)?,
        };
        Ok((r, session_from_row(row, 7)?))
    };
    read().map_err(pg)
}

/// A live session lasts at least until `expires_at`; a revoked one never grows.
async fn extend_session(
    tx: &deadpool_postgres::Transaction<'_>,
    sid: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE sessions SET expires_at = GREATEST(expires_at, $2) WHERE sid = $1 AND revoked_at IS NULL",
        )
        .await
        .map_err(pg)?;
    match tx.execute(&stmt, &[&sid, &expires_at]).await.map_err(pg)? {
        1 => Ok(()),
        changed => Err(StoreError::RowCount {
            what: "extending the session",
            changed,
        }),
    }
}

/// A refresh token and its session.
pub(super) async fn find(
    store: &PgStore,
    token_hash: &str,
) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(&select_sql(false))
        .await
        .map_err(pg)?;
    let row = client.query_opt(&stmt, &[&token_hash]).await.map_err(pg)?;
    row.as_ref().map(from_row).transpose()
}

/// Exchange a refresh token in one transaction: read it and its session
/// (locked), ask `decide`, apply the [`Decision`] and, unless it is a
/// refusal, store `metadata`. Returns what was read (`None`: no such
/// token); on an error nothing was written.
pub(super) async fn exchange(
    store: &PgStore,
    token_hash: &str,
    metadata: &MetadataUpdate,
    mut decide: Decide,
) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
    let mut client = store.client().await?;
    let tx = begin(&mut client).await?;
    let stmt = tx.prepare_cached(&select_sql(true)).await.map_err(pg)?;
    let Some(row) = tx.query_opt(&stmt, &[&token_hash]).await.map_err(pg)? else {
        return Ok(None);
    };
    let (record, session) = from_row(&row)?;
    let decision = decide(&record, &session);
    if !matches!(decision, Decision::Refuse) && !metadata.is_empty() {
        super::users::write_metadata(&tx, metadata).await?;
    }
    match decision {
        Decision::Refuse => return Ok(Some((record, session))),
        Decision::Rotate {
            successor,
            retired_at_ms,
            session_expires_at,
        } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE refresh_tokens SET retired_at_ms = $2 \
                         WHERE token_hash = $1 AND retired_at_ms IS NULL RETURNING token_hash",
                )
                .await
                .map_err(pg)?;
            let retired = tx
                .query_opt(&stmt, &[&token_hash, &retired_at_ms])
                .await
                .map_err(pg)?;
            if retired.is_none() {
                return Err(StoreError::RowCount {
                    what: "retiring the refresh token",
                    changed: 0,
                });
            }
            insert_refresh(&tx, &successor).await?;
            extend_session(&tx, &session.sid, session_expires_at).await?;
        }
        Decision::Touch {
            last_used_at,
            session_expires_at,
        } => {
            tx.execute(
                "UPDATE refresh_tokens SET last_used_at = $2 WHERE token_hash = $1",
                &[&token_hash, &last_used_at],
            )
            .await
            .map_err(pg)?;
            extend_session(&tx, &session.sid, session_expires_at).await?;
        }
    }
    commit(tx).await?;
    Ok(Some((record, session)))
}
