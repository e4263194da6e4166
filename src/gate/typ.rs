//! Which tokens of passgate's own issuer are access tokens.
//!
//! Access tokens and ID tokens share the issuer and its signing keys; what
//! tells them apart is the header's `typ`: `at+jwt` for access tokens (RFC
//! 9068), `JWT` for ID tokens. The gate takes only `at+jwt` from its own
//! issuer, so an ID token is never an access token, whatever its `aud`.
//!
//! Versions before this rule signed access tokens `typ: JWT`. Those stay
//! valid for a bounded window after the cut-over, the first time a version
//! with this rule ran against the store (recorded there once, so restarts
//! never move it): a `JWT`-typed token is accepted only if it was issued
//! before the cut-over, and only until the cut-over plus the longest
//! access-token lifetime configured at that moment; after that, never.
//! Trusted issuers are not concerned (Auth0's access tokens are `typ: JWT`).

use super::verify::TokenProblem;
use crate::store::StoreError;
use crate::store::settings::SettingsStore;

/// The settings names of the cut-over and the end of the legacy window.
const CUTOVER: &str = "access_token_typ_cutover";
const LEGACY_UNTIL: &str = "access_token_typ_legacy_until";

/// The own issuer's rule for the `typ` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTyp {
    /// When this version first ran against the store (seconds since the epoch).
    pub cutover: i64,
    /// The last second a legacy `JWT`-typed token is accepted.
    pub legacy_until: i64,
}

/// How a token's type was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// `at+jwt`: an access token of this version.
    Access,
    /// A legacy `JWT`-typed token, valid at most until this second.
    Legacy {
        /// The end of the legacy window.
        until: i64,
    },
}

/// A `typ` value as a media type: case-insensitive, `application/` optional (RFC 7515 §4.1.9).
fn media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_string(),
        None => lower,
    }
}

impl AccessTyp {
    /// Read the cut-over from `store`, recording it (at `now`, with a window of
    /// `longest_lifetime` seconds) the first time.
    pub async fn load(
        store: &dyn SettingsStore,
        now: i64,
        longest_lifetime: i64,
    ) -> Result<AccessTyp, StoreError> {
        let cutover = store.remember_first(CUTOVER, now).await?;
        let legacy_until = store
            .remember_first(LEGACY_UNTIL, cutover.saturating_add(longest_lifetime))
            .await?;
        Ok(AccessTyp {
            cutover,
            legacy_until,
        })
    }

    /// Whether a token with header `typ` and claim `iat` is an access token at `now`.
    pub fn check(
        &self,
        typ: Option<&str>,
        iat: Option<i64>,
        now: i64,
    ) -> Result<Accepted, TokenProblem> {
        match typ.map(media_type).as_deref() {
            Some("at+jwt") => Ok(Accepted::Access),
            Some("jwt")
                if iat.is_some_and(|iat| iat < self.cutover) && now <= self.legacy_until =>
            {
                Ok(Accepted::Legacy {
                    until: self.legacy_until,
                })
            }
            _ => Err(TokenProblem::NotAnAccessToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_at_jwt_and_legacy_tokens_within_the_window() {
        let rule = AccessTyp {
            cutover: 1_000,
            legacy_until: 4_600,
        };
        let legacy = Ok(Accepted::Legacy { until: 4_600 });
        let refused = Err(TokenProblem::NotAnAccessToken);
        // (typ, iat, now, expected)
        let cases = [
            (Some("at+jwt"), Some(5_000), 9_000, Ok(Accepted::Access)),
            (Some("AT+JWT"), None, 9_000, Ok(Accepted::Access)),
            (Some("application/at+jwt"), Some(1), 1, Ok(Accepted::Access)),
            (Some("JWT"), Some(999), 1_000, legacy),
            (Some("jwt"), Some(0), 4_600, legacy),
            (Some("JWT"), Some(999), 4_601, refused),
            (Some("JWT"), Some(1_000), 1_000, refused),
            (Some("JWT"), None, 1_000, refused),
            (None, Some(999), 1_000, refused),
            (Some("id+jwt"), Some(999), 1_000, refused),
            (Some(""), Some(999), 1_000, refused),
        ];
        for (typ, iat, now, expected) in cases {
            assert_eq!(rule.check(typ, iat, now), expected, "{typ:?} {iat:?} {now}");
        }
    }
}
