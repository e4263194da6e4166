//! Login sessions and the revocation log in PostgreSQL (refresh exchanges
//! are `refresh.rs`). Writers of the revocation log take its advisory lock,
//! so its `seq` grows in commit order and `revocations_since` never skips a
//! row that commits late.

use tokio_postgres::Row;

use super::super::MetadataUpdate;
use super::super::StoreError;
use super::super::sessions::{Decide, RefreshRecord, Session, SessionStore};
use super::errors::pg;
use super::{LockSpace, PgStore, begin, commit, lock};

pub(super) const SESSION_COLUMNS: &str = "sid, user_id, client_id, realm, audience, scope, created_at, expires_at, revoked_at, has_refresh, amr";

pub(super) fn session_from_row(row: &Row, at: usize) -> Result<Session, tokio_postgres::Error> {
    Ok(Session {
        sid: row.try_get(at)?,
        user_id: row.try_get(at + 1)?,
        client_id: row.try_get(at + 2)?,
        realm: row.try_get(at + 3)?,
        audience: row.try_get(at + 4)?,
        scope: row.try_get(at + 5)?,
        created_at: row.try_get(at + 6)?,
        expires_at: row.try_get(at + 7)?,
        revoked_at: row.try_get(at + 8)?,
        has_refresh: row.try_get(at + 9)?,
        amr: row.try_get(at + 10)?,
    })
}

fn pairs(rows: &[Row]) -> Result<Vec<(String, i64)>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg)
}

/// Log the revocations of `ended` (`(sid, expires_at)`) inside `tx`.
pub(super) async fn record_revocations(
    tx: &deadpool_postgres::Transaction<'_>,
    ended: &[(String, i64)],
) -> Result<(), StoreError> {
    if ended.is_empty() {
        return Ok(());
    }
    lock(tx, LockSpace::Revocations, "").await?;
    let stmt = tx
        .prepare_cached("INSERT INTO revocations (sid, expires_at) VALUES ($1, $2)")
        .await
        .map_err(pg)?;
    for (sid, expires_at) in ended {
        tx.execute(&stmt, &[sid, expires_at]).await.map_err(pg)?;
    }
    Ok(())
}

pub(super) async fn insert_refresh(
    tx: &deadpool_postgres::Transaction<'_>,
    r: &RefreshRecord,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO refresh_tokens (token_hash, sid, client_id, created_at, last_used_at, absolute_expires_at, retired_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &stmt,
        &[
            &r.token_hash,
            &r.sid,
            &r.client_id,
            &r.created_at,
            &r.last_used_at,
            &r.absolute_expires_at,
            &r.retired_at_ms,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Insert a session (and its first refresh token) inside `tx`; returns the
/// families beyond `max_families` it ended.
async fn insert_session(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &Session,
    refresh: Option<&RefreshRecord>,
    max_families: usize,
    now: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .await
        .map_err(pg)?;
    tx.execute(
        &stmt,
        &[
            &s.sid,
            &s.user_id,
            &s.client_id,
            &s.realm,
            &s.audience,
            &s.scope,
            &s.created_at,
            &s.expires_at,
            &s.revoked_at,
            &s.has_refresh,
            &s.amr,
        ],
    )
    .await
    .map_err(pg)?;
    let Some(r) = refresh else {
        return Ok(Vec::new());
    };
    insert_refresh(tx, r).await?;
    // Logins of one user with one client count their families one at a time.
    lock(
        tx,
        LockSpace::Families,
        &format!("{}\u{0}{}", s.user_id, s.client_id),
    )
    .await?;
    let keep = i64::try_from(max_families).unwrap_or(i64::MAX);
    let stmt = tx
        .prepare_cached(
            "WITH dropped AS ( \
               SELECT sid, expires_at, created_at, seq FROM sessions \
               WHERE user_id = $1 AND client_id = $2 AND has_refresh \
               AND revoked_at IS NULL AND expires_at >= $3 \
               ORDER BY created_at DESC, seq DESC OFFSET $4 FOR UPDATE), \
             ended AS (UPDATE sessions s SET revoked_at = $3 FROM dropped d WHERE s.sid = d.sid) \
             SELECT sid, expires_at FROM dropped ORDER BY created_at DESC, seq DESC",
        )
        .await
        .map_err(pg)?;
    let rows = tx
        .query(&stmt, &[&s.user_id, &s.client_id, &now, &keep])
        .await
        .map_err(pg)?;
    let dropped = pairs(&rows)?;
    record_revocations(tx, &dropped).await?;
    Ok(dropped)
}

#[async_trait::async_trait]
impl SessionStore for PgStore {
    /// Store a new session (and its first refresh token); families of the
    /// user with this client beyond `max_families` are revoked and returned.
    async fn create_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let dropped = insert_session(&tx, session, refresh, max_families, now).await?;
        commit(tx).await?;
        Ok(dropped)
    }

    /// [`SessionStore::create_session`] and the login's metadata, in one transaction.
    async fn create_login_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        if !metadata.is_empty() {
            super::users::write_metadata(&tx, metadata).await?;
        }
        let dropped = insert_session(&tx, session, refresh, max_families, now).await?;
        commit(tx).await?;
        Ok(dropped)
    }

    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        super::refresh::find(self, token_hash).await
    }

    async fn exchange_refresh(
        &self,
        token_hash: &str,
        metadata: &MetadataUpdate,
        decide: Decide,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        super::refresh::exchange(self, token_hash, metadata, decide).await
    }

    /// End a session; false when there was none or it had ended.
    async fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let rows = tx
            .query(
                "UPDATE sessions SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL \
                 RETURNING sid, expires_at",
                &[&sid, &now],
            )
            .await
            .map_err(pg)?;
        let ended = pairs(&rows)?;
        record_revocations(&tx, &ended).await?;
        commit(tx).await?;
        Ok(!ended.is_empty())
    }

    /// End every live session of a user; returns `(sid, expires_at)` of each
    /// that had not expired.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let rows = tx
            .query(
                "WITH ended AS (UPDATE sessions SET revoked_at = $2 \
                   WHERE user_id = $1 AND revoked_at IS NULL RETURNING sid, expires_at, seq) \
                 SELECT sid, expires_at FROM ended ORDER BY seq",
                &[&user_id, &now],
            )
            .await
            .map_err(pg)?;
        let live: Vec<(String, i64)> = pairs(&rows)?
            .into_iter()
            .filter(|(_, expires_at)| *expires_at >= now)
            .collect();
        record_revocations(&tx, &live).await?;
        commit(tx).await?;
        Ok(live)
    }

    /// A user's sessions that have not expired, newest first.
    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND expires_at >= $2 \
                     ORDER BY created_at DESC, seq DESC"
                ),
                &[&user_id, &now],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| session_from_row(r, 0))
            .collect::<Result<_, _>>()
            .map_err(pg)
    }

    /// Revoked sessions whose tokens may still be presented: `(sid, expires_at)`.
    async fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sid, expires_at FROM sessions WHERE revoked_at IS NOT NULL AND expires_at >= $1 \
                 ORDER BY seq",
                &[&now],
            )
            .await
            .map_err(pg)?;
        pairs(&rows)
    }

    /// Delete sessions (and their refresh tokens) that expired before `now`,
    /// and the revocations that no longer matter.
    async fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        tx.execute("DELETE FROM revocations WHERE expires_at < $1", &[&now])
            .await
            .map_err(pg)?;
        let n = tx
            .execute("DELETE FROM sessions WHERE expires_at < $1", &[&now])
            .await
            .map_err(pg)?;
        commit(tx).await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Revocations recorded after `seq` (by any instance): `(seq, sid, expires_at)`.
    async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, sid, expires_at FROM revocations WHERE seq > $1 ORDER BY seq",
                &[&seq],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg)
    }
}
