//! The SQLite store: one connection behind a mutex and the transaction
//! helpers every table module uses. Opening it (WAL, `synchronous = FULL`,
//! the schema brought up to date) is `migrations.rs`, which knows every
//! table's schema; the tables live beside it: users in `sqlite_users.rs`,
//! sessions in `sessions.rs`, counters in `protect.rs`, second factors in
//! `mfa.rs`. This file imports none of them, so they depend on it one way.

use std::sync::Mutex;

use rusqlite::Connection;

use super::StoreError;

/// The SQLite implementation of [`Store`].
#[derive(Debug)]
pub struct SqliteDb {
    pub(super) conn: Mutex<Connection>,
}

pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.clone().unwrap_or_else(|| "unique constraint".into()))
        }
        _ => StoreError::Sqlite(e),
    }
}

impl SqliteDb {
    /// Run `f` in one transaction, committed when it returns `Ok`.
    pub(super) fn in_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction().map_err(backend)?;
        let out = f(&tx).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction: the write lock is held
    /// from the first read, so what `f` read is still true when it writes.
    pub(super) fn in_write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::migrations::{MIGRATIONS, migrate};

    /// A store as passgate left it at schema version 5: refresh tokens retired in seconds.
    #[test]
    fn retirements_in_seconds_migrate_to_milliseconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, 0, 5).unwrap();
            conn.execute_batch(
                "INSERT INTO sessions (sid, user_id, client_id, realm, audience, scope, created_at, expires_at, has_refresh)
                   VALUES ('s1', 'auth0|1', 'app', 'r', 'aud', 'offline_access', 1000, 9000, 1);
                 INSERT INTO refresh_tokens (token_hash, sid, client_id, created_at, last_used_at, absolute_expires_at, retired_at)
                   VALUES ('old', 's1', 'app', 1000, 1000, 9000, 1500),
                          ('new', 's1', 'app', 1500, 1500, 9000, NULL);",
            )
            .unwrap();
        }
        let store = SqliteDb::open(&path).unwrap();
        let version: i64 = store
            .with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let (old, _) = store.find_refresh("old").unwrap().unwrap();
        assert_eq!(old.retired_at_ms, Some(1_500_000));
        let (new, session) = store.find_refresh("new").unwrap().unwrap();
        assert_eq!(new.retired_at_ms, None);
        assert_eq!(
            (new.last_used_at, session.expires_at),
            (1500, 9000),
            "seconds stay seconds"
        );
    }
}
