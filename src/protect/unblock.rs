//! What brute-force failures count under ([`CounterKey`]), and lifting
//! blocks: `passgate unblock --identifier U [--ip IP]` (any alias of an
//! account lifts the account's block) and a password change. Each lift is
//! logged as a structured event.

use std::net::IpAddr;

use super::{ANY_IP, IpKey};
use crate::store::protect::{ProtectStore, counter_for_account, counter_for_name};
use crate::store::{Store, StoreError, User};

/// What a login attempt's failures count under: the account when the name
/// typed resolves to one (every alias shares it: username, e-mail, any case
/// or normal form), else the name's lookup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey(String);

impl CounterKey {
    /// The key of a login as `typed` that resolved to `user` (or to none).
    pub fn for_login(user: Option<&User>, typed: &str) -> Self {
        match user {
            Some(u) => Self(counter_for_account(&u.user_id)),
            None => Self(counter_for_name(typed)),
        }
    }

    /// As stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CounterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lift the brute-force blocks (and failure streaks) of `identifier` and of
/// every account it names (in any realm, by any alias): from `ip` only when
/// given (and any account-lockout block), else from every IP. Returns how
/// many (identifier, IP) pairs were cleared.
pub async fn unblock<S: Store + ProtectStore + ?Sized>(
    store: &S,
    identifier: &str,
    ip: Option<IpAddr>,
    reason: &str,
) -> Result<usize, StoreError> {
    let mut keys = vec![CounterKey::for_login(None, identifier)];
    for user in store.find_login_everywhere(identifier).await? {
        keys.push(CounterKey::for_login(Some(&user), identifier));
    }
    let mut cleared = 0;
    for key in &keys {
        cleared += clear(store, key, ip, reason).await?;
    }
    Ok(cleared)
}

/// Clear one counter key's streaks, logged.
async fn clear(
    store: &(impl ProtectStore + ?Sized),
    key: &CounterKey,
    ip: Option<IpAddr>,
    reason: &str,
) -> Result<usize, StoreError> {
    let id = key.as_str();
    let (cleared, ip_text) = match ip {
        Some(ip) => {
            let ip_key = IpKey::of(ip).to_string();
            let n = store.clear_login_failures(id, Some(&ip_key)).await?
                + store.clear_login_failures(id, Some(ANY_IP)).await?;
            (n, ip_key)
        }
        None => (
            store.clear_login_failures(id, None).await?,
            ANY_IP.to_string(),
        ),
    };
    tracing::warn!(
        target: "passgate::protect",
        event = "unblock",
        identifier = %id,
        ip = %ip_text,
        reason,
        cleared,
        "brute-force blocks lifted"
    );
    Ok(cleared)
}

/// Lift the suspicious-IP throttle of `ip` (IPv6: its /64). Returns whether
/// there was one to lift.
pub async fn unblock_ip(
    store: &dyn ProtectStore,
    ip: IpAddr,
    reason: &str,
) -> Result<bool, StoreError> {
    let key = IpKey::of(ip).to_string();
    let cleared = store.clear_ip_failures(&key).await?;
    tracing::warn!(
        target: "passgate::protect",
        event = "unthrottle",
        ip = %key,
        reason,
        cleared,
        "suspicious-IP throttle lifted"
    );
    Ok(cleared)
}

/// A new password lifts every block of the user's account (and of its
/// login names' keys, counted before the account existed).
pub async fn lift_after_password_change(
    store: &dyn ProtectStore,
    user: &User,
) -> Result<usize, StoreError> {
    let mut cleared = clear(
        store,
        &CounterKey::for_login(Some(user), ""),
        None,
        "password_change",
    )
    .await?;
    for name in user.username.iter().chain(user.email.iter()) {
        cleared += clear(
            store,
            &CounterKey::for_login(None, name),
            None,
            "password_change",
        )
        .await?;
    }
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn names_are_folded_and_bounded() {
        let key = |s: &str| CounterKey::for_login(None, s).to_string();
        assert_eq!(key("Alice@Example.com"), "name:alice@example.com");
        assert_eq!(key("ＪÜＲＧＥＮ"), key("jürgen"));
        assert_eq!(key(&"é".repeat(400)).len(), "name:".len() + 320);
    }

    #[tokio::test]
    async fn unblock_by_ip_or_everywhere() {
        let s = SqliteStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        for ip in ["192.0.2.1", "192.0.2.2", ANY_IP] {
            s.add_login_failure("name:alice", ip, 10, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let ip: IpAddr = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unblock(&s, "ALICE", Some(ip), "admin").await.ok(), Some(2));
        assert_eq!(unblock(&s, "alice", None, "admin").await.ok(), Some(1));
    }
}
