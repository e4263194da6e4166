//! Migration 4 (SQLite): login names matched by their lookup key.
//!
//! Up to schema 3 the store made usernames and e-mails unique with
//! `COLLATE NOCASE`, which folds ASCII only (`JÜRGEN` and `Jürgen` were two
//! accounts), and counted brute-force failures under the lowercased string
//! typed. This step:
//!
//! 1. adds `username_key` / `email_key` (see [`super::login_key`]) and fills
//!    them;
//! 2. finds rows whose keys collide within a realm (also a username against
//!    another user's e-mail), marks them `login_clash = 1`, and names them in
//!    a warning: they keep working by exact match until an administrator
//!    removes or re-creates one side (`passgate users remove`);
//! 3. replaces the NOCASE unique indexes with unique indexes on the keys
//!    (colliding rows exempt; new rows are checked against them on insert);
//! 4. moves each brute-force streak to the account its old identifier
//!    resolves to (or to the name's key), so a block in force stays in force.

use std::collections::BTreeMap;

use rusqlite::{Transaction, params};

use super::User;
use super::login_key::{login_key, resolve_per_realm};
use super::protect::{counter_for_account, counter_for_name};
use super::sqlite_users::{COLUMNS, user_from_row};

const COLUMNS_AND_INDEXES: &str = "
    ALTER TABLE users ADD COLUMN username_key TEXT;
    ALTER TABLE users ADD COLUMN email_key TEXT;
    ALTER TABLE users ADD COLUMN login_clash INTEGER NOT NULL DEFAULT 0;
    DROP INDEX users_realm_username;
    DROP INDEX users_realm_email;";

const KEY_INDEXES: &str = "
    CREATE UNIQUE INDEX users_realm_username_key ON users(realm, username_key)
        WHERE username_key IS NOT NULL AND login_clash = 0;
    CREATE UNIQUE INDEX users_realm_email_key ON users(realm, email_key)
        WHERE email_key IS NOT NULL AND login_clash = 0;
    CREATE INDEX users_username_key ON users(username_key, realm);
    CREATE INDEX users_email_key ON users(email_key, realm);";

/// Apply migration 4 inside `tx`.
pub(super) fn up(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(COLUMNS_AND_INDEXES)?;
    let users: Vec<User> = {
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM users"))?;
        let rows = stmt.query_map([], user_from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // (realm, key) → the users with a login name of that key.
    let mut by_key: BTreeMap<(&str, String), Vec<&User>> = BTreeMap::new();
    for u in &users {
        let (uk, ek) = (
            u.username.as_deref().map(login_key),
            u.email.as_deref().map(login_key),
        );
        tx.execute(
            "UPDATE users SET username_key = ?2, email_key = ?3 WHERE user_id = ?1",
            params![u.user_id, uk, ek],
        )?;
        let mut keys: Vec<String> = uk.into_iter().chain(ek).collect();
        keys.dedup();
        for key in keys {
            by_key.entry((&u.realm, key)).or_default().push(u);
        }
    }
    for ((realm, key), group) in by_key.iter().filter(|(_, g)| g.len() > 1) {
        for u in group {
            tx.execute(
                "UPDATE users SET login_clash = 1 WHERE user_id = ?1",
                params![u.user_id],
            )?;
        }
        let names: Vec<String> = group
            .iter()
            .map(|u| {
                format!(
                    "{} (username {:?}, e-mail {:?})",
                    u.user_id,
                    u.username.as_deref().unwrap_or("-"),
                    u.email.as_deref().unwrap_or("-")
                )
            })
            .collect();
        tracing::warn!(
            target: "passgate::store",
            event = "login_name_collision",
            realm,
            key = %key,
            users = %names.join(", "),
            "these users' login names are the same after Unicode case folding; each logs in only by its exact name until an administrator removes one (passgate users remove)"
        );
    }
    tx.execute_batch(KEY_INDEXES)?;
    move_failure_streaks(tx, &users)
}

/// Re-key each `login_failures` row from the lowercased name typed to the
/// account (or name key) it now counts under; merged rows keep the larger
/// count and the later failure.
fn move_failure_streaks(tx: &Transaction<'_>, users: &[User]) -> rusqlite::Result<()> {
    let rows: Vec<(String, String, i64, i64)> = {
        let mut stmt =
            tx.prepare("SELECT identifier, ip, failures, last_failure FROM login_failures")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute("DELETE FROM login_failures", [])?;
    for (identifier, ip, failures, last_failure) in rows {
        let key = login_key(&identifier);
        let mut candidates: Vec<User> = users
            .iter()
            .filter(|u| {
                [&u.username, &u.email]
                    .into_iter()
                    .flatten()
                    .any(|n| login_key(n) == key)
            })
            .cloned()
            .collect();
        candidates.sort_by(|a, b| a.realm.cmp(&b.realm));
        let accounts = resolve_per_realm(candidates, &identifier);
        let counters: Vec<String> = match accounts.is_empty() {
            true => vec![counter_for_name(&identifier)],
            false => accounts
                .iter()
                .map(|u| counter_for_account(&u.user_id))
                .collect(),
        };
        for counter in counters {
            tx.execute(
                "INSERT INTO login_failures (identifier, ip, failures, last_failure) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(identifier, ip) DO UPDATE SET
                   failures = MAX(failures, excluded.failures),
                   last_failure = MAX(last_failure, excluded.last_failure)",
                params![counter, ip, failures, last_failure],
            )?;
        }
    }
    Ok(())
}
