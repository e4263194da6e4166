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
        _ => StoreError::Backend(e.to_string()),
    }
}

impl SqliteStore {
    /// Open (creating when missing) the store at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
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
            return Err(StoreError::Backend(format!(
                "the store has schema version {version}, newer than this passgate knows ({known}); upgrade passgate"
            )));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
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
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Run `f` in one transaction, committed when it returns `Ok`.
    pub(super) fn in_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Backend("store lock poisoned".into()))?;
        let tx = conn.transaction().map_err(backend)?;
        let out = f(&tx).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Backend("store lock poisoned".into()))?;
        f(&conn).map_err(backend)
    }
}
