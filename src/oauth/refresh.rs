//! `grant_type=refresh_token`: joins the token pipeline after client
//! authentication. The session behind the token supplies the user, audience
//! and scopes; `scope` may narrow them, never widen. A new access token (and
//! an ID token when the session had `openid`) carries the same `sid`.

use std::sync::Arc;

use http::Response;

use super::AuthServer;
use super::error::{OAuthError, stored};
use super::login::{LoginDecision, LoginSubject};
use super::request::Params;
use super::token::token_response;
use crate::config::ClientConfig;
use crate::extensibility::{Protocol, RequestFacts};
use crate::http::body::ResponseBody;
use crate::sessions::{ExchangeError, hash_token};
use crate::store::MetadataUpdate;
use crate::tokens::issue::Grant;

/// `Unknown or invalid refresh token.`
pub const INVALID_REFRESH: &str = "Unknown or invalid refresh token.";

impl AuthServer {
    pub(super) async fn refresh_grant(
        &self,
        client: &ClientConfig,
        params: &Params,
        request: &RequestFacts,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let token = params.require("refresh_token")?.to_string();
        let invalid = OAuthError::InvalidGrant(INVALID_REFRESH);

        // Read first, decide scope and user, and only then rotate: a refused
        // request must not retire the token it presented.
        let sessions = Arc::clone(&self.sessions);
        let store = Arc::clone(&self.store);
        let hash = hash_token(&token);
        let found = stored("the refresh-token lookup", async {
            let Some((record, session)) = sessions.store().find_refresh(&hash).await? else {
                return Ok::<_, crate::store::StoreError>(None);
            };
            let user = store.get_user(&session.user_id).await?;
            Ok(Some((record, session, user)))
        })
        .await?;
        let Some((record, session, user)) = found else {
            return Err(invalid);
        };
        if record.client_id != client.id {
            return Err(invalid);
        }
        let Some(user) = user.filter(|u| !u.blocked) else {
            return Err(invalid);
        };
        let Some(api) = self
            .config
            .apis
            .iter()
            .find(|a| a.audience == session.audience)
        else {
            return Err(invalid);
        };
        let held: Vec<String> = session
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let granted = match params.get("scope") {
            None => held,
            Some(asked) => {
                let asked: Vec<String> = asked
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(extra) = asked.iter().find(|s| !held.contains(s)) {
                    return Err(OAuthError::InvalidScope(format!(
                        "the scope \"{extra}\" was not granted to this refresh token"
                    )));
                }
                asked
            }
        };

        // Rules and Actions run again (protocol oauth2-refresh-token), before
        // the rotation: a refused refresh does not retire the token.
        let mut decision = LoginDecision::new(granted);
        let who = LoginSubject {
            user: &user,
            client,
            realm: &session.realm,
            api,
        };
        self.run_scripts(who, Protocol::RefreshToken, request, &mut decision)
            .await?;
        let granted = std::mem::take(&mut decision.scopes);

        let access_expires_at = self.clock.now() + api.token_lifetime.as_secs() as i64;
        // What the scripts wrote is stored in the exchange's transaction: a
        // failed write leaves the token as it was.
        let metadata = MetadataUpdate {
            user_id: user.user_id.clone(),
            app_metadata: decision.app_metadata.take(),
            user_metadata: decision.user_metadata.take(),
            now: self.clock.now(),
        };
        let exchanged = stored("the refresh exchange", async {
            match self
                .sessions
                .exchange_storing(client, &token, access_expires_at, &metadata)
                .await
            {
                Err(ExchangeError::Store(e)) => Err(e),
                answer => Ok(answer),
            }
        })
        .await?;
        let exchanged = match exchanged {
            Ok(x) => x,
            Err(why) => {
                tracing::info!(target: "passgate::auth", event = "refresh_refused", client = %client.id, reason = ?why);
                return Err(invalid);
            }
        };
        let session = &exchanged.session;
        // A session that did MFA keeps saying so; one made without it stays
        // without it (docs/mfa.md: a tightened policy does not end sessions).
        if session.amr.split(' ').any(|m| m == super::login::AMR_MFA) {
            decision
                .access_claims
                .insert("amr".into(), vec![super::login::AMR_MFA].into());
        }
        let issued = self
            .issue(Grant {
                user: &user,
                client_id: &client.id,
                audience: &api.audience,
                lifetime: api.token_lifetime,
                scopes: &granted,
                gty: "refresh_token",
                sid: &session.sid,
                access_claims: decision.access_claims,
                id_claims: decision.id_claims,
            })
            .await?;
        tracing::info!(target: "passgate::auth", event = "refresh", client = %client.id, sid = %session.sid, rotated = exchanged.refresh_token.is_some());
        Ok(token_response(issued, exchanged.refresh_token, &granted))
    }
}
