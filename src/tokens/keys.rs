//! One signing key: a PKCS#8 private key (RSA, P-256 or Ed25519) parsed once
//! for signing, with its public half as a JWK. The `kid` is the RFC 7638
//! thumbprint of the public key, so it follows from the key and is the same
//! on every instance and across restarts.
//!
//! Where keys come from (a folder, the store) is `key_source.rs`; which key
//! signs and which are published is `ring.rs`.

use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

pub use super::folder::generate_into;
/// The ring lives in `ring.rs`; here too for callers that import it with the key.
pub use super::ring::KeyRing;

/// Why a private key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a PEM private key.
    #[error("not a PEM private key")]
    NotPem(#[source] rustls::pki_types::pem::Error),
    /// A PEM private key, but not in PKCS#8 form.
    #[error("write the key in PKCS#8 form (BEGIN PRIVATE KEY)")]
    NotPkcs8,
    /// PKCS#8, but not of a kind passgate signs with.
    #[error("not an RSA, P-256 or Ed25519 private key")]
    UnknownType,
    /// The algorithm is not one passgate signs with.
    #[error("{0:?} keys are not supported for signing; use RS256, ES256 or EdDSA")]
    Unsupported(Algorithm),
    /// The key does not parse as a key of its algorithm.
    #[error("not a valid {0} private key")]
    Invalid(&'static str),
    /// The crypto library could not make or encode a key.
    #[error("{0} key generation failed")]
    Generate(&'static str),
    /// The public half does not make a JWK.
    #[error("building the public JWK")]
    Jwk(#[source] jsonwebtoken::errors::Error),
}

/// One signing key with its public half.
pub struct SigningKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The algorithm this key signs with (and the only one it verifies).
    pub alg: Algorithm,
    /// Private half, as jsonwebtoken takes it (tests and benches mint with it).
    pub encoding: EncodingKey,
    /// Private half, parsed once for signing (jsonwebtoken re-parses the key on every signature).
    signer: Signer,
    /// Public half.
    pub decoding: DecodingKey,
    /// Public JWK with `kid`, `use` and `alg`.
    pub jwk: serde_json::Value,
    /// The file it was read from, for a key from a folder.
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A parsed private key.
enum Signer {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .ok()?;
                Some(sig)
            }
            Signer::Ecdsa(kp) => kp.sign(&rng, message).ok().map(|s| s.as_ref().to_vec()),
            Signer::Ed25519(kp) => Some(kp.sign(message).as_ref().to_vec()),
        }
    }
}

impl SigningKey {
    /// Parse a PKCS#8 private key of `alg`, deriving its public JWK and `kid`.
    pub fn from_pkcs8(der: &[u8], alg: Algorithm) -> Result<SigningKey, KeyError> {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let pem = pem_encode("PRIVATE KEY", der);
        let (signer, encoding, mut jwk) = match alg {
            Algorithm::RS256 => {
                let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::Invalid("RSA"))?;
                let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let jwk = serde_json::json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)});
                let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|_| KeyError::Invalid("RSA"))?;
                (Signer::Rsa(kp), encoding, jwk)
            }
            Algorithm::ES256 => {
                let kp = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                )
                .map_err(|_| KeyError::Invalid("P-256"))?;
                let point = kp.public_key().as_ref();
                let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
                    return Err(KeyError::Invalid("P-256"));
                };
                let jwk =
                    serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
                let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|_| KeyError::Invalid("P-256"))?;
                (Signer::Ecdsa(kp), encoding, jwk)
            }
            Algorithm::EdDSA => {
                let kp = signature::Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| KeyError::Invalid("Ed25519"))?;
                let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())});
                let encoding = EncodingKey::from_ed_pem(pem.as_bytes())
                    .map_err(|_| KeyError::Invalid("Ed25519"))?;
                (Signer::Ed25519(kp), encoding, jwk)
            }
            other => return Err(KeyError::Unsupported(other)),
        };
        let parsed: Jwk = serde_json::from_value(jwk.clone())
            .map_err(|e| KeyError::Jwk(jsonwebtoken::errors::Error::from(e)))?;
        let kid = parsed.thumbprint(ThumbprintHash::SHA256);
        let decoding = DecodingKey::from_jwk(&parsed).map_err(KeyError::Jwk)?;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("use".into(), "sig".into());
            obj.insert("alg".into(), crate::config::jwa::alg_name(alg).into());
        }
        Ok(SigningKey {
            kid,
            alg,
            encoding,
            signer,
            decoding,
            jwk,
            path: None,
        })
    }

    /// The same key, remembering the file it came from.
    pub(super) fn with_path(mut self, path: PathBuf) -> SigningKey {
        self.path = Some(path);
        self
    }

    /// A compact JWS of `claims`, with header `alg`, `typ` and this key's `kid`.
    /// `typ` is [`super::issue::ACCESS_TOKEN_TYP`] for access tokens and
    /// [`super::issue::ID_TOKEN_TYP`] for ID tokens.
    pub fn sign_jwt(&self, typ: &str, claims: &serde_json::Value) -> Option<String> {
        let header = serde_json::json!({"alg": crate::config::jwa::alg_name(self.alg), "typ": typ, "kid": self.kid});
        let mut jwt = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?);
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?));
        let sig = self.signer.sign(jwt.as_bytes())?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Some(jwt)
    }
}

/// The PKCS#8 DER inside a PEM private key (`BEGIN PRIVATE KEY`).
pub fn pkcs8_from_pem(pem: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    match PrivateKeyDer::from_pem_slice(pem).map_err(KeyError::NotPem)? {
        PrivateKeyDer::Pkcs8(der) => Ok(Zeroizing::new(der.secret_pkcs8_der().to_vec())),
        _ => Err(KeyError::NotPkcs8),
    }
}

/// The algorithm a PKCS#8 key signs with, from its type.
pub fn pkcs8_algorithm(der: &[u8]) -> Result<Algorithm, KeyError> {
    if aws_lc_rs::rsa::KeyPair::from_pkcs8(der).is_ok() {
        Ok(Algorithm::RS256)
    } else if signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        .is_ok()
    {
        Ok(Algorithm::ES256)
    } else if signature::Ed25519KeyPair::from_pkcs8(der).is_ok() {
        Ok(Algorithm::EdDSA)
    } else {
        Err(KeyError::UnknownType)
    }
}

/// A new PKCS#8 private key for `alg` (RSA keys are 2048 bits).
pub fn generate_pkcs8(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let der = match alg {
        Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| KeyError::Generate("RSA"))?
            .as_der()
            .map_err(|_| KeyError::Generate("RSA"))?
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => {
            signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(|_| KeyError::Generate("P-256"))?
                .as_ref()
                .to_vec()
        }
        Algorithm::EdDSA => signature::Ed25519KeyPair::generate()
            .and_then(|kp| kp.to_pkcs8())
            .map_err(|_| KeyError::Generate("Ed25519"))?
            .as_ref()
            .to_vec(),
        other => return Err(KeyError::Unsupported(other)),
    };
    Ok(Zeroizing::new(der))
}

/// `der` as PEM with `label`; wiped when dropped, since it holds a private key.
pub(super) fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generate_parse_sign_verify_each_algorithm() {
        crate::tls::install_crypto_providers();
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let der = generate_pkcs8(alg).unwrap();
            assert_eq!(pkcs8_algorithm(&der).unwrap(), alg);
            let key = SigningKey::from_pkcs8(&der, alg).unwrap();
            let again = SigningKey::from_pkcs8(&der, alg).unwrap();
            assert_eq!(key.kid, again.kid, "kid is stable for {alg:?}");
            let sig = jsonwebtoken::crypto::sign(b"hello", &key.encoding, alg).unwrap_or_default();
            let ok =
                jsonwebtoken::crypto::verify(&sig, b"hello", &key.decoding, alg).unwrap_or(false);
            assert!(ok, "{alg:?} round trip");
            // passgate's own signer writes a JWS that jsonwebtoken verifies.
            let jwt = key
                .sign_jwt("at+jwt", &serde_json::json!({"sub": "x"}))
                .unwrap_or_default();
            let mut v = jsonwebtoken::Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let decoded = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key.decoding, &v);
            assert_eq!(
                decoded.map(|d| d.claims["sub"].clone()).ok(),
                Some("x".into()),
                "{alg:?} JWS"
            );
            assert_eq!(
                jsonwebtoken::decode_header(&jwt).ok().and_then(|h| h.kid),
                Some(key.kid.clone())
            );
            assert_eq!(key.jwk["alg"], crate::config::jwa::alg_name(alg));
            // PEM round trip.
            let pem = pem_encode("PRIVATE KEY", &der);
            assert_eq!(*pkcs8_from_pem(pem.as_bytes()).unwrap(), *der);
        }
    }

    #[test]
    fn unusable_keys_say_why() {
        crate::tls::install_crypto_providers();
        assert!(matches!(
            pkcs8_from_pem(b"not a key"),
            Err(KeyError::NotPem(_))
        ));
        let rsa_pkcs1 = pem_encode("RSA PRIVATE KEY", b"\x30\x03\x02\x01\x00");
        assert!(matches!(
            pkcs8_from_pem(rsa_pkcs1.as_bytes()),
            Err(KeyError::NotPkcs8)
        ));
        assert!(matches!(
            pkcs8_algorithm(b"\x30\x00"),
            Err(KeyError::UnknownType)
        ));
        let es = generate_pkcs8(Algorithm::ES256).unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8(&es, Algorithm::EdDSA),
            Err(KeyError::Invalid("Ed25519"))
        ));
        assert!(matches!(
            generate_pkcs8(Algorithm::HS256),
            Err(KeyError::Unsupported(Algorithm::HS256))
        ));
    }
}
