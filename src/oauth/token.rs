//! `POST /oauth/token`: the pipeline of docs/architecture.md, one small stage each.
//!
//! parse body → authenticate client and count the request per IP
//! (`AuthServer::authenticate_client`, `crate::protect`) → grant allowed? →
//! resolve realm → audience & scopes (cheap checks before any hashing) →
//! look up the user by its lookup key → identifier+IP rate, brute-force
//! block, suspicious-IP throttle (keyed by the account, or the name's lookup
//! key) → verify password (bounded pool; dummy hash for unknown users; a time
//! floor) → record success or failure → Rules then Actions (`scripts.rs`)
//! → MFA gate (`mfa_grant.rs`) → sign tokens → persist the session and
//! refresh token (`sessions`) → respond with `no-store`. The refresh grant
//! (`refresh.rs`) and the `mfa-*` grants (`mfa_grant.rs`) join at signing
//! rather than copying the pipeline.

use std::net::{IpAddr, SocketAddr};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::error::{OAuthError, WRONG_CREDENTIALS, no_store, stored};
use super::login::{LoginDecision, LoginSubject};
use super::request::{self, Params};
use super::{AuthServer, scopes, scripts};
use crate::config::{ApiConfig, ClientConfig};
use crate::extensibility::{Protocol, RequestFacts};
use crate::http::body::ResponseBody;
use crate::http::response::json;
use crate::identity::pool::PoolError;
use crate::protect::CounterKey;
use crate::store::User;
use crate::telemetry::metrics::TokenOutcome;
use crate::tokens::issue::{Grant, Issued};

/// `http://auth0.com/oauth/grant-type/password-realm`
pub const PASSWORD_REALM: &str = "http://auth0.com/oauth/grant-type/password-realm";

/// `Retry-After` when the hashing queue is full: places free up as each check
/// ends, so the client is asked back soon (the request rate limit bounds how
/// often it can retry).
const HASHING_RETRY_AFTER: u64 = 1;

/// The grants the endpoint knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantKind {
    Password,
    PasswordRealm,
    /// `refresh_token`
    Refresh,
    /// `http://auth0.com/oauth/grant-type/mfa-otp`, `-mfa-oob`, `-mfa-recovery-code`
    Mfa(super::mfa_grant::Factor),
}

impl GrantKind {
    fn parse(grant: &str) -> Option<GrantKind> {
        match grant {
            "password" => Some(GrantKind::Password),
            PASSWORD_REALM => Some(GrantKind::PasswordRealm),
            "refresh_token" => Some(GrantKind::Refresh),
            g => super::mfa_grant::Factor::parse(g).map(GrantKind::Mfa),
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
    /// After `mfa-recovery-code`: the code that replaces the one spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_code: Option<String>,
}

impl AuthServer {
    /// Answer `/oauth/token`.
    pub(super) async fn token(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let mut grant = None;
        let (mut resp, outcome) = match self.token_inner(req, peer, &mut grant).await {
            Ok(resp) => (resp, "success".to_string()),
            Err(e) => (e.clone().into_response(), e.to_string()),
        };
        // For `passgate_token_requests_total` (recorded in service.rs).
        resp.extensions_mut()
            .insert(TokenOutcome { grant, outcome });
        resp
    }

    async fn token_inner(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        grant_seen: &mut Option<String>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (parts, params) = request::read(req).await?;
        *grant_seen = params.get("grant_type").map(str::to_string);
        // Attack protection: the request rate here, blocks in the password
        // grant; both before any hashing.
        let (client, ip) = self.authenticate_client(peer, &parts.headers, &params)?;
        let grant = params.require("grant_type")?;
        let kind = GrantKind::parse(grant)
            .ok_or_else(|| OAuthError::UnsupportedGrantType(grant.to_string()))?;
        if !client.grant_types.iter().any(|g| g == grant) {
            return Err(OAuthError::UnauthorizedClient(grant.to_string()));
        }
        let request = scripts::request_facts(&parts.headers, &parts.uri, ip, &params);
        match kind {
            GrantKind::Password | GrantKind::PasswordRealm => {
                self.password_grant(kind, client, &params, ip, &request)
                    .await
            }
            GrantKind::Refresh => self.refresh_grant(client, &params, &request).await,
            GrantKind::Mfa(factor) => self.mfa_grant(factor, client, &params).await,
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
        ip: IpAddr,
        request: &RequestFacts,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let realm = self.realm_for(kind, params, client)?;
        let api = self.api_for(params)?;
        let granted = scopes::resolve(params.get("scope"), api)?;

        // Failures count under the account the name resolves to (all its
        // aliases share one counter), else under the name's lookup key.
        let user = self.find_login(realm, username).await?;
        let counter = CounterKey::for_login(user.as_ref(), username);
        let attempt = self.protect.before_login(&counter, ip).await?;
        let checked = self
            .hasher
            .verify(
                user.as_ref().and_then(|u| u.password_hash.clone()),
                password.to_string(),
            )
            .await
            .map_err(hashing_refused)?;
        let user = match user {
            Some(u) if checked.ok => u,
            _ => {
                tracing::info!(target: "passgate::auth", event = "login_failed", client = %client.id, realm, "wrong username or password");
                self.protect.login_failed(attempt).await?;
                return Err(OAuthError::InvalidGrant(WRONG_CREDENTIALS));
            }
        };
        self.protect.login_succeeded(attempt).await?;
        if user.blocked {
            tracing::info!(target: "passgate::auth", event = "login_blocked_user", client = %client.id, user_id = %user.user_id);
            return Err(OAuthError::Unauthorized("user is blocked".into()));
        }
        self.record_login(&user, checked.rehash).await?;
        let mut decision = LoginDecision::new(granted);
        let who = LoginSubject {
            user: &user,
            client,
            realm,
            api,
        };
        // Rules then Actions may change the decision, or deny (oauth/scripts.rs).
        self.run_scripts(who, Protocol::Password, request, &mut decision)
            .await?;
        // MFA gate: may keep the decision and answer mfa_required.
        self.mfa_gate(&who, &decision).await?;
        self.complete_login(who, decision).await
    }

    async fn find_login(&self, realm: &str, username: &str) -> Result<Option<User>, OAuthError> {
        stored("user lookup", self.store.find_login(realm, username)).await
    }

    async fn record_login(&self, user: &User, rehash: Option<String>) -> Result<(), OAuthError> {
        let now = self.clock.now();
        stored(
            "recording the login",
            self.store
                .record_login(&user.user_id, now, rehash.as_deref()),
        )
        .await
    }

    /// Sign a grant's tokens; a full signing queue is a 503, any other
    /// failure a 500 (the boot self-test makes it unlikely).
    pub(super) async fn issue(&self, grant: Grant<'_>) -> Result<Issued, OAuthError> {
        self.tokens.issue(grant).await.map_err(|e| {
            if e.is_busy() {
                tracing::warn!(error = %e, "token signing refused");
                return OAuthError::TemporarilyUnavailable {
                    retry_after: super::error::RETRY_AFTER_SECS,
                };
            }
            tracing::error!(error = %e, "token signing failed");
            OAuthError::internal()
        })
    }
}

/// The 200 answer: tokens, granted scope, `no-store`.
pub(super) fn token_response(
    issued: Issued,
    refresh_token: Option<String>,
    granted: &[String],
) -> Response<ResponseBody> {
    token_response_with(issued, refresh_token, granted, None)
}

/// [`token_response`] with a fresh recovery code (the `mfa-recovery-code` grant).
pub(super) fn token_response_with(
    issued: Issued,
    refresh_token: Option<String>,
    granted: &[String],
    recovery_code: Option<String>,
) -> Response<ResponseBody> {
    no_store(json(
        StatusCode::OK,
        &TokenResponse {
            access_token: issued.access_token,
            id_token: issued.id_token,
            refresh_token,
            scope: granted.join(" "),
            expires_in: issued.expires_in,
            token_type: "Bearer",
            recovery_code,
        },
    ))
}

/// A check the hashing pool did not run: a full queue asks the client to come
/// back (nothing was checked, so no failure counts); a stopped pool is ours.
fn hashing_refused(e: PoolError) -> OAuthError {
    match e {
        PoolError::Full(waiting) => {
            tracing::info!(target: "passgate::auth", event = "hashing_queue_full", waiting, "password check refused: the hashing queue is full");
            OAuthError::TemporarilyUnavailable {
                retry_after: HASHING_RETRY_AFTER,
            }
        }
        PoolError::Stopped => {
            tracing::error!(error = %e, "password check failed");
            OAuthError::internal()
        }
    }
}
