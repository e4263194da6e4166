//! Lifting brute-force blocks: `passgate unblock --identifier U [--ip IP]`
//! and a password change (which lifts every block of the user's username
//! and e-mail). Each lift is logged as a structured event.

use std::net::IpAddr;

use super::{ANY_IP, IpKey};
use crate::store::protect::ProtectStore;
use crate::store::{StoreError, User};

/// Identifiers longer than this are counted by their first this-many bytes.
const MAX_IDENTIFIER: usize = 320;

/// How an identifier is counted: lowercased (logins are case-insensitive)
/// and cut to a bounded length.
pub fn identifier_key(identifier: &str) -> String {
    let mut id = identifier.trim().to_lowercase();
    if id.len() > MAX_IDENTIFIER {
        let mut end = MAX_IDENTIFIER;
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        id.truncate(end);
    }
    id
}

/// Lift the brute-force blocks (and failure streaks) of `identifier`: from
/// `ip` only when given (and any account-lockout block), else from every IP.
/// Returns how many (identifier, IP) pairs were cleared.
pub fn unblock(
    store: &dyn ProtectStore,
    identifier: &str,
    ip: Option<IpAddr>,
    reason: &str,
) -> Result<usize, StoreError> {
    let id = identifier_key(identifier);
    let (cleared, ip_text) = match ip {
        Some(ip) => {
            let key = IpKey::of(ip).to_string();
            let n = store.clear_login_failures(&id, Some(&key))?
                + store.clear_login_failures(&id, Some(ANY_IP))?;
            (n, key)
        }
        None => (store.clear_login_failures(&id, None)?, ANY_IP.to_string()),
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
pub fn unblock_ip(store: &dyn ProtectStore, ip: IpAddr, reason: &str) -> Result<bool, StoreError> {
    let key = IpKey::of(ip).to_string();
    let cleared = store.clear_ip_failures(&key)?;
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

/// A new password lifts every block of the user's login names.
pub fn lift_after_password_change(
    store: &dyn ProtectStore,
    user: &User,
) -> Result<usize, StoreError> {
    let mut cleared = 0;
    for name in user.username.iter().chain(user.email.iter()) {
        cleared += unblock(store, name, None, "password_change")?;
    }
    Ok(cleared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn identifiers_are_case_insensitive_and_bounded() {
        assert_eq!(identifier_key(" Alice@Example.com "), "alice@example.com");
        assert_eq!(identifier_key(&"é".repeat(400)).len(), 320);
    }

    #[test]
    fn unblock_by_ip_or_everywhere() {
        let s = SqliteStore::in_memory().unwrap_or_else(|e| panic!("{e}"));
        for ip in ["192.0.2.1", "192.0.2.2", ANY_IP] {
            s.add_login_failure("alice", ip, 10, 0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let ip: IpAddr = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unblock(&s, "ALICE", Some(ip), "admin").ok(), Some(2));
        assert_eq!(unblock(&s, "alice", None, "admin").ok(), Some(1));
    }
}
