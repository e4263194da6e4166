//! The protector's refusals as the token endpoint's wire errors: 429
//! `too_many_requests` with rate-limit headers, 429 `too_many_attempts` with
//! Auth0's exact texts, or a 500 when the store fails (attack protection
//! fails closed; the cause goes to the log).

use super::error::{BRUTE_FORCE_BLOCKED, OAuthError, SUSPICIOUS_IP_THROTTLED};
use crate::protect::{Denied, Refusal};

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
            Denied::Store(e) => super::error::store_failed("the attack-protection store", &e),
        }
    }
}
