//! The key ring: every signing key the key source holds, which of them signs
//! now, and the JWKS that publishes them (docs/architecture.md, "Signing
//! keys").
//!
//! Every key is published from the moment it exists; a key signs from its
//! `signs_from` on. The signing key is the newest one (by `created_at`)
//! whose `signs_from` has come, so a rotated key waits until verifiers that
//! cached the JWKS have fetched it again ([`JWKS_MAX_AGE`]).
//!
//! A ring never changes: the live one is swapped whole ([`LiveRing`]), and
//! a request reads one snapshot, without a lock.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::key_source::StoredKey;
use super::keys::{KeyError, SigningKey};

/// How long clients may cache the JWKS and the discovery document
/// (`Cache-Control: public, max-age=...`). A rotated key waits at least this
/// long before it signs (`key_source.rs`, [`super::key_source::rotation_delay`]).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// One key of the ring with its dates.
#[derive(Debug, Clone)]
pub struct RingKey {
    /// The key.
    pub key: Arc<SigningKey>,
    /// When it was made (seconds since the epoch).
    pub created_at: i64,
    /// When it starts signing (seconds since the epoch).
    pub signs_from: i64,
}

/// Why a ring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The source holds no key.
    #[error("there is no signing key")]
    Empty,
    /// A stored key does not parse.
    #[error("signing key {kid}")]
    Key {
        /// The `kid` it was stored under.
        kid: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A stored key's `kid` is not its public key's thumbprint.
    #[error("signing key {stored}: the key's thumbprint is {actual}")]
    KidMismatch {
        /// The `kid` it was stored under.
        stored: String,
        /// The thumbprint of its public key.
        actual: String,
    },
}

/// Every signing key of the issuer, oldest first.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<RingKey>,
    jwks: Bytes,
}

impl KeyRing {
    /// A ring of `stored` keys. Keys of `reuse` with the same `kid` are
    /// taken as they are (a refresh parses only new keys).
    pub fn build(stored: &[StoredKey], reuse: Option<&KeyRing>) -> Result<KeyRing, RingError> {
        let mut keys = Vec::with_capacity(stored.len());
        for s in stored {
            let known = reuse.and_then(|r| r.keys.iter().find(|k| k.key.kid == s.kid));
            let key = match known {
                Some(k) if k.key.alg == s.alg => Arc::clone(&k.key),
                _ => Arc::new(parse(s)?),
            };
            keys.push(RingKey {
                key,
                created_at: s.created_at,
                signs_from: s.signs_from,
            });
        }
        Self::from_keys(keys)
    }

    /// A ring of parsed keys (sorted oldest first; equal ages keep their order).
    pub fn from_keys(mut keys: Vec<RingKey>) -> Result<KeyRing, RingError> {
        if keys.is_empty() {
            return Err(RingError::Empty);
        }
        keys.sort_by_key(|k| k.created_at);
        let jwks =
            serde_json::json!({ "keys": keys.iter().map(|k| &k.key.jwk).collect::<Vec<_>>() });
        let jwks = serde_json::to_vec(&jwks).unwrap_or_default().into();
        Ok(KeyRing { keys, jwks })
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    /// The key that signs at `now`: the newest whose `signs_from` has come.
    /// When none has come yet (every key was made to sign later, which
    /// `passgate keys rotate` never leaves), the one that starts first.
    pub fn signer(&self, now: i64) -> &Arc<SigningKey> {
        let ready = self.keys.iter().rev().find(|k| k.signs_from <= now);
        let first = || self.keys.iter().min_by_key(|k| k.signs_from);
        // A ring is never empty (`from_keys`), so one of the two is there.
        match ready.or_else(first) {
            Some(k) => &k.key,
            None => &self.keys[0].key,
        }
    }

    /// The key that signs now, on the system clock (for tests and tools
    /// that mint tokens as passgate would).
    pub fn current(&self) -> &Arc<SigningKey> {
        self.signer(crate::clock::Clock::now(&crate::clock::SystemClock))
    }

    /// `{"keys": [...]}` with every public key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::from_slice(&self.jwks).unwrap_or_default()
    }

    /// The JWKS document, rendered once.
    pub fn jwks_bytes(&self) -> &Bytes {
        &self.jwks
    }

    /// Whether `stored` is exactly this ring's keys and dates.
    pub fn holds_exactly(&self, stored: &[StoredKey]) -> bool {
        let mut theirs: Vec<(&str, i64, i64)> = stored
            .iter()
            .map(|s| (s.kid.as_str(), s.created_at, s.signs_from))
            .collect();
        let mut ours: Vec<(&str, i64, i64)> = self
            .keys
            .iter()
            .map(|k| (k.key.kid.as_str(), k.created_at, k.signs_from))
            .collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        theirs == ours
    }
}

fn parse(s: &StoredKey) -> Result<SigningKey, RingError> {
    let key = SigningKey::from_pkcs8(&s.pkcs8, s.alg).map_err(|source| RingError::Key {
        kid: s.kid.clone(),
        source,
    })?;
    if key.kid != s.kid {
        return Err(RingError::KidMismatch {
            stored: s.kid.clone(),
            actual: key.kid,
        });
    }
    Ok(key)
}

/// The ring in use, swapped whole when the key source changes. Clones share it.
#[derive(Debug, Clone)]
pub struct LiveRing(Arc<ArcSwap<KeyRing>>);

impl LiveRing {
    /// Start with `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(ring)))
    }

    /// The ring now: one snapshot for the whole of a request.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }

    /// Put `ring` in use.
    pub fn replace(&self, ring: Arc<KeyRing>) {
        self.0.store(ring);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::tokens::key_source::new_key;

    fn ring(keys: &[StoredKey]) -> KeyRing {
        KeyRing::build(keys, None).unwrap()
    }

    #[test]
    fn the_newest_key_whose_time_has_come_signs() {
        crate::tls::install_crypto_providers();
        let old = new_key(Algorithm::ES256, 1_000, 1_000).unwrap();
        let mid = new_key(Algorithm::ES256, 2_000, 2_000).unwrap();
        let next = new_key(Algorithm::ES256, 3_000, 3_300).unwrap();
        // Stored in any order; the ring sorts by age.
        let r = ring(&[next.clone(), old.clone(), mid.clone()]);
        let kids: Vec<&str> = r.keys().iter().map(|k| k.key.kid.as_str()).collect();
        assert_eq!(kids, [&old.kid, &mid.kid, &next.kid]);
        assert_eq!(r.signer(1_500).kid, old.kid);
        assert_eq!(r.signer(3_299).kid, mid.kid, "published, not signing yet");
        assert_eq!(r.signer(3_300).kid, next.kid);
        assert_eq!(r.signer(9_999).kid, next.kid);
        // Every key is published, whether it signs or not.
        let jwks: serde_json::Value = serde_json::from_slice(r.jwks_bytes()).unwrap();
        let published: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(published, kids);
    }

    #[test]
    fn an_older_key_made_to_sign_later_does_not_take_over() {
        crate::tls::install_crypto_providers();
        // Made first but set to sign late: the newer key already signing wins.
        let late = new_key(Algorithm::EdDSA, 1_000, 5_000).unwrap();
        let now = new_key(Algorithm::EdDSA, 2_000, 2_000).unwrap();
        let r = ring(&[late.clone(), now.clone()]);
        assert_eq!(r.signer(6_000).kid, now.kid);
        // Nothing signs yet: the key that starts first.
        let r = ring(std::slice::from_ref(&late));
        assert_eq!(r.signer(10).kid, late.kid);
    }

    #[test]
    fn a_refresh_reuses_parsed_keys_and_checks_new_ones() {
        crate::tls::install_crypto_providers();
        let a = new_key(Algorithm::ES256, 1, 1).unwrap();
        let first = ring(std::slice::from_ref(&a));
        let b = new_key(Algorithm::ES256, 2, 2).unwrap();
        let second = KeyRing::build(&[a.clone(), b.clone()], Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&first.keys()[0].key, &second.keys()[0].key));
        assert!(second.holds_exactly(&[b.clone(), a.clone()]));
        assert!(!second.holds_exactly(std::slice::from_ref(&a)));
        let mut moved = b.clone();
        moved.signs_from = 99;
        assert!(!second.holds_exactly(&[a.clone(), moved]));
        // A key whose kid is not its own thumbprint is refused.
        let mut lying = new_key(Algorithm::ES256, 3, 3).unwrap();
        lying.kid = a.kid.clone() + "x";
        assert!(matches!(
            KeyRing::build(&[lying], None),
            Err(RingError::KidMismatch { .. })
        ));
        assert!(matches!(KeyRing::build(&[], None), Err(RingError::Empty)));
    }
}
