//! Login sessions and their refresh tokens, in SQLite.
//!
//! A session is one login: its id is the `sid` claim of every token it
//! issues. A session may hold a refresh-token family: an exchange reads the
//! presented token and its session, decides, and retires the token for its
//! successor in one write transaction, so of two concurrent exchanges exactly
//! one wins, and a revocation committed before the exchange is always seen.
//! Refresh tokens are stored only as SHA-256 hashes.

use rusqlite::{Row, params};

use super::sqlite::SqliteDb;
use super::{MetadataUpdate, StoreError};

/// Schema of sessions and refresh tokens (migration 2).
pub const SCHEMA: &str = "CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        realm TEXT NOT NULL,
        audience TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        has_refresh INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_user ON sessions(user_id, client_id);
    CREATE INDEX sessions_expiry ON sessions(expires_at);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        sid TEXT NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        absolute_expires_at INTEGER NOT NULL,
        retired_at INTEGER
    );
    CREATE INDEX refresh_tokens_sid ON refresh_tokens(sid);
    CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sid TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );";

/// Migration 6: a token's retirement in milliseconds, so a replay in the same
/// second as its rotation is not mistaken for one within the reuse leeway.
pub const RETIRED_IN_MILLIS: &str = "ALTER TABLE refresh_tokens RENAME COLUMN retired_at TO retired_at_ms;
    UPDATE refresh_tokens SET retired_at_ms = retired_at_ms * 1000 WHERE retired_at_ms IS NOT NULL;";

/// One login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The `sid` claim.
    pub sid: String,
    /// The user.
    pub user_id: String,
    /// The client that logged in.
    pub client_id: String,
    /// The realm.
    pub realm: String,
    /// The audience of its access tokens.
    pub audience: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// No token of the session is valid after this.
    pub expires_at: i64,
    /// When it was ended.
    pub revoked_at: Option<i64>,
    /// Whether it has a refresh-token family.
    pub has_refresh: bool,
    /// How the user authenticated at login, space-separated (`"pwd"`,
    /// `"pwd mfa"`); its refreshed tokens keep it.
    pub amr: String,
}

/// One refresh token, by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Its session (= its family).
    pub sid: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it (or, for a rotated token, it at issue) was last used: the idle lifetime runs from here.
    pub last_used_at: i64,
    /// The family's absolute end; it does not move on rotation.
    pub absolute_expires_at: i64,
    /// When it was exchanged for its successor, in milliseconds since the epoch.
    pub retired_at_ms: Option<i64>,
}

/// What an exchange does with the presented token, decided from the token and
/// its session as read inside the exchange's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write nothing.
    Refuse,
    /// Retire the token at `retired_at_ms` and store `successor`; the session
    /// then lives at least until `session_expires_at`.
    Rotate {
        /// The new token of the family.
        successor: RefreshRecord,
        /// Now, in milliseconds.
        retired_at_ms: i64,
        /// The new access token's expiry.
        session_expires_at: i64,
    },
    /// Keep the token (a client without rotation): mark it used at
    /// `last_used_at`; the session lives at least until `session_expires_at`.
    Touch {
        /// Now, in seconds.
        last_used_at: i64,
        /// The new access token's expiry.
        session_expires_at: i64,
    },
}

/// What decides a refresh exchange, inside the store's transaction (see
/// [`SessionStore::exchange_refresh`]).
pub type Decide = Box<dyn for<'a, 'b> FnMut(&'a RefreshRecord, &'b Session) -> Decision + Send>;

/// Session persistence.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Store a new session (and its first refresh token). When the user then
    /// has more than `max_families` live refresh families with this client,
    /// the oldest are revoked; their `(sid, expires_at)` are returned.
    async fn create_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// [`SessionStore::create_session`], with the metadata the login's
    /// scripts decided written to the user in the same transaction: both
    /// land, or neither.
    async fn create_login_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// A refresh token and its session.
    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError>;
    /// Exchange a refresh token in one write transaction: read it and its
    /// session, ask `decide`, and apply the [`Decision`]; when it is not a
    /// refusal, store `metadata` (what the refresh's scripts wrote) in the
    /// same transaction. Nothing another exchange or a revocation commits
    /// can fall between the read and the write. Returns what was read
    /// (`None`: no such token); on an error nothing was written, so the
    /// token was not retired either.
    async fn exchange_refresh(
        &self,
        token_hash: &str,
        metadata: &MetadataUpdate,
        decide: Decide,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError>;
    /// End a session; false when there was none or it had ended.
    async fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError>;
    /// End every live session of a user; returns `(sid, expires_at)` of each.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// A user's sessions that have not expired, newest first.
    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError>;
    /// Revoked sessions whose tokens may still be presented: `(sid, expires_at)`.
    async fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// Delete sessions (and their refresh tokens) that expired before `now`.
    async fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError>;
    /// Revocations recorded after `seq` (by any process): `(seq, sid, expires_at)`.
    async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String, i64)>, StoreError>;
}

fn record_revocation(
    c: &rusqlite::Connection,
    sid: &str,
    expires_at: i64,
) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO revocations (sid, expires_at) VALUES (?1, ?2)",
        params![sid, expires_at],
    )
}

pub(super) const SESSION_COLUMNS: &str = "sid, user_id, client_id, realm, audience, scope, created_at, expires_at, revoked_at, has_refresh, amr";

pub(super) fn session_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Session> {
    Ok(Session {
        sid: row.get(at)?,
        user_id: row.get(at + 1)?,
        client_id: row.get(at + 2)?,
        realm: row.get(at + 3)?,
        audience: row.get(at + 4)?,
        scope: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
        expires_at: row.get(at + 7)?,
        revoked_at: row.get(at + 8)?,
        has_refresh: row.get(at + 9)?,
        amr: row.get(at + 10)?,
    })
}

pub(super) fn insert_refresh(
    tx: &rusqlite::Connection,
    r: &RefreshRecord,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, sid, client_id, created_at, last_used_at, absolute_expires_at, retired_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![r.token_hash, r.sid, r.client_id, r.created_at, r.last_used_at, r.absolute_expires_at, r.retired_at_ms],
    )
}

/// Insert a session (and its first refresh token) inside the caller's
/// transaction; returns the families beyond `max_families` it ended.
fn insert_session(
    tx: &rusqlite::Transaction<'_>,
    s: &Session,
    refresh: Option<&RefreshRecord>,
    max_families: usize,
    now: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    tx.execute(
        &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![s.sid, s.user_id, s.client_id, s.realm, s.audience, s.scope, s.created_at, s.expires_at, s.revoked_at, s.has_refresh, s.amr],
    )?;
    let Some(r) = refresh else {
        return Ok(Vec::new());
    };
    insert_refresh(tx, r)?;
    // Families beyond the newest `max_families` of this user and client end here.
    let dropped: Vec<(String, i64)> = tx
        .prepare(
            "SELECT sid, expires_at FROM sessions WHERE user_id = ?1 AND client_id = ?2 AND has_refresh = 1 \
             AND revoked_at IS NULL AND expires_at >= ?3 ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?4",
        )?
        .query_map(params![s.user_id, s.client_id, now, max_families as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (sid, expires_at) in &dropped {
        tx.execute(
            "UPDATE sessions SET revoked_at = ?2 WHERE sid = ?1",
            params![sid, now],
        )?;
        record_revocation(tx, sid, *expires_at)?;
    }
    Ok(dropped)
}

impl SqliteDb {
    pub(crate) fn create_session(
        &self,
        s: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.in_tx(|tx| insert_session(tx, s, refresh, max_families, now))
    }

    pub(crate) fn create_login_session(
        &self,
        s: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.in_tx(|tx| {
            if !metadata.is_empty() {
                super::sqlite_users::write_metadata(tx, metadata)?;
            }
            insert_session(tx, s, refresh, max_families, now)
        })
    }

    pub(crate) fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.with(|c| super::refresh_exchange::select(c, token_hash))
    }

    pub(crate) fn exchange_refresh(
        &self,
        token_hash: &str,
        metadata: &MetadataUpdate,
        decide: &mut dyn FnMut(&RefreshRecord, &Session) -> Decision,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.in_write_tx(|tx| super::refresh_exchange::exchange(tx, token_hash, metadata, decide))
    }

    pub(crate) fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        self.in_tx(|tx| {
            let changed = tx.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE sid = ?1 AND revoked_at IS NULL",
                params![sid, now],
            )?;
            if changed > 0 {
                let expires_at: i64 = tx.query_row(
                    "SELECT expires_at FROM sessions WHERE sid = ?1",
                    params![sid],
                    |r| r.get(0),
                )?;
                record_revocation(tx, sid, expires_at)?;
            }
            Ok(changed > 0)
        })
    }

    pub(crate) fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.in_tx(|tx| {
            let live: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT sid, expires_at FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at >= ?2",
                )?
                .query_map(params![user_id, now], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            tx.execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![user_id, now],
            )?;
            for (sid, expires_at) in &live {
                record_revocation(tx, sid, *expires_at)?;
            }
            Ok(live)
        })
    }

    pub(crate) fn list_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND expires_at >= ?2 ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map(params![user_id, now], |r| session_from_row(r, 0))?;
            rows.collect()
        })
    }

    pub(crate) fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT sid, expires_at FROM sessions WHERE revoked_at IS NOT NULL AND expires_at >= ?1")?;
            let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    pub(crate) fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM revocations WHERE expires_at < ?1",
                params![now],
            )?;
            c.execute("DELETE FROM sessions WHERE expires_at < ?1", params![now])
        })
    }

    pub(crate) fn revocations_since(
        &self,
        seq: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, sid, expires_at FROM revocations WHERE seq > ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }
}
