//! Verification keys of one issuer. Each key carries exactly one algorithm,
//! fixed when the key is loaded (the JWK's `alg`, else the first algorithm of
//! its family in the issuer's allow-list); a token's header can never choose
//! another one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::config::jwa::RSA_ALGORITHMS;

/// Written once, in `config/jwa.rs`; kept here for the gate's callers.
pub use crate::config::jwa::alg_name;

/// A public key pinned to one algorithm.
pub struct VerifyKey {
    /// The `kid`, when the source named one.
    pub kid: Option<String>,
    /// The only algorithm this key verifies.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
    /// Set once the issuer's key set no longer holds this key: tokens it
    /// verified are taken out of the verified-token cache when next used.
    withdrawn: AtomicBool,
}

impl VerifyKey {
    /// A key for `alg`, named `kid` when its source names it.
    pub fn new(kid: Option<String>, alg: Algorithm, key: DecodingKey) -> Self {
        Self {
            kid,
            alg,
            key,
            withdrawn: AtomicBool::new(false),
        }
    }

    /// True once the issuer stopped publishing this key.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Reads a PEM public key of one family.
type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

/// An issuer's keys by `kid`; keys without a `kid` match any token of the issuer.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    unnamed: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// A set from keys.
    pub fn new(keys: impl IntoIterator<Item = VerifyKey>) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            let key = Arc::new(key);
            match &key.kid {
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key);
                }
                None => set.unnamed.push(key),
            }
        }
        set
    }

    /// The key for a token whose header names `kid` and `alg`.
    pub fn find(&self, kid: Option<&str>, alg: &str) -> Option<Arc<VerifyKey>> {
        if let Some(key) = kid.and_then(|k| self.by_kid.get(k)) {
            return Some(Arc::clone(key));
        }
        // A kid-less key matches when its algorithm is the header's; the
        // signature check then decides.
        self.unnamed
            .iter()
            .find(|k| alg_name(k.alg) == alg)
            .or_else(|| self.unnamed.first())
            .cloned()
    }

    /// Mark withdrawn every key of this set that `newer`, which replaces
    /// it, no longer holds (by `kid` and algorithm); returns how many. Keys
    /// without a `kid` cannot be told apart across two fetches, so each is
    /// counted withdrawn when its set is replaced: tokens they verified are
    /// verified again once.
    pub fn withdraw_missing_from(&self, newer: &KeySet) -> usize {
        let mut withdrawn = 0;
        let gone = self.by_kid.iter().filter(|(kid, key)| {
            newer
                .by_kid
                .get(kid.as_str())
                .is_none_or(|kept| kept.alg != key.alg)
        });
        for key in gone.map(|(_, key)| key).chain(&self.unnamed) {
            key.withdrawn.store(true, Ordering::Release);
            withdrawn += 1;
        }
        withdrawn
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parse a JWKS document, keeping the signing keys whose algorithm is allowed.
    /// Skipped keys are named in the returned notes.
    pub fn from_jwks(json: &[u8], allowed: &[Algorithm]) -> Result<(KeySet, Vec<String>), String> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut notes = Vec::new();
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let name = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            match verify_key(jwk, allowed) {
                Ok(k) => keys.push(k),
                Err(why) => notes.push(format!("key {name} skipped: {why}")),
            }
        }
        Ok((KeySet::new(keys), notes))
    }

    /// One PEM public key (RSA, EC P-256/P-384 or Ed25519), without a `kid`.
    pub fn from_public_pem(pem: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        let pick = |family: &[Algorithm]| allowed.iter().copied().find(|a| family.contains(a));
        let candidates: [(PemParser, &[Algorithm]); 3] = [
            (DecodingKey::from_rsa_pem, RSA_ALGORITHMS),
            (
                DecodingKey::from_ec_pem,
                &[Algorithm::ES256, Algorithm::ES384],
            ),
            (DecodingKey::from_ed_pem, &[Algorithm::EdDSA]),
        ];
        for (parse, family) in candidates {
            if let Ok(key) = parse(pem) {
                let alg = pick(family).ok_or_else(|| {
                    "the key's algorithm family is not in `algorithms`".to_string()
                })?;
                return Ok(KeySet::new([VerifyKey::new(None, alg, key)]));
            }
        }
        Err("not a PEM public key (RSA, EC or Ed25519)".into())
    }
}

fn verify_key(jwk: &Jwk, allowed: &[Algorithm]) -> Result<VerifyKey, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".into());
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA_ALGORITHMS,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKeyPair(_) => return Err("unsupported curve".into()),
        AlgorithmParameters::OctetKey(_) => {
            return Err("a shared-secret key is never accepted".into());
        }
    };
    let alg = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Err("unknown alg".into()),
        Some(ka) => {
            let alg: Algorithm = ka
                .to_string()
                .parse()
                .map_err(|_| format!("alg {ka} is not a signature algorithm"))?;
            if !family.contains(&alg) {
                return Err(format!("alg {ka} does not fit the key type"));
            }
            alg
        }
        None => family
            .iter()
            .copied()
            .find(|a| allowed.contains(a))
            .ok_or_else(|| "no allowed algorithm for this key type".to_string())?,
    };
    if !allowed.contains(&alg) {
        return Err(format!(
            "alg {} is not allowed for this issuer",
            alg_name(alg)
        ));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey::new(jwk.common.key_id.clone(), alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec1"}"#;

    #[test]
    fn jwks_keys_get_pinned_algorithms_and_secrets_are_refused() {
        let doc = format!(
            r#"{{"keys":[{EC_JWK},{{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},{{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"enc","use":"enc"}}]}}"#
        );
        let (set, notes) = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::ES256])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), 1);
        assert_eq!(notes.len(), 2, "{notes:?}");
        let key = set
            .find(Some("ec1"), "ES256")
            .unwrap_or_else(|| panic!("no key"));
        assert_eq!(key.alg, Algorithm::ES256);
        assert!(set.find(Some("hmac"), "HS256").is_none());
    }

    #[test]
    fn a_replacing_set_withdraws_what_it_no_longer_holds() {
        let second = EC_JWK.replace(r#""kid":"ec1""#, r#""kid":"ec2""#);
        let doc = format!(r#"{{"keys":[{EC_JWK},{second}]}}"#);
        let (old, _) = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::ES256])
            .unwrap_or_else(|e| panic!("{e}"));
        let (new, _) = KeySet::from_jwks(
            format!(r#"{{"keys":[{EC_JWK}]}}"#).as_bytes(),
            &[Algorithm::ES256],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let kept = old
            .find(Some("ec1"), "ES256")
            .unwrap_or_else(|| panic!("ec1"));
        let gone = old
            .find(Some("ec2"), "ES256")
            .unwrap_or_else(|| panic!("ec2"));
        assert_eq!(old.withdraw_missing_from(&new), 1);
        assert!(gone.is_withdrawn());
        assert!(!kept.is_withdrawn());
        // The same set again withdraws nothing.
        assert_eq!(new.withdraw_missing_from(&new), 0);
    }

    #[test]
    fn algorithm_outside_the_allow_list_is_skipped() {
        let doc = format!(r#"{{"keys":[{EC_JWK}]}}"#);
        let (set, notes) = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::RS256])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(set.is_empty());
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(KeySet::from_jwks(b"nope", &[Algorithm::RS256]).is_err());
        assert!(KeySet::from_public_pem(b"nope", &[Algorithm::RS256]).is_err());
    }
}
