//! `/mfa/*`: Auth0's MFA API, as `@auth0/auth0-auth-js`'s `AuthClient.mfa`
//! calls it. `GET /mfa/authenticators`, `POST /mfa/associate` and
//! `DELETE /mfa/authenticators/{id}` take `Authorization: Bearer
//! <mfa_token>`; `POST /mfa/challenge` takes `client_id` and `mfa_token` in
//! its body (no secret, as the SDK sends none; the client must be the
//! token's). Removing a confirmed factor needs an access token from a login
//! that did MFA: the password alone never removes a second factor.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::AuthServer;
use super::error::{OAuthError, no_store, stored};
use super::login::AMR_MFA;
use super::mfa_grant::{mfa_refused, run};
use super::request;
use crate::gate::bearer::{Credential, credential};
use crate::http::body::ResponseBody;
use crate::http::response::json;
use crate::mfa::{Challenge, MfaError};
use crate::store::User;
use crate::store::mfa::MfaTransaction;

/// The body of `POST /mfa/associate`.
#[derive(Debug, Deserialize)]
struct Associate {
    authenticator_types: Vec<String>,
    #[serde(default)]
    oob_channels: Vec<String>,
}

impl AuthServer {
    /// Answer a request under `/mfa/`.
    pub(super) async fn mfa_endpoint(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        // The token endpoint's per-IP request limit covers these too (an
        // e-mail challenge sends mail).
        let ip = self.protect.network_ip(peer, req.headers());
        if let Err(e) = self.protect.check_request(ip) {
            return OAuthError::from(e).into_response();
        }
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let answer = match (method, path.as_str()) {
            (Method::GET, "/mfa/authenticators") => self.mfa_list(&req).await,
            (Method::POST, "/mfa/associate") => self.mfa_associate(req).await,
            (Method::POST, "/mfa/challenge") => self.mfa_challenge(req).await,
            (Method::DELETE, p) if p.starts_with("/mfa/authenticators/") => {
                let id = percent_encoding::percent_decode_str(&p["/mfa/authenticators/".len()..])
                    .decode_utf8_lossy()
                    .into_owned();
                self.mfa_delete(&req, &id).await
            }
            _ => Err(OAuthError::InvalidRequest("no such MFA endpoint".into())),
        };
        match answer {
            Ok(resp) => no_store(resp),
            Err(e) => e.into_response(),
        }
    }

    /// The transaction named by the `Authorization: Bearer <mfa_token>` header, and its user.
    async fn bearer_transaction(
        &self,
        req: &Request<Incoming>,
    ) -> Result<(MfaTransaction, User), OAuthError> {
        let token = bearer(req)?;
        let mfa = Arc::clone(&self.mfa);
        let t = run(mfa.open(&token, None)).await?;
        let user = self.transaction_user(&t).await?;
        Ok((t, user))
    }

    async fn transaction_user(&self, t: &MfaTransaction) -> Result<User, OAuthError> {
        stored("user lookup", self.store.get_user(&t.user_id))
            .await?
            .ok_or(OAuthError::InvalidGrant(crate::mfa::error::MALFORMED_TOKEN))
    }

    async fn mfa_list(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (t, _) = self.bearer_transaction(req).await?;
        let mfa = Arc::clone(&self.mfa);
        let list = run(mfa.list(&t.user_id)).await?;
        Ok(json(StatusCode::OK, &list))
    }

    async fn mfa_associate(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (t, user) = self.bearer_transaction(&req).await?;
        let (_, body) = request::read_json::<Associate>(req).await?;
        let kind = body.authenticator_types.first().map(String::as_str);
        let mfa = Arc::clone(&self.mfa);
        match kind {
            Some("otp") => {
                let enrolment = run(mfa.associate_otp(&user)).await?;
                self.metrics.mfa("otp", "enrolled");
                Ok(json(StatusCode::OK, &enrolment))
            }
            Some("oob") if body.oob_channels.iter().any(|c| c == "email") => {
                let (enrolment, outgoing) = run(mfa.associate_email(&user, &t)).await?;
                self.mfa.send(outgoing).await.map_err(mfa_refused)?;
                self.metrics.mfa("email", "enrolled");
                Ok(json(StatusCode::OK, &enrolment))
            }
            _ => Err(OAuthError::InvalidRequest(
                "authenticator_types must be [\"otp\"], or [\"oob\"] with oob_channels [\"email\"]"
                    .into(),
            )),
        }
    }

    async fn mfa_challenge(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let (_, params) = request::read(req).await?;
        let client_id = params.require("client_id")?.to_string();
        let token = params.require("mfa_token")?.to_string();
        if !self.config.clients.iter().any(|c| c.id == client_id) {
            return Err(OAuthError::InvalidClient { basic: false });
        }
        let challenge_type = params.get("challenge_type").map(str::to_string);
        let authenticator_id = params.get("authenticator_id").map(str::to_string);
        let mfa = Arc::clone(&self.mfa);
        let challenge = run(async move {
            let t = mfa.open(&token, Some(&client_id)).await?;
            mfa.challenge(&t, challenge_type.as_deref(), authenticator_id.as_deref())
                .await
        })
        .await?;
        match challenge {
            Challenge::Otp => {
                self.metrics.mfa("otp", "challenged");
                Ok(json(StatusCode::OK, &json!({ "challenge_type": "otp" })))
            }
            Challenge::Oob {
                oob_code,
                send_to,
                code,
            } => {
                self.mfa.send((send_to, code)).await.map_err(mfa_refused)?;
                self.metrics.mfa("email", "challenged");
                Ok(json(
                    StatusCode::OK,
                    &json!({ "challenge_type": "oob", "oob_code": oob_code, "binding_method": "prompt" }),
                ))
            }
        }
    }

    async fn mfa_delete(
        &self,
        req: &Request<Incoming>,
        id: &str,
    ) -> Result<Response<ResponseBody>, OAuthError> {
        let token = bearer(req)?;
        // An mfa_token removes only a pending enrolment; an access token from
        // a login that did MFA removes any factor of its own user.
        let (user_id, confirmed_too) = if crate::mfa::is_token_shaped(&token) {
            let (t, _) = self.bearer_transaction(req).await?;
            (t.user_id, false)
        } else {
            let verified = self
                .gate
                .verified(&token)
                .await
                .map_err(|_| OAuthError::Unauthorized("invalid access token".into()))?;
            let claims = &verified.claims;
            let did_mfa = claims
                .raw
                .get("amr")
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|m| m == AMR_MFA));
            match (&claims.sub, claims.iss == self.issuer.url && did_mfa) {
                (Some(sub), true) => (sub.clone(), true),
                _ => {
                    return Err(OAuthError::Unauthorized(
                        "removing a confirmed authenticator needs a token from a login that did MFA"
                            .into(),
                    ));
                }
            }
        };
        match self.mfa.remove(&user_id, id, confirmed_too).await {
            Ok(()) => Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(ResponseBody::empty())
                .map_err(|_| OAuthError::internal())?),
            Err(MfaError::NotFound) => Ok(crate::http::response::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such authenticator, or it is confirmed (use an access token from a login that did MFA)",
            )),
            Err(e) => Err(mfa_refused(e)),
        }
    }
}

/// The bearer token of a request, or 401.
fn bearer(req: &Request<Incoming>) -> Result<String, OAuthError> {
    match credential(req.headers()) {
        Credential::Token(t) => Ok(t.to_string()),
        Credential::Missing => Err(OAuthError::Unauthorized(
            "Authorization: Bearer <mfa_token> is required".into(),
        )),
        Credential::Malformed(why) => Err(OAuthError::InvalidRequest(why.into())),
    }
}
