//! The Rules-then-Actions stage of the token pipeline (docs/extensibility.md):
//! after the password check (before the MFA gate), and on refresh before the
//! rotation, so a refused refresh does not retire its token.
//!
//! The engine is `crate::extensibility`; this stage tells it about the login,
//! applies its verdict to the [`LoginDecision`] and maps refusals to the wire.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{HOST, USER_AGENT};

use super::AuthServer;
use super::error::{OAuthError, RETRY_AFTER_SECS};
use super::login::{LoginDecision, LoginSubject};
use super::request::Params;
use crate::extensibility::facts::{self, HIDDEN_PARAMS};
use crate::extensibility::{LoginFacts, Protocol, Refusal, RequestFacts, ScriptError, Verdict};

/// The request as scripts see it: the client's IP, `User-Agent`, `Host`, and
/// the parameters without any password or secret.
pub(super) fn request_facts(
    headers: &HeaderMap,
    uri: &http::Uri,
    ip: IpAddr,
    params: &Params,
) -> RequestFacts {
    let text =
        |v: Option<&http::HeaderValue>| v.and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let host = match headers.get(HOST) {
        Some(h) => text(Some(h)),
        None => uri.authority().map(|a| a.to_string()).unwrap_or_default(),
    };
    let hostname = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host.as_str(), |(h, _)| h)
        .to_string();
    RequestFacts {
        ip: ip.to_string(),
        user_agent: text(headers.get(USER_AGENT)),
        hostname,
        body: params
            .iter()
            .filter(|(k, _)| !HIDDEN_PARAMS.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

impl AuthServer {
    /// Run the configured rules, then actions, on a login and apply what they
    /// decided to `decision`; a refusal is the login's answer. Without
    /// scripts the decision is left as it is.
    pub(super) async fn run_scripts(
        &self,
        who: LoginSubject<'_>,
        protocol: Protocol,
        request: &RequestFacts,
        decision: &mut LoginDecision,
    ) -> Result<(), OAuthError> {
        let Some(scripts) = &self.scripts else {
            return Ok(());
        };
        let facts = LoginFacts {
            user: facts::user_view(who.user),
            client: facts::client_view(&who.client.id, &who.client.name),
            connection: facts::connection_view(who.realm),
            request: request.clone(),
            protocol,
            requested_scopes: request
                .body
                .get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            scopes: decision.scopes.clone(),
            audience: who.api.audience.clone(),
            logins_count: who.user.logins_count,
            methods: facts::password_method(self.clock.now()),
        };
        let (client, user_id) = (&who.client.id, &who.user.user_id);
        let changes = match scripts.run(&facts, &who.api.scopes).await {
            Ok(Verdict::Continue(c)) => c,
            Ok(Verdict::Refused(refusal)) => {
                tracing::info!(target: "passgate::auth", event = "scripts_refused", client = %client, user_id = %user_id, refusal = ?refusal_kind(&refusal));
                return Err(match refusal {
                    Refusal::Unauthorized(m) => OAuthError::Unauthorized(m),
                    Refusal::AccessDenied(m) => OAuthError::AccessDenied(m),
                    Refusal::Redirect => OAuthError::InteractionRequired,
                });
            }
            Err(ScriptError::Busy) => {
                tracing::warn!(target: "passgate::auth", event = "scripts_queue_full", client = %client, "login refused: the script queue is full");
                return Err(OAuthError::TemporarilyUnavailable {
                    retry_after: RETRY_AFTER_SECS,
                });
            }
            Err(e) => {
                tracing::error!(target: "passgate::scripts", client = %client, user_id = %user_id, error = %e, "the login's scripts failed");
                return Err(OAuthError::internal());
            }
        };
        for warning in &changes.warnings {
            tracing::warn!(target: "passgate::scripts", client = %client, user_id = %user_id, "{warning}");
        }
        for line in &changes.logs {
            tracing::debug!(target: "passgate::scripts", client = %client, user_id = %user_id, "console: {line}");
        }
        decision.scopes = changes.scopes;
        decision.access_claims.extend(changes.access_claims);
        decision.id_claims.extend(changes.id_claims);
        if changes.app_metadata.is_some() {
            decision.app_metadata = changes.app_metadata;
        }
        if changes.user_metadata.is_some() {
            decision.user_metadata = changes.user_metadata;
        }
        match (protocol, changes.mfa) {
            (Protocol::Password, Some(provider)) => decision.mfa = Some(provider),
            (Protocol::RefreshToken, Some(provider)) => {
                tracing::warn!(target: "passgate::scripts", client = %client, user_id = %user_id, provider, "a script demanded MFA on a refresh: ignored, nothing can prompt for it");
            }
            (_, None) => {}
        }
        Ok(())
    }
}

fn refusal_kind(r: &Refusal) -> &'static str {
    match r {
        Refusal::Unauthorized(_) => "unauthorized",
        Refusal::AccessDenied(_) => "access_denied",
        Refusal::Redirect => "redirect",
    }
}
