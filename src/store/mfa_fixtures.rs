//! Second-factor records for the store's unit tests, SQLite's and
//! PostgreSQL's alike: one user, `auth0|u`, in realm `r`.

use super::mfa::StoredAuthenticator;
use super::mfa_transactions::MfaTransaction;

/// The id of the user every fixture belongs to.
pub const USER: &str = "auth0|u";

/// A factor of [`USER`] created at time 0, never used.
pub fn authenticator(id: &str, kind: &str, secret: &[u8], active: bool) -> StoredAuthenticator {
    StoredAuthenticator {
        id: id.into(),
        user_id: USER.into(),
        kind: kind.into(),
        secret: secret.to_vec(),
        active,
        last_step: 0,
        created_at: 0,
    }
}

/// An open transaction of [`USER`] under the `mfa_token` hash `hash`,
/// created at 0 and expiring at 600.
pub fn transaction(hash: &str) -> MfaTransaction {
    MfaTransaction {
        token_hash: hash.into(),
        user_id: USER.into(),
        client_id: "c".into(),
        realm: "r".into(),
        audience: "a".into(),
        decision: "{}".into(),
        created_at: 0,
        expires_at: 600,
        used_at: None,
        oob: None,
    }
}
