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
//!
//! RS256 signatures (about 0.5 ms each) run on the bounded signing pool
//! (`pool.rs`), off the request workers; ES256 and EdDSA signatures cost tens
//! of microseconds and are made inline.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use jsonwebtoken::Algorithm;

use super::keys::SigningKey;
use super::pool::{PoolError, SignPool};
use super::ring::LiveRing;
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

/// Signs tokens with the issuer's signing key of the moment.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    url: String,
    keys: LiveRing,
    clock: SharedClock,
    pool: SignPool,
}

/// Why tokens could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A broken key (the boot self-test makes this unlikely).
    #[error("the signing key {kid} failed")]
    Key {
        /// The key's `kid`.
        kid: String,
    },
    /// The signing pool refused or lost the job.
    #[error("signing did not run")]
    Pool(#[source] PoolError),
}

impl SignError {
    /// The signing queue is full: the client may try again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(self, SignError::Pool(PoolError::Busy))
    }
}

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
    /// An issuer `url` (with its trailing slash) signing with the key of
    /// `keys` whose time has come (`ring.rs`); RS256 signatures run on `pool`.
    pub fn new(url: String, keys: LiveRing, clock: SharedClock, pool: SignPool) -> Self {
        Self {
            url,
            keys,
            clock,
            pool,
        }
    }

    /// The `iss` value.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `aud` that lets an access token call `/userinfo`.
    pub fn userinfo_audience(&self) -> String {
        format!("{}userinfo", self.url)
    }

    /// Sign the access token and, if any, the ID token with the key that
    /// signs at `now`: on the signing pool for RS256, inline for the cheap
    /// algorithms.
    async fn sign(
        &self,
        now: i64,
        access: Value,
        id: Option<Value>,
    ) -> Result<(String, Option<String>), SignError> {
        let key = Arc::clone(self.keys.snapshot().signer(now));
        match key.alg {
            Algorithm::RS256 => self
                .pool
                .run(move || sign_both(&key, &access, id.as_ref()))
                .await
                .map_err(SignError::Pool)?,
            _ => sign_both(&key, &access, id.as_ref()),
        }
    }

    /// Sign the tokens of a grant.
    pub async fn issue(&self, g: Grant<'_>) -> Result<Issued, SignError> {
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
        let id = if openid {
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
            Some(Value::Object(id))
        } else {
            None
        };
        let (access_token, id_token) = self.sign(now, Value::Object(access), id).await?;
        Ok(Issued {
            access_token,
            id_token,
            expires_in: lifetime,
        })
    }
}

fn sign_both(
    key: &SigningKey,
    access: &Value,
    id: Option<&Value>,
) -> Result<(String, Option<String>), SignError> {
    let sign = |typ: &str, claims: &Value| {
        key.sign_jwt(typ, claims).ok_or_else(|| SignError::Key {
            kid: key.kid.clone(),
        })
    };
    let access_token = sign(ACCESS_TOKEN_TYP, access)?;
    let id_token = id.map(|id| sign(ID_TOKEN_TYP, id)).transpose()?;
    Ok((access_token, id_token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::ring::KeyRing;

    fn user() -> User {
        User {
            user_id: "auth0|u".into(),
            realm: "db".into(),
            username: Some("u".into()),
            email: Some("u@example.com".into()),
            email_verified: true,
            name: None,
            password_hash: None,
            blocked: false,
            app_metadata: Value::Null,
            user_metadata: Value::Null,
            created_at: 0,
            updated_at: 0,
            last_login: None,
            logins_count: 0,
        }
    }

    fn issuer(alg: Algorithm, pool: &SignPool) -> (TokenIssuer, tempfile::TempDir) {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ring = KeyRing::load_or_generate(dir.path(), alg).unwrap_or_else(|e| panic!("{e:#}"));
        let clock = crate::clock::system();
        let issuer = TokenIssuer::new(
            "https://i/".into(),
            LiveRing::new(ring),
            clock,
            pool.clone(),
        );
        (issuer, dir)
    }

    async fn issue(issuer: &TokenIssuer) -> Result<Issued, SignError> {
        let (user, scopes) = (user(), vec!["openid".to_string()]);
        issuer
            .issue(Grant {
                user: &user,
                client_id: "c",
                audience: "https://api/",
                lifetime: Duration::from_secs(60),
                scopes: &scopes,
                gty: "password",
                sid: "s",
                access_claims: Map::new(),
                id_claims: Map::new(),
            })
            .await
    }

    /// RS256 goes through the signing pool (a busy pool refuses it), the
    /// cheap algorithms sign inline (a busy pool does not matter).
    #[tokio::test]
    async fn rs256_signs_on_the_pool_and_the_cheap_algorithms_inline() {
        // One thread, one queue slot: while both are held, the pool refuses.
        let pool = SignPool::new(1, 1).unwrap_or_else(|e| panic!("{e}"));
        let (rs, _d1) = issuer(Algorithm::RS256, &pool);
        let (es, _d2) = issuer(Algorithm::ES256, &pool);
        let (ed, _d3) = issuer(Algorithm::EdDSA, &pool);
        let issued = issue(&rs).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(issued.id_token.is_some());

        let mut holds = Vec::new();
        let mut held = Vec::new();
        for _ in 0..2 {
            let (hold, release) = std::sync::mpsc::channel::<()>();
            holds.push(hold);
            let pool = pool.clone();
            held.push(tokio::spawn(async move {
                pool.run(move || release.recv().is_ok()).await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = issue(&rs).await;
        assert!(
            refused.as_ref().is_err_and(SignError::is_busy),
            "{refused:?}"
        );
        assert!(issue(&es).await.is_ok(), "ES256 inline");
        assert!(issue(&ed).await.is_ok(), "EdDSA inline");
        for (hold, held) in holds.into_iter().zip(held) {
            let _ = hold.send(());
            assert_eq!(held.await.ok(), Some(Ok(true)));
        }
    }

    /// Measures (no assert on time) one access+ID token signature per
    /// algorithm: `cargo test --release --lib sign_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn sign_cost() {
        crate::tls::install_crypto_providers();
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let ring =
                KeyRing::load_or_generate(dir.path(), alg).unwrap_or_else(|e| panic!("{e:#}"));
            let key = ring.current();
            let claims =
                serde_json::json!({"iss": "https://i/", "sub": "auth0|u", "scope": "openid"});
            let n = 200;
            let t = cpu_time::ThreadTime::now();
            for _ in 0..n {
                let _ = sign_both(key, &claims, Some(&claims));
            }
            println!("{alg:?}: {:?} per access+ID pair", t.elapsed() / n);
        }
    }
}
