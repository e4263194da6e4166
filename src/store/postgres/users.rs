//! Users in PostgreSQL: the `Store` trait's operations. Login names are
//! matched by their lookup keys, as in SQLite; a new user is checked against
//! the realm's names under the realm's advisory lock, so two instances
//! creating clashing users at once cannot both succeed.

use tokio_postgres::Row;

use super::super::login_key::{describe_clash, login_key, resolve, resolve_per_realm};
use super::super::{MetadataUpdate, Store, StoreError, User};
use super::errors::pg;
use super::{LockSpace, PgStore, begin, commit, lock};

pub(super) const COLUMNS: &str = "user_id, realm, username, email, email_verified, name, password_hash, blocked, \
     app_metadata, user_metadata, created_at, updated_at, last_login, logins_count";

pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let user = || -> Result<User, tokio_postgres::Error> {
        Ok(User {
            user_id: row.try_get(0)?,
            realm: row.try_get(1)?,
            username: row.try_get(2)?,
            email: row.try_get(3)?,
            email_verified: row.try_get(4)?,
            name: row.try_get(5)?,
            password_hash: row.try_get(6)?,
            blocked: row.try_get(7)?,
            app_metadata: row.try_get(8)?,
            user_metadata: row.try_get(9)?,
            created_at: row.try_get(10)?,
            updated_at: row.try_get(11)?,
            last_login: row.try_get(12)?,
            logins_count: row.try_get(13)?,
        })
    };
    user().map_err(pg)
}

fn users_from_rows(rows: &[Row]) -> Result<Vec<User>, StoreError> {
    rows.iter().map(user_from_row).collect()
}

/// Why `u` cannot join its realm (see the SQLite side, `sqlite_users.rs`).
async fn login_clash(
    tx: &deadpool_postgres::Transaction<'_>,
    u: &User,
    username_key: Option<&str>,
    email_key: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let taken = tx
        .query_opt("SELECT 1 FROM users WHERE user_id = $1", &[&u.user_id])
        .await
        .map_err(pg)?;
    if taken.is_some() {
        return Ok(Some(format!("the user id {} is taken", u.user_id)));
    }
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM users WHERE realm = $1 \
             AND (username_key IN ($2, $3) OR email_key IN ($2, $3)) LIMIT 1"
        ))
        .await
        .map_err(pg)?;
    let Some(row) = tx
        .query_opt(&stmt, &[&u.realm, &username_key, &email_key])
        .await
        .map_err(pg)?
    else {
        return Ok(None);
    };
    let other = user_from_row(&row)?;
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

/// Write `update` inside the caller's transaction; false when no such user.
pub(super) async fn write_metadata(
    tx: &deadpool_postgres::Transaction<'_>,
    update: &MetadataUpdate,
) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE users SET app_metadata = COALESCE($2, app_metadata), \
             user_metadata = COALESCE($3, user_metadata), updated_at = $4 WHERE user_id = $1",
        )
        .await
        .map_err(pg)?;
    let changed = tx
        .execute(
            &stmt,
            &[
                &update.user_id,
                &update.app_metadata,
                &update.user_metadata,
                &update.now,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(changed > 0)
}

#[async_trait::async_trait]
impl Store for PgStore {
    /// Add a user; `Conflict`, with a message naming the clash, when the id is
    /// taken or a login name has the lookup key of one already in the realm.
    async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let username_key = u.username.as_deref().map(login_key);
        let email_key = u.email.as_deref().map(login_key);
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock(&tx, LockSpace::RealmNames, &u.realm).await?;
        if let Some(why) =
            login_clash(&tx, u, username_key.as_deref(), email_key.as_deref()).await?
        {
            return Err(StoreError::Conflict(why));
        }
        tx.execute(
            &format!(
                "INSERT INTO users ({COLUMNS}, username_key, email_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            &[
                &u.user_id,
                &u.realm,
                &u.username,
                &u.email,
                &u.email_verified,
                &u.name,
                &u.password_hash,
                &u.blocked,
                &u.app_metadata,
                &u.user_metadata,
                &u.created_at,
                &u.updated_at,
                &u.last_login,
                &u.logins_count,
                &username_key,
                &email_key,
            ],
        )
        .await
        .map_err(pg)?;
        commit(tx).await
    }

    /// The user of `realm` a login as `identifier` means.
    async fn find_login(&self, realm: &str, identifier: &str) -> Result<Option<User>, StoreError> {
        if holds_nul(identifier) {
            return Ok(None);
        }
        let key = login_key(identifier);
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE realm = $1 AND (username_key = $2 OR email_key = $2)"
            ))
            .await
            .map_err(pg)?;
        let rows = client.query(&stmt, &[&realm, &key]).await.map_err(pg)?;
        Ok(resolve(users_from_rows(&rows)?, identifier))
    }

    /// [`Store::find_login`] in every realm: at most one user per realm.
    async fn find_login_everywhere(&self, identifier: &str) -> Result<Vec<User>, StoreError> {
        if holds_nul(identifier) {
            return Ok(Vec::new());
        }
        let key = login_key(identifier);
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM users WHERE username_key = $1 OR email_key = $1 \
                     ORDER BY realm COLLATE \"C\""
                ),
                &[&key],
            )
            .await
            .map_err(pg)?;
        Ok(resolve_per_realm(users_from_rows(&rows)?, identifier))
    }

    /// The distinct bcrypt costs among the stored hashes.
    async fn bcrypt_costs(&self) -> Result<Vec<u32>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT substr(password_hash, 5, 2) FROM users WHERE password_hash LIKE '$2_$%'",
                &[],
            )
            .await
            .map_err(pg)?;
        let mut costs: Vec<u32> = rows
            .iter()
            .filter_map(|r| r.try_get::<_, String>(0).ok()?.parse().ok())
            .collect();
        costs.sort_unstable();
        costs.dedup();
        Ok(costs)
    }

    /// A user by id.
    async fn get_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE user_id = $1"))
            .await
            .map_err(pg)?;
        let row = client.query_opt(&stmt, &[&user_id]).await.map_err(pg)?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Every user of a realm, by username (else e-mail), ASCII case folded.
    async fn list_users(&self, realm: &str) -> Result<Vec<User>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM users WHERE realm = $1 \
                     ORDER BY lower(COALESCE(username, email) COLLATE \"C\") NULLS FIRST, user_id"
                ),
                &[&realm],
            )
            .await
            .map_err(pg)?;
        users_from_rows(&rows)
    }

    /// Remove a user; false when there was none.
    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM users WHERE user_id = $1", &[&user_id])
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    /// Block or unblock a user; false when there was none.
    async fn set_blocked(
        &self,
        user_id: &str,
        blocked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE users SET blocked = $2, updated_at = $3 WHERE user_id = $1",
                &[&user_id, &blocked, &now],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    /// Replace a password hash.
    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE users SET password_hash = $2, updated_at = $3 WHERE user_id = $1",
                &[&user_id, &hash, &now],
            )
            .await
            .map_err(pg)?;
        Ok(n > 0)
    }

    /// A successful login: `last_login`, `logins_count`, and a new hash when
    /// the old one was rehashed.
    async fn record_login(
        &self,
        user_id: &str,
        now: i64,
        new_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE users SET last_login = $2, logins_count = logins_count + 1, \
                 password_hash = COALESCE($3, password_hash) WHERE user_id = $1",
            )
            .await
            .map_err(pg)?;
        client
            .execute(&stmt, &[&user_id, &now, &new_hash])
            .await
            .map_err(pg)?;
        Ok(())
    }

    /// Replace a user's metadata as a login's scripts decided; false when
    /// there was no such user.
    async fn update_metadata(&self, update: &MetadataUpdate) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let found = write_metadata(&tx, update).await?;
        commit(tx).await?;
        Ok(found)
    }
}

/// PostgreSQL's text cannot hold a NUL character, so no stored name has one:
/// a login naming one matches nobody (as on SQLite), instead of failing the
/// query.
fn holds_nul(identifier: &str) -> bool {
    identifier.contains('\0')
}
