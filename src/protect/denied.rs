//! What the protector answers with, and its mapping to the token endpoint's
//! wire errors (`OAuthError`): 429 `too_many_requests` with rate-limit
//! headers, 429 `too_many_attempts` with Auth0's exact texts, or 500 when the
//! store fails (attack protection fails closed).

use super::limiter::Limited;
use super::rules::Refusal;
use crate::oauth::error::{BRUTE_FORCE_BLOCKED, OAuthError, SUSPICIOUS_IP_THROTTLED};
use crate::store::StoreError;

/// Why the protector refused a request.
#[derive(Debug)]
pub enum Denied {
    /// A request-rate limit; `reset` is when the next request is allowed
    /// (seconds since the epoch).
    Limited {
        /// The limiter's answer.
        limited: Limited,
        /// `X-RateLimit-Reset`.
        reset: i64,
    },
    /// A block or throttle.
    Refused(Refusal),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Self {
        Denied::Store(e)
    }
}

impl From<Denied> for OAuthError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Limited { limited, reset } => OAuthError::TooManyRequests {
                limit: limited.limit,
                retry_after: limited.retry_after,
                reset,
            },
            Denied::Refused(Refusal::BruteForce { .. }) => {
                OAuthError::TooManyAttempts(BRUTE_FORCE_BLOCKED)
            }
            Denied::Refused(Refusal::SuspiciousIp { .. }) => {
                OAuthError::TooManyAttempts(SUSPICIOUS_IP_THROTTLED)
            }
            Denied::Store(e) => {
                tracing::error!(target: "passgate::protect", error = %crate::telemetry::ErrorChain(&e), "attack-protection store failed");
                OAuthError::ServerError("internal error")
            }
        }
    }
}
