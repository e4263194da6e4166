//! The store's encryption key: secrets at rest (TOTP seeds; the PostgreSQL
//! store's signing keys) are sealed with AES-256-GCM through aws-lc-rs, so a
//! copied database alone does not leak them. The key lives outside the
//! database: `[store] encryption_key_file` (generated on first start when
//! absent, mode 0600) or `encryption_key_env`; 64 hex digits either way.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`; the
//! caller's context (e.g. the user and authenticator ids) is bound as
//! associated data, so a sealed value moved to another row does not open.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

use crate::config::EncryptionKeySource;

/// What can go wrong with the key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key is not 64 hex digits.
    #[error("{0}: the key must be 64 hex digits (a 256-bit key)")]
    BadKey(String),
    /// A sealed value did not open (another key, another row, or damaged).
    #[error("a sealed value does not open with this store key")]
    Open,
    /// The crypto library refused (no randomness).
    #[error("sealing failed")]
    Seal,
}

/// The store's key. `Debug` never shows it.
pub struct StoreKey(RandomizedNonceKey);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// Load the key from where the config says; a missing key file is
    /// generated (and the event logged, without the key).
    pub fn load(source: &EncryptionKeySource) -> Result<StoreKey, SealError> {
        match source {
            EncryptionKeySource::Env { name, value } => {
                Self::from_hex(value.expose(), &format!("${name}"))
            }
            EncryptionKeySource::File(path) => Self::load_file(path),
        }
    }

    fn load_file(path: &Path) -> Result<StoreKey, SealError> {
        let io = |source| SealError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SealError::Seal)?;
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &format!("{hex}\n")).map_err(io)?;
                tracing::warn!(path = %path.display(), "generated the store encryption key; back it up beside the database");
                Self::from_hex(&hex, &path.display().to_string())
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key from 64 hex digits; `what` names the source in errors.
    pub fn from_hex(text: &str, what: &str) -> Result<StoreKey, SealError> {
        let t = text.trim();
        if t.len() != 64 {
            return Err(SealError::BadKey(what.to_string()));
        }
        let bytes: Option<Vec<u8>> = (0..32)
            .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let bytes = bytes.ok_or_else(|| SealError::BadKey(what.to_string()))?;
        RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map(StoreKey)
            .map_err(|_| SealError::BadKey(what.to_string()))
    }

    /// Seal `plain`, bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let mut body = plain.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Open a value [`StoreKey::seal`] made with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let source = EncryptionKeySource::File(dir.path().join("k/store.key"));
        let key = StoreKey::load(&source).unwrap();
        let sealed = key.seal(b"seed", "user|a").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"seed"));
        assert_eq!(key.open(&sealed, "user|a").unwrap(), b"seed");
        assert!(key.open(&sealed, "user|b").is_err(), "another row");
        // The file is kept: a second load is the same key.
        let again = StoreKey::load(&source).unwrap();
        assert_eq!(again.open(&sealed, "user|a").unwrap(), b"seed");
        let other = StoreKey::from_hex(&"11".repeat(32), "t").unwrap();
        assert!(other.open(&sealed, "user|a").is_err(), "another key");
        assert!(StoreKey::from_hex("abc", "t").is_err());
        assert!(format!("{key:?}").contains("redacted"));
    }
}
