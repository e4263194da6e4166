//! Verifying one JWT: header, issuer, key, signature, then time claims.
//!
//! The algorithm comes from the key, never from the token: a header whose
//! `alg` is not the key's (`none`, `HS256` against a public key, anything
//! outside the issuer's allow-list) is refused before any signature work.
//! passgate's own issuer takes only access tokens (`typ.rs`).
//! Time is checked here against the gate's clock, with the configured leeway;
//! audience and scope depend on the route and are checked by the caller.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::claims::{Claims, ClaimsError};
use super::issuers::Issuers;
use super::keys::{VerifyKey, alg_name};
use super::typ::Accepted;
use crate::config::jwa::PUBLIC_KEY_ALGORITHMS;

/// Why a token is not valid (before route policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not three base64url parts with JSON header and payload.
    Malformed,
    /// The header asks for an algorithm the key does not have (or `none`).
    AlgorithmNotAllowed,
    /// The header has a `crit` extension passgate does not understand.
    UnsupportedCritical,
    /// `iss` is neither passgate nor a trusted issuer.
    UnknownIssuer,
    /// No key of the issuer has the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `aud` does not contain the route's audience.
    WrongAudience,
    /// The token's session was revoked.
    Revoked,
    /// An own-issuer token not typed `at+jwt` (an ID token, or a legacy
    /// token past its window): see `typ.rs`.
    NotAnAccessToken,
}

impl TokenProblem {
    /// The `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            TokenProblem::Malformed => "the token is malformed",
            TokenProblem::AlgorithmNotAllowed => "the token's algorithm is not allowed",
            TokenProblem::UnsupportedCritical => "the token has an unsupported critical header",
            TokenProblem::UnknownIssuer => "the token's issuer is not trusted",
            TokenProblem::UnknownKey => "the token's signing key is unknown",
            TokenProblem::BadSignature => "the token's signature is invalid",
            TokenProblem::Expired => "the token has expired",
            TokenProblem::NotYetValid => "the token is not valid yet",
            TokenProblem::WrongAudience => "the token is not valid for this audience",
            TokenProblem::Revoked => "the token has been revoked",
            TokenProblem::NotAnAccessToken => "the token is not an access token",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// Verify `token` against the known issuers at time `now` with `leeway` seconds.
pub async fn verify(
    token: &str,
    issuers: &Issuers,
    now: i64,
    leeway: i64,
) -> Result<(Claims, Arc<VerifyKey>), TokenProblem> {
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenProblem::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h64)
        .map_err(|_| TokenProblem::Malformed)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenProblem::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenProblem::UnsupportedCritical);
    }
    // `none` and shared-secret algorithms never verify against any key: refuse
    // them before the key lookup, so such tokens cannot spend an issuer's
    // unknown-`kid` refetch.
    if !PUBLIC_KEY_ALGORITHMS
        .iter()
        .any(|a| alg_name(*a) == header.alg)
    {
        return Err(TokenProblem::AlgorithmNotAllowed);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p64)
        .map_err(|_| TokenProblem::Malformed)?;
    let mut claims = Claims::from_json(&payload).map_err(|e| match e {
        ClaimsError::NoIssuer => TokenProblem::UnknownIssuer,
        ClaimsError::NotAnObject | ClaimsError::NoExpiry | ClaimsError::BadClaim(_) => {
            TokenProblem::Malformed
        }
    })?;

    let issuer = issuers
        .get(&claims.iss)
        .ok_or(TokenProblem::UnknownIssuer)?;
    let key = issuer
        .find(header.kid.as_deref(), &header.alg)
        .await
        .ok_or(TokenProblem::UnknownKey)?;
    if alg_name(key.alg) != header.alg {
        return Err(TokenProblem::AlgorithmNotAllowed);
    }
    let message_len = h64.len() + 1 + p64.len();
    let message = &token.as_bytes()[..message_len];
    match jsonwebtoken::crypto::verify(sig, message, &key.key, key.alg) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(TokenProblem::BadSignature),
    }
    if let Some(rule) = issuer.access_typ() {
        match rule.check(header.typ.as_deref(), claims.iat, now)? {
            Accepted::Access => {}
            // A legacy token never outlives its window: its effective expiry
            // is clamped, so the verified-token cache drops it then too.
            Accepted::Legacy { until } => {
                claims.exp = claims.exp.min(until.saturating_sub(leeway));
            }
        }
    }

    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenProblem::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
    {
        return Err(TokenProblem::NotYetValid);
    }
    Ok((claims, key))
}
