//! The SQLite store: one file, WAL, `synchronous = FULL` (a commit is on disk
//! before the call returns), schema migrations applied in order at open,
//! tracked in `PRAGMA user_version`. The tables live beside it: users in
//! `sqlite_users.rs`, sessions in `sessions.rs`, counters in `protect.rs`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

use super::StoreError;

/// One schema step: SQL, or code where the step must compute (login keys).
enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Schema versions, applied in order; never edit a released one, add another.
const MIGRATIONS: &[Migration] = &[
    // 1: users
    Migration::Sql(
        "CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        username TEXT,
        email TEXT,
        email_verified INTEGER NOT NULL DEFAULT 0,
        name TEXT,
        password_hash TEXT,
        blocked INTEGER NOT NULL DEFAULT 0,
        app_metadata TEXT NOT NULL DEFAULT '{}',
        user_metadata TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_login INTEGER,
        logins_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX users_realm_username ON users(realm, username COLLATE NOCASE) WHERE username IS NOT NULL;
    CREATE UNIQUE INDEX users_realm_email ON users(realm, email COLLATE NOCASE) WHERE email IS NOT NULL;",
    ),
    // 2: login sessions and refresh-token families (src/store/sessions.rs)
    Migration::Sql(super::sessions::SCHEMA),
    // 3: attack protection (src/store/protect.rs)
    Migration::Sql(super::protect::SCHEMA),
    // 4: login names matched by their lookup key (src/store/login_migration.rs)
    Migration::Code(super::login_migration::up),
    // 5: values written once (src/store/settings.rs)
    Migration::Sql(super::settings::SCHEMA),
    // 6: refresh tokens retired in milliseconds (src/store/sessions.rs)
    Migration::Sql(super::sessions::RETIRED_IN_MILLIS),
    // 7: reserved for the scripts stage (issue 12), which lands its own step
    // here; until then an empty step keeps MFA's number stable.
    Migration::Sql(""),
    // 8: second factors and the methods of a session's login (src/store/mfa.rs)
    Migration::Sql(super::mfa::SCHEMA),
];

/// The SQLite implementation of [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
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

/// Apply the migrations after schema version `from` up to version `to`, each in its own transaction.
fn migrate(conn: &mut Connection, from: usize, to: usize) -> Result<(), StoreError> {
    for (i, step) in MIGRATIONS.iter().enumerate().take(to).skip(from) {
        let tx = conn.transaction().map_err(backend)?;
        match step {
            Migration::Sql(sql) => tx.execute_batch(sql),
            Migration::Code(up) => up(&tx),
        }
        .map_err(backend)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating when missing) the store at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::setup(conn)
    }

    /// A private in-memory store, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(backend)?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Schema {
                found: version,
                known,
            });
        }
        migrate(&mut conn, version as usize, MIGRATIONS.len())?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

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
    use crate::store::sessions::SessionStore;

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
        let store = SqliteStore::open(&path).unwrap();
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
