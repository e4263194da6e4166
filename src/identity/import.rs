//! Auth0 bulk-import files: a JSON array of users with `email`, `username`,
//! `email_verified`, `name`, `blocked`, `app_metadata`, `user_metadata`,
//! `user_id` (kept, so data keyed by `sub` still matches) and
//! `custom_password_hash` (`{"algorithm": "bcrypt", "hash": {"value": "$2b$..."}}`).
//! bcrypt hashes are stored as they are and replaced by argon2id at the first
//! successful login. A bad record is reported with its index and skipped.

use serde::Deserialize;
use serde_json::{Value, json};

use super::users::check_login_names;
use crate::store::{Store, StoreError, User, new_user_id};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    email: Option<String>,
    email_verified: Option<bool>,
    username: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    blocked: Option<bool>,
    user_id: Option<String>,
    app_metadata: Option<Value>,
    user_metadata: Option<Value>,
    custom_password_hash: Option<PasswordHash>,
}

#[derive(Deserialize)]
struct PasswordHash {
    algorithm: String,
    hash: HashValue,
}

#[derive(Deserialize)]
struct HashValue {
    value: String,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Users created.
    pub imported: usize,
    /// `(index in the file, reason)` of every record skipped.
    pub skipped: Vec<(usize, String)>,
}

/// Parse the file's text into its records (as raw JSON values, one per user).
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err("an Auth0 import file is a JSON array of users".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Turn one record into a user of `realm`.
pub fn to_user(record: Value, realm: &str, now: i64) -> Result<User, String> {
    let r: Record = serde_json::from_value(record).map_err(|e| e.to_string())?;
    if r.email.is_none() && r.username.is_none() {
        return Err("needs an email or a username".into());
    }
    check_login_names(r.username.as_deref(), r.email.as_deref())?;
    let password_hash = match r.custom_password_hash {
        None => None,
        Some(h) if h.algorithm == "bcrypt" => {
            let v = h.hash.value;
            if !(v.starts_with("$2a$") || v.starts_with("$2b$") || v.starts_with("$2y$"))
                || v.len() != 60
            {
                return Err("custom_password_hash.hash.value is not a bcrypt hash".into());
            }
            Some(v)
        }
        Some(h) => {
            return Err(format!(
                "custom_password_hash.algorithm \"{}\" is not supported (bcrypt is)",
                h.algorithm
            ));
        }
    };
    let user_id = match r.user_id {
        Some(id) if id.is_empty() => return Err("user_id is empty".into()),
        Some(id) if id.contains('|') => id,
        Some(id) => format!("auth0|{id}"),
        None => new_user_id(),
    };
    let object = |v: Option<Value>, key: &str| match v {
        None => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(format!("{key} must be an object")),
    };
    let mut user_metadata = object(r.user_metadata, "user_metadata")?;
    if let Value::Object(m) = &mut user_metadata {
        for (k, v) in [
            ("given_name", r.given_name),
            ("family_name", r.family_name),
            ("nickname", r.nickname),
            ("picture", r.picture),
        ] {
            if let Some(v) = v {
                m.entry(k).or_insert(Value::String(v));
            }
        }
    }
    Ok(User {
        user_id,
        realm: realm.to_string(),
        username: r.username,
        email: r.email,
        email_verified: r.email_verified.unwrap_or(false),
        name: r.name,
        password_hash,
        blocked: r.blocked.unwrap_or(false),
        app_metadata: object(r.app_metadata, "app_metadata")?,
        user_metadata,
        created_at: now,
        updated_at: now,
        last_login: None,
        logins_count: 0,
    })
}

/// Import every record into `realm`; `progress` is called after each record.
pub async fn import(
    store: &dyn Store,
    realm: &str,
    records: Vec<Value>,
    now: i64,
    mut progress: impl FnMut(usize),
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for (i, record) in records.into_iter().enumerate() {
        match to_user(record, realm, now) {
            Ok(user) => match store.create_user(&user).await {
                Ok(()) => report.imported += 1,
                Err(StoreError::Conflict(why)) => report
                    .skipped
                    .push((i, format!("already in the realm: {why}"))),
                Err(e) => return Err(e),
            },
            Err(why) => report.skipped.push((i, why)),
        }
        progress(i + 1);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn good_records_import_and_bad_ones_are_named() {
        let hash = "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        let text = format!(
            r#"[
              {{"email": "a@example.com", "email_verified": true, "user_id": "5f1", "custom_password_hash": {{"algorithm": "bcrypt", "hash": {{"value": "{hash}"}}}}, "app_metadata": {{"plan": "gold"}}}},
              {{"name": "no login name"}},
              {{"email": "b@example.com", "custom_password_hash": {{"algorithm": "md5", "hash": {{"value": "x"}}}}}},
              {{"email": "a@example.com"}},
              {{"username": "carol", "user_id": "google-oauth2|9"}}
            ]"#
        );
        let store = SqliteStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let records = parse(&text).unwrap_or_default();
        let mut seen = 0;
        let report = import(&store, "db", records, 7, |n| seen = n)
            .await
            .unwrap_or_default();
        assert_eq!(seen, 5);
        assert_eq!(report.imported, 2);
        let skipped: Vec<usize> = report.skipped.iter().map(|(i, _)| *i).collect();
        assert_eq!(skipped, vec![1, 2, 3]);
        let a = store
            .get_user("auth0|5f1")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("a missing"));
        assert_eq!(a.password_hash.as_deref(), Some(hash));
        assert!(a.email_verified);
        assert_eq!(a.app_metadata["plan"], "gold");
        // Names with control characters (PostgreSQL cannot store a NUL) are refused.
        for record in [
            serde_json::json!({"username": "car\u{0}ol"}),
            serde_json::json!({"username": "car\nol"}),
            serde_json::json!({"email": "d\u{0}@example.com"}),
        ] {
            let why = to_user(record.clone(), "db", 7).err();
            assert!(why.is_some(), "{record}");
        }
        assert!(
            store
                .get_user("google-oauth2|9")
                .await
                .ok()
                .flatten()
                .is_some()
        );
    }

    #[test]
    fn not_an_array() {
        assert!(parse("{}").is_err());
        assert!(parse("nope").is_err());
    }
}
