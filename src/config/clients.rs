//! Who logs in: `[[clients]]` with their secrets and refresh-token policy, and
//! `[[realms]]` with their MFA policy.

use std::fmt;
use std::time::Duration;

/// A secret from the config: compared in constant time, never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[[clients]]`
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client_id`
    pub id: String,
    /// Display name (rules' `context.clientName`).
    pub name: String,
    /// `None` for a public client.
    pub secret: Option<Secret>,
    /// Grants the client may use.
    pub grant_types: Vec<String>,
    /// Realms the client may log users into.
    pub realms: Vec<String>,
    /// Honour `auth0-forwarded-for` from this client (only with a secret).
    pub trust_forwarded_for: bool,
    /// Refresh-token policy.
    pub refresh: RefreshPolicy,
}

/// How a client's refresh tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Every exchange returns a new refresh token and retires the old one.
    pub rotation: bool,
    /// A retired token presented again within this long is a race, not a theft.
    pub reuse_leeway: Duration,
    /// A family ends this long after its login, however often it is rotated.
    pub absolute_lifetime: Duration,
    /// A family ends when unused for this long.
    pub idle_lifetime: Duration,
    /// Live families per user with this client; the oldest are dropped beyond it.
    pub max_families: usize,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        let thirty_days = Duration::from_secs(30 * 86_400);
        Self {
            rotation: true,
            reuse_leeway: Duration::ZERO,
            absolute_lifetime: thirty_days,
            idle_lifetime: thirty_days,
            max_families: 200,
        }
    }
}

/// MFA policy of a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaPolicy {
    /// Never asked.
    Off,
    /// Asked once the user has enrolled.
    Optional,
    /// Always asked.
    Required,
}

/// `[[realms]]`
#[derive(Debug, Clone)]
pub struct RealmConfig {
    /// The realm (Auth0 connection) name.
    pub name: String,
    /// MFA policy.
    pub mfa: MfaPolicy,
}
