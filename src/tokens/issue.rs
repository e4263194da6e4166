//! Signing access tokens and ID tokens (docs/architecture.md, "Wire contract, in short").
//!
//! Access token: `iss`, `sub`, `aud` (a string; an array that adds
//! `<issuer>userinfo` when `openid` is granted), `iat`, `exp`, `azp`,
//! `scope`, `gty`, `sid`, plus claims rules add. ID token (only with
//! `openid`): `iss`, `sub`, `aud` = client id, `iat`, `exp`, `azp`, `sid`, and
//! the profile and e-mail claims the scopes allow. Header: `alg`, `kid` of
//! the signing key, and `typ`: `at+jwt` for access tokens (RFC 9068), `JWT`
//! for ID tokens, so the gate can tell them apart (an ID token is never an
//! access token, whatever its `aud`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::keys::KeyRing;
use crate::clock::SharedClock;
use crate::store::User;

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The `typ` header of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// How long ID tokens live (Auth0's default).
pub const ID_TOKEN_LIFETIME: i64 = 36_000;

/// What to put in the tokens of one grant.
#[derive(Debug)]
pub struct Grant<'a> {
    /// The user.
    pub user: &'a User,
    /// `azp`, and the ID token's `aud`.
    pub client_id: &'a str,
    /// The API audience.
    pub audience: &'a str,
    /// Access-token lifetime.
    pub lifetime: Duration,
    /// Every granted scope, OpenID ones included.
    pub scopes: &'a [String],
    /// `gty`: `password` or `refresh_token`.
    pub gty: &'a str,
    /// The login session.
    pub sid: &'a str,
    /// Extra access-token claims (from rules).
    pub access_claims: Map<String, Value>,
    /// Extra ID-token claims (from rules).
    pub id_claims: Map<String, Value>,
}

/// Signed tokens.
#[derive(Debug)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// The ID token, with `openid`.
    pub id_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Signs tokens with the issuer's current key.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    url: String,
    keys: Arc<KeyRing>,
    clock: SharedClock,
}

/// Signing failed (a broken key; the boot self-test makes this unlikely).
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(String);

/// The `nickname` Auth0 derives: the username, else the e-mail's local part.
pub fn nickname(user: &User) -> Option<String> {
    user.username.clone().or_else(|| {
        user.email
            .as_deref()
            .map(|e| e.split('@').next().unwrap_or(e).to_string())
    })
}

/// RFC 3339 time of a Unix second, as Auth0 writes `updated_at`.
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The profile claims of `user` that `scopes` allow (for ID tokens and `/userinfo`).
pub fn profile_claims(user: &User, scopes: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        m.insert("name".into(), user.display_name().into());
        if let Some(n) = nickname(user) {
            m.insert("nickname".into(), n.into());
        }
        m.insert("updated_at".into(), rfc3339(user.updated_at).into());
    }
    if has("email")
        && let Some(e) = &user.email
    {
        m.insert("email".into(), e.clone().into());
        m.insert("email_verified".into(), user.email_verified.into());
    }
    m
}

impl TokenIssuer {
    /// An issuer `url` (with its trailing slash) signing with `keys`.
    pub fn new(url: String, keys: Arc<KeyRing>, clock: SharedClock) -> Self {
        Self { url, keys, clock }
    }

    /// The `iss` value.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `aud` that lets an access token call `/userinfo`.
    pub fn userinfo_audience(&self) -> String {
        format!("{}userinfo", self.url)
    }

    fn sign(&self, typ: &str, claims: &Value) -> Result<String, SignError> {
        let key = self.keys.current();
        key.sign_jwt(typ, claims)
            .ok_or_else(|| SignError(format!("the signing key {} failed", key.kid)))
    }

    /// Sign the tokens of a grant.
    pub fn issue(&self, g: Grant<'_>) -> Result<Issued, SignError> {
        let now = self.clock.now();
        let lifetime = g.lifetime.as_secs();
        let openid = g.scopes.iter().any(|s| s == "openid");
        let aud = if openid {
            json!([g.audience, self.userinfo_audience()])
        } else {
            json!(g.audience)
        };
        let mut access = Map::new();
        // Rule claims first, so the registered claims always win.
        access.extend(g.access_claims);
        for (k, v) in [
            ("iss", json!(self.url)),
            ("sub", json!(g.user.user_id)),
            ("aud", aud),
            ("iat", json!(now)),
            ("exp", json!(now + lifetime as i64)),
            ("azp", json!(g.client_id)),
            ("scope", json!(g.scopes.join(" "))),
            ("gty", json!(g.gty)),
            ("sid", json!(g.sid)),
        ] {
            access.insert(k.into(), v);
        }
        let access_token = self.sign(ACCESS_TOKEN_TYP, &Value::Object(access))?;

        let id_token = if openid {
            let mut id = Map::new();
            id.extend(g.id_claims);
            id.extend(profile_claims(g.user, g.scopes));
            for (k, v) in [
                ("iss", json!(self.url)),
                ("sub", json!(g.user.user_id)),
                ("aud", json!(g.client_id)),
                ("iat", json!(now)),
                ("exp", json!(now + ID_TOKEN_LIFETIME)),
                ("azp", json!(g.client_id)),
                ("sid", json!(g.sid)),
            ] {
                id.insert(k.into(), v);
            }
            Some(self.sign(ID_TOKEN_TYP, &Value::Object(id))?)
        } else {
            None
        };
        Ok(Issued {
            access_token,
            id_token,
            expires_in: lifetime,
        })
    }
}
