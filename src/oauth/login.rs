//! The end of a password login, after the password is verified: the seam the
//! scripts (Rules and Actions) and the MFA gate share.
//!
//! [`LoginDecision`] is what the login will grant: scopes, extra claims and
//! metadata to store. The scripts stage edits it; the MFA gate may keep it in
//! an MFA transaction and finish the login later, without running the
//! scripts again. [`AuthServer::complete_login`] signs, persists the session
//! (and what the decision says to store) and answers, for both.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use http::Response;

use super::AuthServer;
use super::error::OAuthError;
use super::token::token_response;
use crate::config::{ApiConfig, ClientConfig};
use crate::http::body::ResponseBody;
use crate::sessions::{NewSession, Sessions};
use crate::store::{MetadataUpdate, User};
use crate::tokens::issue::{Grant, Issued};

/// The `amr` value of a login that did a second factor.
pub const AMR_MFA: &str = "mfa";

/// The refusal of a login whose scripts demanded a second factor that
/// nothing can ask for.
pub const MFA_UNAVAILABLE: &str =
    "Multifactor authentication is required for this login and is not available.";

/// What one login grants, as decided between the password check and signing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoginDecision {
    /// The granted scopes (OpenID ones and `offline_access` included).
    pub scopes: Vec<String>,
    /// Extra access-token claims.
    pub access_claims: Map<String, Value>,
    /// Extra ID-token claims.
    pub id_claims: Map<String, Value>,
    /// The user's whole new `app_metadata`, stored when the login succeeds.
    pub app_metadata: Option<Value>,
    /// The user's whole new `user_metadata`, stored when the login succeeds.
    pub user_metadata: Option<Value>,
    /// How the user authenticated so far (`"pwd"`; the MFA gate adds
    /// `"mfa"`). Never set by a script.
    pub amr: Vec<String>,
    /// A second factor demanded for this login by a script (the provider it
    /// named, `"any"` when none).
    pub mfa: Option<String>,
}

impl LoginDecision {
    /// A login that grants `scopes` and nothing else.
    pub fn new(scopes: Vec<String>) -> LoginDecision {
        LoginDecision {
            scopes,
            amr: vec!["pwd".to_string()],
            ..LoginDecision::default()
        }
    }
}

/// Who logs in, where, and for what: fixed once the password is verified.
#[derive(Debug, Clone, Copy)]
pub struct LoginSubject<'a> {
    /// The verified user.
    pub user: &'a User,
    /// The client it logs in through.
    pub client: &'a ClientConfig,
    /// The realm (connection).
    pub realm: &'a str,
    /// The API the access token is for.
    pub api: &'a ApiConfig,
}

impl AuthServer {
    /// Persist a login's session with the metadata its scripts decided, in
    /// one transaction (durable before acknowledged).
    async fn persist_login_session(
        &self,
        s: NewSession,
        metadata: MetadataUpdate,
    ) -> Result<Option<String>, OAuthError> {
        super::error::stored(
            "persisting the session",
            self.sessions.persist_with(s, Some(&metadata)),
        )
        .await
    }

    /// Sign the tokens `decision` describes, persist the session (durable
    /// before acknowledged) and answer 200.
    pub(super) async fn complete_login(
        &self,
        who: LoginSubject<'_>,
        decision: LoginDecision,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (issued, refresh_token, scopes) = self.finish_login(who, decision).await?;
        Ok(token_response(issued, refresh_token, &scopes))
    }

    /// [`AuthServer::complete_login`] without the answer: the tokens, the
    /// refresh token and the granted scopes.
    pub(super) async fn finish_login(
        &self,
        who: LoginSubject<'_>,
        mut decision: LoginDecision,
    ) -> Result<(Issued, Option<String>, Vec<String>), OAuthError> {
        let LoginSubject {
            user,
            client,
            realm,
            api,
        } = who;
        // A refresh token needs offline_access asked for, allowed by the API, and the grant.
        let with_refresh = decision.scopes.iter().any(|s| s == "offline_access")
            && api.allow_offline_access
            && client.grant_types.iter().any(|g| g == "refresh_token");
        if !with_refresh {
            decision.scopes.retain(|s| s != "offline_access");
        }
        // A second factor a script demanded is never skipped: a login that
        // reaches here without it is refused (the MFA gate asks for it first;
        // this is the last line).
        if decision.mfa.is_some() && !decision.amr.iter().any(|m| m == AMR_MFA) {
            tracing::warn!(target: "passgate::auth", event = "mfa_unavailable", client = %client.id, user_id = %user.user_id, "a script demanded MFA and this login cannot do it: refused");
            return Err(OAuthError::AccessDenied(MFA_UNAVAILABLE.into()));
        }
        let metadata = MetadataUpdate {
            user_id: user.user_id.clone(),
            app_metadata: decision.app_metadata.take(),
            user_metadata: decision.user_metadata.take(),
            now: self.clock.now(),
        };
        // After a second factor the access token says so (the gateway's
        // step-up check reads it); the session keeps it for refreshes.
        if decision.amr.iter().any(|m| m == AMR_MFA) {
            decision
                .access_claims
                .insert("amr".into(), Value::from(vec![AMR_MFA]));
        }
        let sid = Sessions::new_sid();
        let issued = self
            .issue(Grant {
                user,
                client_id: &client.id,
                audience: &api.audience,
                lifetime: api.token_lifetime,
                scopes: &decision.scopes,
                gty: "password",
                sid: &sid,
                access_claims: decision.access_claims,
                id_claims: decision.id_claims,
            })
            .await?;
        let refresh_token = self
            .persist_login_session(
                NewSession {
                    sid: sid.clone(),
                    user_id: user.user_id.clone(),
                    client: client.clone(),
                    realm: realm.to_string(),
                    audience: api.audience.clone(),
                    scopes: decision.scopes.clone(),
                    access_expires_at: self.clock.now() + issued.expires_in as i64,
                    with_refresh,
                    amr: decision.amr.clone(),
                },
                metadata,
            )
            .await?;
        tracing::info!(target: "passgate::auth", event = "login", client = %client.id, realm, user_id = %user.user_id, sid = %sid, amr = %decision.amr.join(" "));
        Ok((issued, refresh_token, decision.scopes))
    }
}
