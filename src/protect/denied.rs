//! What the protector answers with. The token endpoint maps it to its wire
//! errors (`oauth/denied.rs`): 429 `too_many_requests` with rate-limit
//! headers, 429 `too_many_attempts` with Auth0's exact texts, or 500 when the
//! store fails (attack protection fails closed).

use super::limiter::Limited;
use super::rules::Refusal;
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
