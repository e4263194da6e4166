//! Signing keys: PEM (PKCS#8) private keys in `[issuer] signing_keys`, one per
//! file, generated on first start when the folder holds none. The `kid` is the
//! RFC 7638 thumbprint of the public key, so it is derived from the key and
//! stable across restarts. Every key in the folder is published in the JWKS
//! (so tokens signed before a rotation stay valid); the newest signs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

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
    /// The file it was read from.
    pub path: PathBuf,
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
    fn from_pkcs8(der: &[u8], alg: Algorithm) -> Option<Signer> {
        match alg {
            Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                .ok()
                .map(Signer::Rsa),
            Algorithm::ES256 => signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )
            .ok()
            .map(Signer::Ecdsa),
            Algorithm::EdDSA => signature::Ed25519KeyPair::from_pkcs8(der)
                .ok()
                .map(Signer::Ed25519),
            _ => None,
        }
    }

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

/// All signing keys of the issuer, oldest first; the last one signs.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
}

impl KeyRing {
    /// Every key, oldest first.
    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &Arc<SigningKey> {
        // A ring is never empty: `load_or_generate` makes one key at least.
        &self.keys[self.keys.len() - 1]
    }

    /// `{"keys": [...]}` with every public key.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Read every key in `dir`, generating one with `alg` when there is none.
    pub fn load_or_generate(dir: &Path, alg: Algorithm) -> anyhow::Result<KeyRing> {
        let mut keys = load_dir(dir)?;
        if keys.is_empty() {
            let key = generate_into(dir, alg)?;
            tracing::warn!(kid = %key.kid, dir = %dir.display(), "generated a new signing key");
            keys.push(Arc::new(key));
        }
        Ok(KeyRing { keys })
    }

    /// Read every key in `dir`; fails when there is none.
    pub fn load(dir: &Path) -> anyhow::Result<KeyRing> {
        let keys = load_dir(dir)?;
        if keys.is_empty() {
            bail!("{} holds no signing key", dir.display());
        }
        Ok(KeyRing { keys })
    }
}

/// Generate a new key with `alg` into `dir` (created if missing); it becomes the signing key.
pub fn generate_into(dir: &Path, alg: Algorithm) -> anyhow::Result<SigningKey> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pkcs8 = generate_pkcs8(alg)?;
    let pem = pem_encode("PRIVATE KEY", &pkcs8);
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    // Names sort by creation time, so the newest key is the last one read.
    let mut n = 0;
    let mut path = dir.join(format!("{now:012}-{n:03}-{}.pem", file_tag(alg)));
    while path.exists() {
        n += 1;
        path = dir.join(format!("{now:012}-{n:03}-{}.pem", file_tag(alg)));
    }
    crate::tls::write_private(&path, pem.as_bytes())?;
    from_pkcs8(&pkcs8, alg, path)
}

/// The algorithm's tag in a generated key's file name.
fn file_tag(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "es256",
        Algorithm::EdDSA => "eddsa",
        _ => "rs256",
    }
}

fn generate_pkcs8(alg: Algorithm) -> anyhow::Result<Vec<u8>> {
    Ok(match alg {
        Algorithm::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
            kp.as_der()
                .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?
                .as_ref()
                .to_vec()
        }
        Algorithm::ES256 => {
            signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(|_| anyhow::anyhow!("ECDSA key generation failed"))?
                .as_ref()
                .to_vec()
        }
        Algorithm::EdDSA => signature::Ed25519KeyPair::generate()
            .and_then(|kp| kp.to_pkcs8())
            .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
        other => bail!("{other:?} keys cannot be generated; use RS256, ES256 or EdDSA"),
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn load_dir(dir: &Path) -> anyhow::Result<Vec<Arc<SigningKey>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| load_file(&p).map(Arc::new))
        .collect()
}

/// Read one PEM private key; its algorithm follows from the key type.
pub fn load_file(path: &Path) -> anyhow::Result<SigningKey> {
    let key = PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("{}: not a PEM private key", path.display()))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key else {
        bail!(
            "{}: write the key in PKCS#8 form (BEGIN PRIVATE KEY)",
            path.display()
        );
    };
    let der = pkcs8.secret_pkcs8_der();
    let alg = if aws_lc_rs::rsa::KeyPair::from_pkcs8(der).is_ok() {
        Algorithm::RS256
    } else if signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        .is_ok()
    {
        Algorithm::ES256
    } else if signature::Ed25519KeyPair::from_pkcs8(der).is_ok() {
        Algorithm::EdDSA
    } else {
        bail!(
            "{}: not an RSA, P-256 or Ed25519 private key",
            path.display()
        );
    };
    from_pkcs8(der, alg, path.to_path_buf())
}

fn from_pkcs8(der: &[u8], alg: Algorithm, path: PathBuf) -> anyhow::Result<SigningKey> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let pem = pem_encode("PRIVATE KEY", der);
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    let (encoding, mut jwk) = match alg {
        Algorithm::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|_| bad("bad RSA key"))?;
            let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
            (
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| bad("bad RSA key"))?,
                serde_json::json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)}),
            )
        }
        Algorithm::ES256 => {
            let kp = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )
            .map_err(|_| bad("bad P-256 key"))?;
            let point = kp.public_key().as_ref();
            if point.len() != 65 {
                bail!("{}: unexpected P-256 public key encoding", path.display());
            }
            (
                EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| bad("bad P-256 key"))?,
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
            )
        }
        Algorithm::EdDSA => {
            let kp =
                signature::Ed25519KeyPair::from_pkcs8(der).map_err(|_| bad("bad Ed25519 key"))?;
            (
                EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| bad("bad Ed25519 key"))?,
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())}),
            )
        }
        other => bail!("{other:?} is not supported for signing"),
    };
    let parsed: Jwk = serde_json::from_value(jwk.clone()).context("building the public JWK")?;
    let kid = parsed.thumbprint(ThumbprintHash::SHA256);
    let decoding = DecodingKey::from_jwk(&parsed).map_err(|e| bad(&format!("public key: {e}")))?;
    if let Some(obj) = jwk.as_object_mut() {
        obj.insert("kid".into(), kid.clone().into());
        obj.insert("use".into(), "sig".into());
        obj.insert("alg".into(), format!("{alg:?}").into());
    }
    let signer =
        Signer::from_pkcs8(der, alg).ok_or_else(|| bad("cannot parse the key for signing"))?;
    Ok(SigningKey {
        kid,
        alg,
        encoding,
        signer,
        decoding,
        jwk,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_sign_verify_each_algorithm() {
        crate::tls::install_crypto_providers();
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let ring = KeyRing::load_or_generate(dir.path(), alg)
                .unwrap_or_else(|e| panic!("{alg:?}: {e:#}"));
            let again = KeyRing::load(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(
                ring.current().kid,
                again.current().kid,
                "kid is stable for {alg:?}"
            );
            let key = again.current();
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
            assert_eq!(
                ring.jwks()["keys"][0]["kid"],
                serde_json::Value::from(key.kid.clone())
            );
        }
    }

    #[test]
    fn rotation_keeps_old_keys_and_signs_with_the_new_one() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = KeyRing::load_or_generate(dir.path(), Algorithm::ES256)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let new = generate_into(dir.path(), Algorithm::ES256).unwrap_or_else(|e| panic!("{e:#}"));
        let ring = KeyRing::load(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.current().kid, new.kid);
        assert_eq!(ring.keys()[0].kid, first.current().kid);
    }
}
