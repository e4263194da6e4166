//! Refresh tokens: 256 random bits, base64url, stored only as SHA-256.
//!
//! An exchange checks the token's client, session, absolute and idle
//! lifetimes and (with rotation) retires it for a successor, all in one store
//! transaction ([`exchange_refresh`]), so a revocation or a
//! competing exchange is either seen or waits. A retired token presented again
//! is a race when it comes strictly within the client's reuse leeway, measured
//! in milliseconds (refused; the family lives on), and a theft otherwise: the
//! whole family and its session are revoked. A leeway of 0 means every reuse
//! is a theft.
//!
//! [`exchange_refresh`]: crate::store::sessions::SessionStore::exchange_refresh

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::Sessions;
use crate::config::ClientConfig;
use crate::store::sessions::{Decision, RefreshRecord, Session};
use crate::store::{MetadataUpdate, StoreError};

/// A fresh refresh token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a refresh token: SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why an exchange was refused. Every variant but `Store` is `invalid_grant` /
/// `Unknown or invalid refresh token.` on the wire; the variant is for logs and tests.
/// A store failure keeps its cause and is answered as a 500.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No such token (or another client's).
    #[error("unknown refresh token")]
    Unknown,
    /// The session was revoked.
    #[error("the session was revoked")]
    Revoked,
    /// Past the absolute or idle lifetime.
    #[error("the session expired")]
    Expired,
    /// A retired token came back within the leeway: refused, family kept.
    #[error("a retired token came back within the reuse leeway")]
    Race,
    /// A retired token came back after the leeway: the family is revoked.
    #[error("a retired token was reused; its family is revoked")]
    Reused,
    /// The store failed.
    #[error("the refresh exchange could not reach the store")]
    Store(#[from] StoreError),
}

/// Two refusals are equal when they are the same kind; store failures are
/// equal whatever their cause (tests compare kinds, never causes).
impl PartialEq for ExchangeError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl Eq for ExchangeError {}

/// A successful exchange.
#[derive(Debug)]
pub struct Exchanged {
    /// The session the token belongs to.
    pub session: Session,
    /// The successor token (with rotation); `None` when the client does not rotate.
    pub refresh_token: Option<String>,
}

impl Sessions {
    /// Exchange `token`, presented by `client`, whose new access token will
    /// expire at `access_expires_at`.
    pub async fn exchange(
        &self,
        client: &ClientConfig,
        token: &str,
        access_expires_at: i64,
    ) -> Result<Exchanged, ExchangeError> {
        self.exchange_storing(client, token, access_expires_at, &MetadataUpdate::default())
            .await
    }

    /// [`Sessions::exchange`], storing `metadata` (what the refresh's
    /// scripts wrote) in the exchange's transaction: both happen or neither.
    pub async fn exchange_storing(
        &self,
        client: &ClientConfig,
        token: &str,
        access_expires_at: i64,
        metadata: &MetadataUpdate,
    ) -> Result<Exchanged, ExchangeError> {
        let (now, now_ms) = (self.clock.now(), self.clock.now_millis());
        let hash = hash_token(token);
        let policy = &client.refresh;
        let successor = policy.rotation.then(new_token);
        // The store runs `decide` inside its transaction (on its own thread),
        // so what it concluded comes back through `verdict`.
        let verdict = Arc::new(Mutex::new(Verdict::Refuse(ExchangeError::Unknown)));
        let (seen, owned, next) = (Arc::clone(&verdict), client.clone(), successor.clone());
        let decide = Box::new(move |record: &RefreshRecord, session: &Session| {
            let (client, successor) = (&owned, &next);
            let checked = check(client, record, session, now);
            let decision = match (&checked, &successor) {
                (Verdict::Refuse(_) | Verdict::Retired(_), _) => Decision::Refuse,
                (Verdict::Exchange, None) => Decision::Touch {
                    last_used_at: now,
                    session_expires_at: access_expires_at,
                },
                (Verdict::Exchange, Some(successor)) => Decision::Rotate {
                    successor: RefreshRecord {
                        token_hash: hash_token(successor),
                        sid: session.sid.clone(),
                        client_id: client.id.clone(),
                        created_at: now,
                        last_used_at: now,
                        absolute_expires_at: record.absolute_expires_at,
                        retired_at_ms: None,
                    },
                    retired_at_ms: now_ms,
                    session_expires_at: access_expires_at,
                },
            };
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = checked;
            decision
        });
        let Some((_, session)) = self.store.exchange_refresh(&hash, metadata, decide).await? else {
            return Err(ExchangeError::Unknown);
        };
        let verdict = std::mem::replace(
            &mut *verdict.lock().unwrap_or_else(|p| p.into_inner()),
            Verdict::Refuse(ExchangeError::Unknown),
        );
        match verdict {
            Verdict::Exchange => Ok(Exchanged {
                session,
                refresh_token: successor,
            }),
            Verdict::Retired(retired_at_ms) => Err(self
                .on_reuse(&session, retired_at_ms, now_ms, policy.reuse_leeway)
                .await),
            Verdict::Refuse(why) => Err(why),
        }
    }

    async fn on_reuse(
        &self,
        session: &Session,
        retired_at_ms: i64,
        now_ms: i64,
        leeway: Duration,
    ) -> ExchangeError {
        if within_leeway(retired_at_ms, now_ms, leeway) {
            return ExchangeError::Race;
        }
        tracing::warn!(
            target: "passgate::auth",
            event = "refresh_token_reuse",
            sid = %session.sid,
            user_id = %session.user_id,
            client = %session.client_id,
            "a retired refresh token was presented again: revoking its family"
        );
        match self.revoke(&session.sid).await {
            Ok(_) => ExchangeError::Reused,
            Err(e) => ExchangeError::Store(e),
        }
    }
}

/// What the checks made of a token, inside the exchange's transaction.
enum Verdict {
    /// Exchange it.
    Exchange,
    /// Refuse it, for this reason.
    Refuse(ExchangeError),
    /// It was retired at this millisecond: a race or a reuse, decided (and a
    /// reuse revoked) once the transaction is over.
    Retired(i64),
}

/// Whether `record`, as read inside the exchange's transaction, may be
/// exchanged by `client` at `now`.
fn check(client: &ClientConfig, record: &RefreshRecord, session: &Session, now: i64) -> Verdict {
    if record.client_id != client.id {
        return Verdict::Refuse(ExchangeError::Unknown);
    }
    if session.revoked_at.is_some() {
        return Verdict::Refuse(ExchangeError::Revoked);
    }
    if let Some(retired_at_ms) = record.retired_at_ms {
        return Verdict::Retired(retired_at_ms);
    }
    let idle = i64::try_from(client.refresh.idle_lifetime.as_secs()).unwrap_or(i64::MAX);
    if now > record.absolute_expires_at || now > record.last_used_at.saturating_add(idle) {
        return Verdict::Refuse(ExchangeError::Expired);
    }
    Verdict::Exchange
}

/// Whether a replay at `now_ms` of a token retired at `retired_at_ms` is
/// strictly within `leeway`. A zero leeway holds nothing, not even the same
/// millisecond (nor a retirement another process's clock put in the future).
fn within_leeway(retired_at_ms: i64, now_ms: i64, leeway: Duration) -> bool {
    let leeway_ms = i64::try_from(leeway.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(retired_at_ms).max(0) < leeway_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_base64url_and_hashes_hex() {
        let t = new_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).map(|b| b.len()).unwrap_or(0), 32);
        assert_ne!(t, new_token());
        let h = hash_token(&t);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_token(&t));
    }

    #[test]
    fn a_zero_leeway_holds_nothing() {
        let zero = Duration::ZERO;
        assert!(!within_leeway(5_000, 5_000, zero), "the same millisecond");
        assert!(
            !within_leeway(5_000, 4_000, zero),
            "a retirement in the future"
        );
        assert!(!within_leeway(5_000, 5_001, zero));
    }

    #[test]
    fn a_leeway_is_measured_in_milliseconds() {
        let second = Duration::from_secs(1);
        assert!(within_leeway(5_000, 5_000, second));
        assert!(within_leeway(5_000, 5_999, second));
        assert!(!within_leeway(5_000, 6_000, second));
        assert!(
            within_leeway(5_900, 6_100, second),
            "across a second boundary"
        );
        assert!(within_leeway(5_000, 5_499, Duration::from_millis(500)));
        assert!(!within_leeway(5_000, 5_500, Duration::from_millis(500)));
    }
}
