//! The SQLite store: one file, WAL, `synchronous = FULL` (a commit is on disk
//! before the call returns), schema migrations applied in order at open,
//! tracked in `PRAGMA user_version`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreError, User};

/// Schema versions, applied in order; never edit a released one, add another.
const MIGRATIONS: &[&str] = &[
    // 1: users
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
    // 2: login sessions and refresh-token families (src/store/sessions.rs)
    super::sessions::SCHEMA,
    // 3: attack protection (src/store/protect.rs)
    super::protect::SCHEMA,
    // 4: values written once (src/store/settings.rs)
    super::settings::SCHEMA,
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

const COLUMNS: &str = "user_id, realm, username, email, email_verified, name, password_hash, blocked, \
                       app_metadata, user_metadata, created_at, updated_at, last_login, logins_count";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = row.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Object(Default::default())))
    };
    Ok(User {
        user_id: row.get(0)?,
        realm: row.get(1)?,
        username: row.get(2)?,
        email: row.get(3)?,
        email_verified: row.get(4)?,
        name: row.get(5)?,
        password_hash: row.get(6)?,
        blocked: row.get(7)?,
        app_metadata: json(8)?,
        user_metadata: json(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        last_login: row.get(12)?,
        logins_count: row.get(13)?,
    })
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
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute_batch(sql).map_err(backend)?;
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

impl Store for SqliteStore {
    fn create_user(&self, u: &User) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    u.user_id,
                    u.realm,
                    u.username,
                    u.email,
                    u.email_verified,
                    u.name,
                    u.password_hash,
                    u.blocked,
                    u.app_metadata.to_string(),
                    u.user_metadata.to_string(),
                    u.created_at,
                    u.updated_at,
                    u.last_login,
                    u.logins_count
                ],
            )
            .map(|_| ())
        })
    }

    fn find_login(&self, realm: &str, identifier: &str) -> Result<Option<User>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM users WHERE realm = ?1 AND (username = ?2 COLLATE NOCASE OR email = ?2 COLLATE NOCASE) \
                     ORDER BY (username = ?2 COLLATE NOCASE) DESC LIMIT 1"
                ),
                params![realm, identifier],
                user_from_row,
            )
            .optional()
        })
    }

    fn get_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM users WHERE user_id = ?1"),
                params![user_id],
                user_from_row,
            )
            .optional()
        })
    }

    fn list_users(&self, realm: &str) -> Result<Vec<User>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM users WHERE realm = ?1 ORDER BY COALESCE(username, email) COLLATE NOCASE"
            ))?;
            let rows = stmt.query_map(params![realm], user_from_row)?;
            rows.collect()
        })
    }

    fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM users WHERE user_id = ?1", params![user_id])
                .map(|n| n > 0)
        })
    }

    fn set_blocked(&self, user_id: &str, blocked: bool, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET blocked = ?2, updated_at = ?3 WHERE user_id = ?1",
                params![user_id, blocked, now],
            )
            .map(|n| n > 0)
        })
    }

    fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE user_id = ?1",
                params![user_id, hash, now],
            )
            .map(|n| n > 0)
        })
    }

    fn record_login(
        &self,
        user_id: &str,
        now: i64,
        new_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET last_login = ?2, logins_count = logins_count + 1, \
                 password_hash = COALESCE(?3, password_hash) WHERE user_id = ?1",
                params![user_id, now, new_hash],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::new_user_id;

    fn user(realm: &str, username: &str, email: Option<&str>) -> User {
        User {
            user_id: new_user_id(),
            realm: realm.into(),
            username: Some(username.into()),
            email: email.map(str::to_string),
            email_verified: false,
            name: None,
            password_hash: Some("h".into()),
            blocked: false,
            app_metadata: serde_json::json!({}),
            user_metadata: serde_json::json!({}),
            created_at: 1,
            updated_at: 1,
            last_login: None,
            logins_count: 0,
        }
    }

    #[test]
    fn users_round_trip_and_uniqueness_per_realm() {
        let s = SqliteStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let alice = user("db", "alice", Some("Alice@Example.com"));
        s.create_user(&alice).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            s.create_user(&user("db", "ALICE", None)),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_user(&user("db", "bob", Some("alice@example.com"))),
            Err(StoreError::Conflict(_))
        ));
        s.create_user(&user("other", "alice", None))
            .unwrap_or_else(|e| panic!("{e}"));

        let by_name = s
            .find_login("db", "Alice")
            .ok()
            .flatten()
            .map(|u| u.user_id);
        let by_mail = s
            .find_login("db", "alice@example.com")
            .ok()
            .flatten()
            .map(|u| u.user_id);
        assert_eq!(by_name.as_deref(), Some(alice.user_id.as_str()));
        assert_eq!(by_mail.as_deref(), Some(alice.user_id.as_str()));
        assert!(s.find_login("db", "nobody").ok().flatten().is_none());

        s.record_login(&alice.user_id, 50, Some("new"))
            .unwrap_or_else(|e| panic!("{e}"));
        let got = s
            .get_user(&alice.user_id)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("gone"));
        assert_eq!(
            (
                got.logins_count,
                got.last_login,
                got.password_hash.as_deref()
            ),
            (1, Some(50), Some("new"))
        );
        assert!(s.set_blocked(&alice.user_id, true, 60).unwrap_or(false));
        assert!(
            s.get_user(&alice.user_id)
                .ok()
                .flatten()
                .is_some_and(|u| u.blocked)
        );
        assert_eq!(s.list_users("db").map(|v| v.len()).unwrap_or(0), 1);
        assert!(s.remove_user(&alice.user_id).unwrap_or(false));
        assert!(!s.remove_user(&alice.user_id).unwrap_or(true));
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("sub/p.db");
        let u = user("db", "carol", None);
        SqliteStore::open(&path)
            .and_then(|s| s.create_user(&u))
            .unwrap_or_else(|e| panic!("{e}"));
        let s = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.get_user(&u.user_id).ok().flatten().is_some());
    }
}
