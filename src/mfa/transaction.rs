//! `mfa_token` transactions: one per `mfa_required` answer. The token is
//! opaque (256 random bits), stored only as its hash, bound to the client,
//! the user, the audience and the login decision (scopes, claims), lives 10
//! minutes and is refused once a second factor finished it.

use super::{Mfa, MfaError, codes};
use crate::store::mfa::MfaTransaction;

/// How long an `mfa_token` lives.
pub const TOKEN_LIFETIME_SECS: i64 = 600;

impl Mfa {
    /// Open a transaction for a login whose password was verified; returns
    /// the `mfa_token` (the only time it exists in clear).
    pub async fn begin(
        &self,
        user_id: &str,
        client_id: &str,
        realm: &str,
        audience: &str,
        decision: String,
    ) -> Result<String, MfaError> {
        let token = codes::new_token();
        let now = self.clock.now();
        self.store
            .create_transaction(&MfaTransaction {
                token_hash: codes::hash_hex(&token),
                user_id: user_id.to_string(),
                client_id: client_id.to_string(),
                realm: realm.to_string(),
                audience: audience.to_string(),
                decision,
                created_at: now,
                expires_at: now + TOKEN_LIFETIME_SECS,
                used_at: None,
                oob: None,
            })
            .await?;
        Ok(token)
    }

    /// The live transaction of `token`, for `client_id` when given. Unknown,
    /// used and foreign tokens are all "malformed"; an old one is "expired".
    pub async fn open(
        &self,
        token: &str,
        client_id: Option<&str>,
    ) -> Result<MfaTransaction, MfaError> {
        if !codes::is_token_shaped(token) {
            return Err(MfaError::MalformedToken);
        }
        let Some(t) = self.store.find_transaction(&codes::hash_hex(token)).await? else {
            return Err(MfaError::MalformedToken);
        };
        if t.used_at.is_some() || client_id.is_some_and(|c| c != t.client_id) {
            return Err(MfaError::MalformedToken);
        }
        if self.clock.now() > t.expires_at {
            return Err(MfaError::ExpiredToken);
        }
        Ok(t)
    }

    /// End a transaction after its second factor succeeded; of two
    /// concurrent finishes exactly one wins.
    pub async fn finish(&self, t: &MfaTransaction) -> Result<(), MfaError> {
        if self
            .store
            .finish_transaction(&t.token_hash, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(MfaError::MalformedToken)
        }
    }
}
