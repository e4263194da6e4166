//! Refresh tokens: 256 random bits, base64url, stored only as SHA-256.
//!
//! An exchange checks the token's client, session, absolute and idle
//! lifetimes, then (with rotation) retires it for a successor in one store
//! transaction. A retired token presented again is a race when it comes within
//! the client's reuse leeway (refused; the family lives on) and a theft
//! otherwise: the whole family and its session are revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::Sessions;
use crate::config::ClientConfig;
use crate::store::StoreError;
use crate::store::sessions::{RefreshRecord, Rotation, Session};

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

/// Why an exchange was refused. Every variant is `invalid_grant` /
/// `Unknown or invalid refresh token.` on the wire; the variant is for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// No such token (or another client's).
    Unknown,
    /// The session was revoked.
    Revoked,
    /// Past the absolute or idle lifetime.
    Expired,
    /// A retired token came back within the leeway: refused, family kept.
    Race,
    /// A retired token came back after the leeway: the family is revoked.
    Reused,
    /// The store failed.
    Store(String),
}

impl From<StoreError> for ExchangeError {
    fn from(e: StoreError) -> Self {
        ExchangeError::Store(e.to_string())
    }
}

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
    pub fn exchange(
        &self,
        client: &ClientConfig,
        token: &str,
        access_expires_at: i64,
    ) -> Result<Exchanged, ExchangeError> {
        let now = self.clock.now();
        let hash = hash_token(token);
        let Some((record, session)) = self.store.find_refresh(&hash)? else {
            return Err(ExchangeError::Unknown);
        };
        if record.client_id != client.id {
            return Err(ExchangeError::Unknown);
        }
        if session.revoked_at.is_some() {
            return Err(ExchangeError::Revoked);
        }
        let policy = &client.refresh;
        if let Some(retired) = record.retired_at {
            return Err(self.on_reuse(
                &session,
                retired,
                now,
                policy.reuse_leeway.as_secs() as i64,
            ));
        }
        let idle = policy.idle_lifetime.as_secs() as i64;
        if now > record.absolute_expires_at || now > record.last_used_at.saturating_add(idle) {
            return Err(ExchangeError::Expired);
        }
        if !policy.rotation {
            self.store.touch_refresh(&hash, now, access_expires_at)?;
            return Ok(Exchanged {
                session,
                refresh_token: None,
            });
        }
        let successor = new_token();
        let next = RefreshRecord {
            token_hash: hash_token(&successor),
            sid: session.sid.clone(),
            client_id: client.id.clone(),
            created_at: now,
            last_used_at: now,
            absolute_expires_at: record.absolute_expires_at,
            retired_at: None,
        };
        match self
            .store
            .rotate_refresh(&hash, &next, now, access_expires_at)?
        {
            Rotation::Rotated => Ok(Exchanged {
                session,
                refresh_token: Some(successor),
            }),
            Rotation::AlreadyRetired(retired) => {
                Err(self.on_reuse(&session, retired, now, policy.reuse_leeway.as_secs() as i64))
            }
        }
    }

    fn on_reuse(&self, session: &Session, retired: i64, now: i64, leeway: i64) -> ExchangeError {
        if now - retired <= leeway {
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
        match self.revoke(&session.sid) {
            Ok(_) => ExchangeError::Reused,
            Err(e) => ExchangeError::Store(e.to_string()),
        }
    }
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
}
