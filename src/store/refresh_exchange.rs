//! The SQLite side of a refresh exchange: read the token and its session and
//! write the caller's [`Decision`], and the metadata the refresh's scripts
//! wrote, in one `BEGIN IMMEDIATE` transaction: the token rotates only if the
//! metadata is stored, and the metadata is stored only if the token rotates.
//!
//! The write lock is taken before the read, so a revocation or a competing
//! exchange (from this process or another) either committed before the read,
//! and the decision sees it, or waits until this exchange has committed.

use rusqlite::{Connection, OptionalExtension, params};

use super::MetadataUpdate;
use super::sessions::{
    Decision, RefreshRecord, SESSION_COLUMNS, Session, insert_refresh, session_from_row,
};

/// The refresh token `token_hash` and its session.
pub(super) fn select(
    c: &Connection,
    token_hash: &str,
) -> rusqlite::Result<Option<(RefreshRecord, Session)>> {
    let session_columns = SESSION_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    c.query_row(
        &format!(
            "SELECT r.token_hash, r.sid, r.client_id, r.created_at, r.last_used_at, r.absolute_expires_at, r.retired_at_ms, \
             {session_columns} FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid WHERE r.token_hash = ?1"
        ),
        params![token_hash],
        |row| {
            let r = RefreshRecord {
                token_hash: row.get(0)?,
                sid: row.get(1)?,
                client_id: row.get(2)?,
                created_at: row.get(3)?,
                last_used_at: row.get(4)?,
                absolute_expires_at: row.get(5)?,
                retired_at_ms: row.get(6)?,
            };
            Ok((r, session_from_row(row, 7)?))
        },
    )
    .optional()
}

/// Read, decide, write: inside the caller's write transaction.
pub(super) fn exchange(
    tx: &Connection,
    token_hash: &str,
    metadata: &MetadataUpdate,
    decide: &mut dyn FnMut(&RefreshRecord, &Session) -> Decision,
) -> rusqlite::Result<Option<(RefreshRecord, Session)>> {
    let Some((record, session)) = select(tx, token_hash)? else {
        return Ok(None);
    };
    let decision = decide(&record, &session);
    if !matches!(decision, Decision::Refuse) && !metadata.is_empty() {
        super::sqlite_users::write_metadata(tx, metadata)?;
    }
    match decision {
        Decision::Refuse => {}
        Decision::Rotate {
            successor,
            retired_at_ms,
            session_expires_at,
        } => {
            // The guards repeat the decision's: under the write lock they hold,
            // and a decision that broke them must not write.
            let changed = tx.execute(
                "UPDATE refresh_tokens SET retired_at_ms = ?2 WHERE token_hash = ?1 AND retired_at_ms IS NULL",
                params![token_hash, retired_at_ms],
            )?;
            if changed != 1 {
                return Err(rusqlite::Error::StatementChangedRows(changed));
            }
            insert_refresh(tx, &successor)?;
            extend_session(tx, &session.sid, session_expires_at)?;
        }
        Decision::Touch {
            last_used_at,
            session_expires_at,
        } => {
            tx.execute(
                "UPDATE refresh_tokens SET last_used_at = ?2 WHERE token_hash = ?1",
                params![token_hash, last_used_at],
            )?;
            extend_session(tx, &session.sid, session_expires_at)?;
        }
    }
    Ok(Some((record, session)))
}

/// A live session lasts at least until `expires_at`; a revoked one never
/// grows, so its entry in the revocation log outlives its tokens.
fn extend_session(tx: &Connection, sid: &str, expires_at: i64) -> rusqlite::Result<()> {
    let changed = tx.execute(
        "UPDATE sessions SET expires_at = MAX(expires_at, ?2) WHERE sid = ?1 AND revoked_at IS NULL",
        params![sid, expires_at],
    )?;
    match changed {
        1 => Ok(()),
        n => Err(rusqlite::Error::StatementChangedRows(n)),
    }
}
