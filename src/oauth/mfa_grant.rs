//! The MFA gate of the password grant and the three `mfa-*` grants that
//! finish what it started. The gate runs after the password (and the
//! scripts): when the realm's policy, the user's enrolment or a script's
//! demand asks for a second factor, the decision is kept in an MFA
//! transaction and the answer is `mfa_required`. A grant then checks the
//! factor, ends the transaction (once), and finishes the kept decision with
//! `amr` `mfa` through `complete_login`: no script runs twice, no argon2 runs.

use std::sync::Arc;

use http::Response;
use serde_json::json;

use super::AuthServer;
use super::error::{OAuthError, stored};
use super::login::{AMR_MFA, LoginDecision, LoginSubject};
use super::request::Params;
use super::token::token_response_with;
use crate::config::{ClientConfig, MfaPolicy};
use crate::http::body::ResponseBody;
use crate::mfa::error as text;
use crate::mfa::{MfaError, Need};
use crate::store::mfa::MfaTransaction;

/// The second factor a grant presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Factor {
    /// `http://auth0.com/oauth/grant-type/mfa-otp`
    Otp,
    /// `http://auth0.com/oauth/grant-type/mfa-oob`
    Oob,
    /// `http://auth0.com/oauth/grant-type/mfa-recovery-code`
    Recovery,
}

impl Factor {
    /// The `factor` label of `passgate_mfa_events_total`.
    fn label(self) -> &'static str {
        match self {
            Factor::Otp => "otp",
            Factor::Oob => "email",
            Factor::Recovery => "recovery_code",
        }
    }

    pub(super) fn parse(grant: &str) -> Option<Factor> {
        match grant {
            "http://auth0.com/oauth/grant-type/mfa-otp" => Some(Factor::Otp),
            "http://auth0.com/oauth/grant-type/mfa-oob" => Some(Factor::Oob),
            "http://auth0.com/oauth/grant-type/mfa-recovery-code" => Some(Factor::Recovery),
            _ => None,
        }
    }
}

/// An MFA refusal on the wire (the texts of protocol.md's error table).
pub(super) fn mfa_refused(e: MfaError) -> OAuthError {
    match e {
        MfaError::MalformedToken => OAuthError::InvalidGrant(text::MALFORMED_TOKEN),
        MfaError::ExpiredToken => OAuthError::ExpiredToken(text::EXPIRED_TOKEN),
        MfaError::InvalidOtp => OAuthError::InvalidGrant(text::INVALID_OTP),
        MfaError::InvalidBinding => OAuthError::InvalidGrant(text::INVALID_BINDING),
        MfaError::InvalidRecovery => OAuthError::InvalidGrant(text::INVALID_RECOVERY),
        MfaError::TooManyFailures => OAuthError::TooManyAttempts(text::TOO_MANY_FAILURES),
        MfaError::AlreadyEnrolled => OAuthError::InvalidRequest(text::ALREADY_ENROLLED.into()),
        MfaError::BadRequest(why) => OAuthError::InvalidRequest(why),
        MfaError::NotFound => OAuthError::InvalidRequest("authenticator not found".into()),
        MfaError::Send(e) => {
            tracing::warn!(target: "passgate::auth", error = %crate::telemetry::ErrorChain(&e), "the e-mail code was not sent");
            OAuthError::TemporarilyUnavailable {
                retry_after: super::error::RETRY_AFTER_SECS,
            }
        }
        MfaError::Store(e) => super::error::store_failed("the MFA store", &e),
        MfaError::Sealed(e) => {
            tracing::error!(error = %crate::telemetry::ErrorChain(&e), "an MFA secret did not open");
            OAuthError::internal()
        }
    }
}

/// Wait for MFA work (store calls); its refusals become OAuth errors.
pub(super) async fn run<T>(
    work: impl std::future::Future<Output = Result<T, MfaError>>,
) -> Result<T, OAuthError> {
    work.await.map_err(mfa_refused)
}

impl AuthServer {
    /// The MFA gate: `Ok(())` lets the login finish; `mfa_required` keeps it.
    pub(super) async fn mfa_gate(
        &self,
        who: &LoginSubject<'_>,
        decision: &LoginDecision,
    ) -> Result<(), OAuthError> {
        let policy = self
            .config
            .realms
            .iter()
            .find(|r| r.name == who.realm)
            .map_or(MfaPolicy::Off, |r| r.mfa);
        let demanded = decision.mfa.is_some();
        if policy == MfaPolicy::Off && !demanded {
            return Ok(());
        }
        let mfa = Arc::clone(&self.mfa);
        let user_id = who.user.user_id.clone();
        let kinds = run(mfa.enrolled_kinds(&user_id)).await?;
        let need = crate::mfa::need(policy, !kinds.is_empty(), demanded);
        let requirements = match need {
            Need::Nothing => return Ok(()),
            Need::Challenge => json!({ "challenge": types(&kinds) }),
            Need::Enrol => json!({ "enroll": types(&self.mfa.enrollable_kinds()) }),
        };
        let kept = serde_json::to_string(decision).map_err(|e| {
            tracing::error!(error = %e, "keeping the login decision");
            OAuthError::internal()
        })?;
        let mfa = Arc::clone(&self.mfa);
        let (user, client, realm, audience) = (
            who.user.user_id.clone(),
            who.client.id.clone(),
            who.realm.to_string(),
            who.api.audience.clone(),
        );
        let mfa_token = run(mfa.begin(&user, &client, &realm, &audience, kept)).await?;
        tracing::info!(target: "passgate::auth", event = "mfa_required", client = %who.client.id, user_id = %who.user.user_id, need = ?need);
        Err(OAuthError::MfaRequired {
            mfa_token,
            requirements,
        })
    }

    /// `mfa-otp`, `mfa-oob`, `mfa-recovery-code`.
    pub(super) async fn mfa_grant(
        &self,
        factor: Factor,
        client: &ClientConfig,
        params: &Params,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let token = params.require("mfa_token")?.to_string();
        // Every parameter is read before anything is checked or counted.
        let code = match factor {
            Factor::Otp => (params.require("otp")?.to_string(), String::new()),
            Factor::Oob => (
                params.require("oob_code")?.to_string(),
                params.require("binding_code")?.to_string(),
            ),
            Factor::Recovery => (params.require("recovery_code")?.to_string(), String::new()),
        };
        let mfa = Arc::clone(&self.mfa);
        let client_id = client.id.clone();
        let metrics = Arc::clone(&self.metrics);
        let (t, recovery_code) = run(async move {
            let t = mfa.open(&token, Some(&client_id)).await?;
            // An OTP check ends the transaction in the same store
            // transaction; the other factors end it below.
            let checked = match factor {
                Factor::Otp => mfa.verify_otp_and_finish(&t, &code.0).await.map(|()| None),
                Factor::Oob => mfa.verify_oob(&t, &code.0, &code.1).await.map(|()| None),
                Factor::Recovery => mfa.verify_recovery(&t, &code.0).await.map(Some),
            };
            if let Some(outcome) = verify_outcome(&checked) {
                metrics.mfa(factor.label(), outcome);
            }
            let next = checked?;
            if factor != Factor::Otp {
                mfa.finish(&t).await?;
            }
            Ok((t, next))
        })
        .await?;
        tracing::info!(target: "passgate::auth", event = "mfa_verified", client = %client.id, user_id = %t.user_id, factor = ?factor);
        self.finish_transaction(t, client, recovery_code).await
    }

    /// Finish the login an MFA transaction kept, with `amr` `mfa`.
    async fn finish_transaction(
        &self,
        t: MfaTransaction,
        client: &ClientConfig,
        recovery_code: Option<String>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let store = Arc::clone(&self.store);
        let user_id = t.user_id.clone();
        let user = stored("user lookup", store.get_user(&user_id)).await?;
        let Some(user) = user else {
            return Err(OAuthError::InvalidGrant(text::MALFORMED_TOKEN));
        };
        if user.blocked {
            return Err(OAuthError::Unauthorized("user is blocked".into()));
        }
        let Some(api) = self.config.apis.iter().find(|a| a.audience == t.audience) else {
            return Err(OAuthError::AccessDenied(format!(
                "Service not found: {}",
                t.audience
            )));
        };
        let mut decision: LoginDecision = serde_json::from_str(&t.decision).map_err(|e| {
            tracing::error!(error = %e, "a kept login decision does not read");
            OAuthError::internal()
        })?;
        if !decision.amr.iter().any(|m| m == AMR_MFA) {
            decision.amr.push(AMR_MFA.to_string());
        }
        let who = LoginSubject {
            user: &user,
            client,
            realm: &t.realm,
            api,
        };
        let (issued, refresh_token, scopes) = self.finish_login(who, decision).await?;
        Ok(token_response_with(
            issued,
            refresh_token,
            &scopes,
            recovery_code,
        ))
    }
}

/// The `outcome` label of a code's check: `verified`, `failed` (a wrong
/// code), `locked` (too many wrong codes; not even checked); `None` when the
/// check did not get as far as the code.
fn verify_outcome<T>(checked: &Result<T, MfaError>) -> Option<&'static str> {
    match checked {
        Ok(_) => Some("verified"),
        Err(MfaError::InvalidOtp | MfaError::InvalidBinding | MfaError::InvalidRecovery) => {
            Some("failed")
        }
        Err(MfaError::TooManyFailures) => Some("locked"),
        Err(_) => None,
    }
}

fn types(kinds: &[&str]) -> Vec<serde_json::Value> {
    kinds.iter().map(|k| json!({ "type": k })).collect()
}
