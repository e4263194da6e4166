//! `POST /oauth/token`: the pipeline of design.md, one small stage each.
//!
//! parse body → authenticate client → grant allowed? → [throttle: attack
//! protection] → resolve realm → audience & scopes (cheap checks before any
//! hashing) → verify password (bounded pool; dummy hash for unknown users) →
//! record success → [rules] → [MFA gate] → sign tokens → [persist session &
//! refresh token] → respond with `no-store`. Bracketed stages arrive with
//! their own issues and plug in where marked; the refresh and MFA grants join
//! the pipeline further down rather than copying it.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::error::{OAuthError, WRONG_CREDENTIALS, no_store};
use super::request::{self, Params};
use super::{AuthServer, client_auth, scopes};
use crate::config::{ApiConfig, ClientConfig};
use crate::http::body::ResponseBody;
use crate::http::response::json;
use crate::store::User;
use crate::tokens::issue::Grant;

/// `http://auth0.com/oauth/grant-type/password-realm`
pub const PASSWORD_REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// The grants the endpoint knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantKind {
    Password,
    PasswordRealm,
    /// Known on the wire, served by a later stage (refresh, MFA).
    NotYetServed,
}

impl GrantKind {
    fn parse(grant: &str) -> Option<GrantKind> {
        match grant {
            "password" => Some(GrantKind::Password),
            PASSWORD_REALM => Some(GrantKind::PasswordRealm),
            g if crate::config::known_grant(g) => Some(GrantKind::NotYetServed),
            _ => None,
        }
    }
}

/// A successful token response.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
    expires_in: u64,
    token_type: &'static str,
}

impl AuthServer {
    /// Answer `/oauth/token`.
    pub(super) async fn token(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        match self.token_inner(req, peer).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        }
    }

    async fn token_inner(
        &self,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (parts, params) = request::read(req).await?;
        let (client, _auth) =
            client_auth::authenticate(&self.config.clients, &parts.headers, &params)?;
        let grant = params.require("grant_type")?;
        let kind = GrantKind::parse(grant)
            .ok_or_else(|| OAuthError::UnsupportedGrantType(grant.to_string()))?;
        if !client.grant_types.iter().any(|g| g == grant) {
            return Err(OAuthError::UnauthorizedClient(grant.to_string()));
        }
        // [attack protection: rate limit and blocks, before any hashing]
        match kind {
            GrantKind::Password | GrantKind::PasswordRealm => {
                self.password_grant(kind, client, &params).await
            }
            GrantKind::NotYetServed => Err(OAuthError::UnsupportedGrantType(grant.to_string())),
        }
    }

    /// The realm a password grant logs into.
    fn realm_for<'p>(
        &'p self,
        kind: GrantKind,
        params: &'p Params,
        client: &ClientConfig,
    ) -> Result<&'p str, OAuthError> {
        let default = self.issuer.default_realm.as_deref();
        let realm = match kind {
            // `password` ignores a `realm` parameter: the directory is the default one.
            GrantKind::Password => default.ok_or(OAuthError::ServerError(
                "Authorization server not configured with default connection.",
            ))?,
            _ => match params.get("realm").or(default) {
                Some(r) => r,
                None => return Err(OAuthError::InvalidRequest("missing realm parameter".into())),
            },
        };
        if !self.config.realms.iter().any(|r| r.name == realm) {
            return Err(OAuthError::InvalidRequest(
                "the connection was not found".into(),
            ));
        }
        if !client.realms.iter().any(|r| r == realm) {
            return Err(OAuthError::InvalidRequest(
                "the connection was disabled".into(),
            ));
        }
        Ok(realm)
    }

    /// The API a token is for: the `audience` parameter, else the default audience.
    fn api_for(&self, params: &Params) -> Result<&ApiConfig, OAuthError> {
        let audience = params
            .get("audience")
            .or(self.issuer.default_audience.as_deref())
            .ok_or_else(|| OAuthError::InvalidRequest("missing audience parameter".into()))?;
        self.config
            .apis
            .iter()
            .find(|a| a.audience == audience)
            .ok_or_else(|| OAuthError::AccessDenied(format!("Service not found: {audience}")))
    }

    async fn password_grant(
        &self,
        kind: GrantKind,
        client: &ClientConfig,
        params: &Params,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let realm = self.realm_for(kind, params, client)?;
        let api = self.api_for(params)?;
        let mut granted = scopes::resolve(params.get("scope"), api)?;

        let user = self.find_login(realm, username).await?;
        let checked = self
            .hasher
            .verify(
                user.as_ref().and_then(|u| u.password_hash.clone()),
                password.to_string(),
            )
            .await;
        let user = match user {
            Some(u) if checked.ok => u,
            _ => {
                tracing::info!(target: "passgate::auth", event = "login_failed", client = %client.id, realm, "wrong username or password");
                return Err(OAuthError::InvalidGrant(WRONG_CREDENTIALS));
            }
        };
        if user.blocked {
            tracing::info!(target: "passgate::auth", event = "login_blocked_user", client = %client.id, user_id = %user.user_id);
            return Err(OAuthError::Unauthorized("user is blocked".into()));
        }
        self.record_login(&user, checked.rehash).await?;
        // [rules: may change claims and scopes, or deny]
        // [MFA gate: may answer mfa_required]
        // Refresh tokens arrive with sessions; until then offline_access is not granted.
        granted.retain(|s| s != "offline_access");
        let sid = new_session_id();
        let issued = self
            .tokens
            .issue(Grant {
                user: &user,
                client_id: &client.id,
                audience: &api.audience,
                lifetime: api.token_lifetime,
                scopes: &granted,
                gty: "password",
                sid: &sid,
                access_claims: Default::default(),
                id_claims: Default::default(),
            })
            .map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                OAuthError::ServerError("internal error")
            })?;
        // [persist the session and refresh token before answering]
        tracing::info!(target: "passgate::auth", event = "login", client = %client.id, realm, user_id = %user.user_id);
        Ok(no_store(json(
            StatusCode::OK,
            &TokenResponse {
                access_token: issued.access_token,
                id_token: issued.id_token,
                refresh_token: None,
                scope: granted.join(" "),
                expires_in: issued.expires_in,
                token_type: "Bearer",
            },
        )))
    }

    async fn find_login(&self, realm: &str, username: &str) -> Result<Option<User>, OAuthError> {
        let store = Arc::clone(&self.store);
        let (realm, username) = (realm.to_string(), username.to_string());
        tokio::task::spawn_blocking(move || store.find_login(&realm, &username))
            .await
            .map_err(|_| OAuthError::ServerError("internal error"))?
            .map_err(|e| {
                tracing::error!(error = %e, "user lookup failed");
                OAuthError::ServerError("internal error")
            })
    }

    async fn record_login(&self, user: &User, rehash: Option<String>) -> Result<(), OAuthError> {
        let store = Arc::clone(&self.store);
        let now = self.clock.now();
        let id = user.user_id.clone();
        tokio::task::spawn_blocking(move || store.record_login(&id, now, rehash.as_deref()))
            .await
            .map_err(|_| OAuthError::ServerError("internal error"))?
            .map_err(|e| {
                tracing::error!(error = %e, "recording the login failed");
                OAuthError::ServerError("internal error")
            })
    }
}

/// A login session id: 128 random bits, hex.
fn new_session_id() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}
