//! Opening the SQLite store: the schema migrations, applied in order at open
//! and tracked in `PRAGMA user_version`, and the connection's settings (WAL,
//! `synchronous = FULL`: a commit is on disk before the call returns).
//!
//! The list names each table module's schema, so it lives here and not in
//! `sqlite.rs`: the table modules import `sqlite.rs` (the store and its
//! transaction helpers) and this file imports them, one way.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

use super::StoreError;
use super::sqlite::{SqliteDb, backend};

/// One schema step: SQL, or code where the step must compute (login keys).
pub(super) enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Schema versions, applied in order; never edit a released one, add another.
pub(super) const MIGRATIONS: &[Migration] = &[
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
    // 9: signing keys, sealed (src/store/keys.rs)
    Migration::Sql(super::keys::SCHEMA),
];

/// Apply the migrations after schema version `from` up to version `to`, each in its own transaction.
pub(super) fn migrate(conn: &mut Connection, from: usize, to: usize) -> Result<(), StoreError> {
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

/// `passgate migrate` on SQLite: open (creating and migrating) the file at
/// `path` and say from which version.
pub(super) fn migrate_file(path: &Path) -> Result<super::Migrated, StoreError> {
    let from = match path.exists() {
        true => Connection::open(path)
            .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?,
        false => 0,
    };
    SqliteDb::open(path)?;
    Ok(super::Migrated {
        from,
        to: MIGRATIONS.len() as i64,
    })
}

impl SqliteDb {
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

    /// A read-only connection to the store at `path`, which [`SqliteDb::open`]
    /// made: a reader thread's (WAL lets it read while the writer commits).
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
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
}
