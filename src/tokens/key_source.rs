//! Where passgate's signing keys live (docs/architecture.md, "Signing
//! keys"): a [`KeySource`] holds every key with its dates, and the gateway
//! reads it again every few seconds (`live.rs`). Two sources: a folder of
//! PEM files (`folder.rs`, `[issuer] signing_keys`, SQLite deployments) and
//! the store, sealed with the store key (`stored.rs`, PostgreSQL, so every
//! instance shares them). `gateway/auth.rs` picks one.
//!
//! Rotation ([`rotate`]) adds a key that is published at once and signs
//! only after [`rotation_delay`], so verifiers that cached the JWKS already
//! hold it when its first tokens appear.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use super::keys::{KeyError, SigningKey, generate_pkcs8};
use super::live::REFRESH_EVERY;
use super::ring::{JWKS_MAX_AGE, RingError};
use crate::store::StoreError;
use crate::store::seal::SealError;
use crate::tasks::{Unfinished, run_blocking};

/// One signing key as a source holds it.
#[derive(Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// The PKCS#8 private key (wiped when dropped).
    pub pkcs8: Zeroizing<Vec<u8>>,
    /// When it was made (seconds since the epoch).
    pub created_at: i64,
    /// When it starts signing (seconds since the epoch); it is published
    /// from the moment it exists.
    pub signs_from: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// Why a key source could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// A file or folder of the folder source.
    #[error("{}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A key file that is not a usable key.
    #[error("{}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The store failed.
    #[error("the signing keys in the store")]
    Store(#[source] StoreError),
    /// A stored key does not open with the store key: another
    /// `[store] encryption_key`, or a damaged row.
    #[error(
        "signing key {kid} does not open with this store key (is [store] encryption_key the one the keys were stored with?)"
    )]
    Sealed {
        /// The key.
        kid: String,
        /// The sealing error.
        #[source]
        source: SealError,
    },
    /// A stored key names an algorithm passgate does not sign with.
    #[error("signing key {kid}: unknown algorithm {alg:?}")]
    Algorithm {
        /// The key.
        kid: String,
        /// The stored name.
        alg: String,
    },
    /// Making a key failed.
    #[error("making a signing key")]
    Key(#[source] KeyError),
    /// The blocking work of a source did not finish.
    #[error("reading or writing signing keys")]
    Task(#[source] Unfinished),
}

/// Why the keys of a source could not be put in use.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the source failed.
    #[error("reading the signing keys")]
    Source(#[from] KeySourceError),
    /// The keys do not make a ring (none, or one does not parse).
    #[error("the signing keys")]
    Ring(#[from] RingError),
}

/// Where signing keys are kept.
#[async_trait]
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// Every key held, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, KeySourceError>;
    /// Keep a new key.
    async fn add_signing_key(&self, key: StoredKey) -> Result<(), KeySourceError>;
    /// Keep `candidate` only if the source holds no key yet, then return
    /// every key held. Atomic: of several instances starting on an empty
    /// source, one candidate is kept and all of them get that one.
    async fn first_signing_key(
        &self,
        candidate: StoredKey,
    ) -> Result<Vec<StoredKey>, KeySourceError>;
    /// Where the keys are, for messages (a folder, "the store").
    fn describe(&self) -> String;
}

/// A new key of `alg`, made at `created_at`, signing from `signs_from`.
pub fn new_key(
    alg: Algorithm,
    created_at: i64,
    signs_from: i64,
) -> Result<StoredKey, KeySourceError> {
    let pkcs8 = generate_pkcs8(alg).map_err(KeySourceError::Key)?;
    let kid = SigningKey::from_pkcs8(&pkcs8, alg)
        .map_err(KeySourceError::Key)?
        .kid;
    Ok(StoredKey {
        kid,
        alg,
        pkcs8,
        created_at,
        signs_from,
    })
}

/// How long a rotated key waits before it signs: the JWKS cache lifetime
/// (a verifier that fetched the JWKS just before the key existed holds that
/// copy this long), plus one key refresh (the time every instance may take
/// to publish the key).
pub fn rotation_delay() -> Duration {
    JWKS_MAX_AGE + REFRESH_EVERY
}

/// What [`rotate`] made.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new key's `kid`.
    pub kid: String,
    /// Its algorithm.
    pub alg: Algorithm,
    /// When it starts signing (seconds since the epoch).
    pub signs_from: i64,
}

/// Add a new key of `alg` to `source`: published at once, signing from
/// `now` + [`rotation_delay`], or at once with `at_once` (an emergency:
/// verifiers holding a cached JWKS refuse its tokens until they fetch the
/// JWKS again).
pub async fn rotate(
    source: &dyn KeySource,
    alg: Algorithm,
    now: i64,
    at_once: bool,
) -> Result<Rotated, KeySourceError> {
    let delay = i64::try_from(rotation_delay().as_secs()).unwrap_or(i64::MAX);
    let signs_from = if at_once {
        now
    } else {
        now.saturating_add(delay)
    };
    // Newest by `created_at` (whole seconds) is what signs among keys whose
    // time has come: a key made in the same second as the newest must still
    // sort after it, or `rotate` then `rotate --now` within a second would
    // leave the older key signing.
    let newest = source
        .signing_keys()
        .await?
        .iter()
        .map(|k| k.created_at)
        .max();
    let created_at = match newest {
        Some(newest) if newest >= now => newest.saturating_add(1),
        _ => now,
    };
    let key = run_blocking(move || new_key(alg, created_at, signs_from))
        .await
        .map_err(KeySourceError::Task)??;
    let rotated = Rotated {
        kid: key.kid.clone(),
        alg,
        signs_from,
    };
    source.add_signing_key(key).await?;
    Ok(rotated)
}
