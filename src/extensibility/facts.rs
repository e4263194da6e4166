//! What scripts are told about a login: the user, client, connection and
//! request, in the shapes Auth0 gives them (snake_case, as `event.user` has
//! it; the Rules `context` is built from the same facts in `prelude.js`).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::User;

/// Which exchange runs the scripts (`context.protocol`, `event.transaction.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    /// Both password grants.
    #[serde(rename = "oauth2-password")]
    Password,
    /// The refresh-token exchange.
    #[serde(rename = "oauth2-refresh-token")]
    RefreshToken,
}

/// The request, as scripts see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestFacts {
    /// The client's IP (after `auth0-forwarded-for` from a trusted backend).
    pub ip: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// The `Host` the request was sent to.
    pub hostname: String,
    /// The request parameters, without any password or secret.
    pub body: BTreeMap<String, String>,
}

/// Parameters never shown to scripts.
pub const HIDDEN_PARAMS: [&str; 4] = ["password", "client_secret", "refresh_token", "otp"];

/// Everything one script chain starts from.
#[derive(Debug, Clone, Serialize)]
pub struct LoginFacts {
    /// `user` / `event.user`.
    pub user: Value,
    /// `event.client`.
    pub client: Value,
    /// `event.connection`.
    pub connection: Value,
    /// `event.request`.
    pub request: RequestFacts,
    /// The exchange.
    pub protocol: Protocol,
    /// The scopes the request asked for.
    pub requested_scopes: Vec<String>,
    /// The scopes the login would grant before any script.
    pub scopes: Vec<String>,
    /// `event.resource_server.identifier`.
    pub audience: String,
    /// `stats.loginsCount`.
    pub logins_count: i64,
    /// `event.authentication.methods`.
    pub methods: Vec<Value>,
}

/// Seconds since the epoch as Auth0 writes dates (`2024-05-01T10:00:00.000Z`).
pub fn iso_date(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// `user` / `event.user` for a stored user.
pub fn user_view(u: &User) -> Value {
    let nickname = u
        .username
        .clone()
        .or_else(|| {
            u.email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let local_id = u.user_id.strip_prefix("auth0|").unwrap_or(&u.user_id);
    json!({
        "user_id": u.user_id,
        "username": u.username,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.display_name(),
        "nickname": nickname,
        "app_metadata": u.app_metadata,
        "user_metadata": u.user_metadata,
        "created_at": iso_date(u.created_at),
        "updated_at": iso_date(u.updated_at),
        "last_login": u.last_login.map(iso_date),
        "logins_count": u.logins_count,
        "identities": [{
            "connection": u.realm,
            "provider": "auth0",
            "user_id": local_id,
            "isSocial": false,
        }],
    })
}

/// `event.client`.
pub fn client_view(id: &str, name: &str) -> Value {
    json!({ "client_id": id, "name": name, "metadata": {} })
}

/// `event.connection` for a realm (a database connection).
pub fn connection_view(realm: &str) -> Value {
    json!({ "name": realm, "strategy": "auth0" })
}

/// `event.authentication.methods` after a password check at `now`.
pub fn password_method(now: i64) -> Vec<Value> {
    vec![json!({ "name": "pwd", "timestamp": iso_date(now) })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_auth0_does() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_date(1_700_000_000), "2023-11-14T22:13:20.000Z");
    }
}
