//! The users table of the SQLite store: the [`Store`] trait's user
//! operations. Login names are matched by their lookup key
//! ([`super::login_key`]); a new user whose login name has the key of one
//! already in the realm is refused with a message naming the clash.

use rusqlite::{OptionalExtension, Row, params};

use super::login_key::{describe_clash, login_key, resolve, resolve_per_realm};
use super::sqlite::SqliteDb;
use super::{MetadataUpdate, StoreError, User};

pub(super) const COLUMNS: &str = "user_id, realm, username, email, email_verified, name, password_hash, blocked, \
                       app_metadata, user_metadata, created_at, updated_at, last_login, logins_count";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
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

/// Why `u` cannot join its realm: its id is taken, or one of its login names
/// has the lookup key of a login name already there (username or e-mail,
/// either way round; colliding rows of an older store included).
fn login_clash(
    tx: &rusqlite::Transaction<'_>,
    u: &User,
    username_key: Option<&str>,
    email_key: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE user_id = ?1)",
        params![u.user_id],
        |r| r.get(0),
    )?;
    if taken {
        return Ok(Some(format!("the user id {} is taken", u.user_id)));
    }
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE realm = ?1 \
         AND (username_key IN (?2, ?3) OR email_key IN (?2, ?3)) LIMIT 1"
    ))?;
    let Some(other) = stmt
        .query_row(params![u.realm, username_key, email_key], user_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    let mine = [
        (u.username.as_deref(), username_key, "username"),
        (u.email.as_deref(), email_key, "e-mail"),
    ];
    let clash = mine.iter().find_map(|(typed, key, what)| {
        let (typed, key) = (typed.as_ref()?, key.as_ref()?);
        let theirs = [other.username.as_deref(), other.email.as_deref()];
        theirs
            .iter()
            .flatten()
            .any(|n| login_key(n) == *key)
            .then(|| {
                format!(
                    "the {what} \"{typed}\" is the same login name as {}",
                    describe_clash(&other, key)
                )
            })
    });
    Ok(Some(clash.unwrap_or_else(|| {
        format!("a login name clashes with user {}", other.user_id)
    })))
}

impl SqliteDb {
    pub(crate) fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let username_key = u.username.as_deref().map(login_key);
        let email_key = u.email.as_deref().map(login_key);
        let clash = self.in_tx(|tx| {
            if let Some(clash) = login_clash(tx, u, username_key.as_deref(), email_key.as_deref())? {
                return Ok(Some(clash));
            }
            tx.execute(
                &format!("INSERT INTO users ({COLUMNS}, username_key, email_key) \
                          VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
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
                    u.logins_count,
                    username_key,
                    email_key
                ],
            )?;
            Ok(None)
        })?;
        match clash {
            Some(why) => Err(StoreError::Conflict(why)),
            None => Ok(()),
        }
    }

    pub(crate) fn find_login(
        &self,
        realm: &str,
        identifier: &str,
    ) -> Result<Option<User>, StoreError> {
        let key = login_key(identifier);
        let candidates = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE realm = ?1 AND (username_key = ?2 OR email_key = ?2)"
            ))?;
            let rows = stmt.query_map(params![realm, key], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<User>>>()
        })?;
        Ok(resolve(candidates, identifier))
    }

    pub(crate) fn find_login_everywhere(&self, identifier: &str) -> Result<Vec<User>, StoreError> {
        let key = login_key(identifier);
        let candidates = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE username_key = ?1 OR email_key = ?1 ORDER BY realm"
            ))?;
            let rows = stmt.query_map(params![key], user_from_row)?;
            rows.collect::<rusqlite::Result<Vec<User>>>()
        })?;
        Ok(resolve_per_realm(candidates, identifier))
    }

    pub(crate) fn bcrypt_costs(&self) -> Result<Vec<u32>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT DISTINCT substr(password_hash, 5, 2) FROM users WHERE password_hash LIKE '$2_$%'",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut costs: Vec<u32> = rows
                .filter_map(|cost| cost.ok()?.parse().ok())
                .collect();
            costs.sort_unstable();
            costs.dedup();
            Ok(costs)
        })
    }

    pub(crate) fn get_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM users WHERE user_id = ?1"),
                params![user_id],
                user_from_row,
            )
            .optional()
        })
    }

    pub(crate) fn list_users(&self, realm: &str) -> Result<Vec<User>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM users WHERE realm = ?1 ORDER BY COALESCE(username, email) COLLATE NOCASE"
            ))?;
            let rows = stmt.query_map(params![realm], user_from_row)?;
            rows.collect()
        })
    }

    pub(crate) fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM users WHERE user_id = ?1", params![user_id])
                .map(|n| n > 0)
        })
    }

    pub(crate) fn set_blocked(
        &self,
        user_id: &str,
        blocked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET blocked = ?2, updated_at = ?3 WHERE user_id = ?1",
                params![user_id, blocked, now],
            )
            .map(|n| n > 0)
        })
    }

    pub(crate) fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE user_id = ?1",
                params![user_id, hash, now],
            )
            .map(|n| n > 0)
        })
    }

    pub(crate) fn record_login(
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

    pub(crate) fn update_metadata(&self, update: &MetadataUpdate) -> Result<bool, StoreError> {
        self.in_tx(|tx| write_metadata(tx, update))
    }
}

/// Write `update` inside the caller's transaction; false when no such user.
pub(super) fn write_metadata(
    c: &rusqlite::Connection,
    update: &MetadataUpdate,
) -> rusqlite::Result<bool> {
    let changed = c.execute(
        "UPDATE users SET app_metadata = COALESCE(?2, app_metadata), \
         user_metadata = COALESCE(?3, user_metadata), updated_at = ?4 WHERE user_id = ?1",
        params![
            update.user_id,
            update.app_metadata.as_ref().map(|v| v.to_string()),
            update.user_metadata.as_ref().map(|v| v.to_string()),
            update.now
        ],
    )?;
    Ok(changed > 0)
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
        let s = SqliteDb::in_memory().unwrap_or_else(|e| panic!("{e}"));
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
        SqliteDb::open(&path)
            .and_then(|s| s.create_user(&u))
            .unwrap_or_else(|e| panic!("{e}"));
        let s = SqliteDb::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.get_user(&u.user_id).ok().flatten().is_some());
    }
}
