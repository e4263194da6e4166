//! The store key source: signing keys in the store (the PostgreSQL backend,
//! so every instance signs with the same keys), their PKCS#8 sealed with the
//! store key (`store/seal.rs`) under the context `signing-key:<kid>`: a
//! database copied without the key holds no usable private key, and a
//! sealed key moved to another row does not open.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use super::key_source::{KeySource, KeySourceError, StoredKey};
use crate::config::jwa::alg_name;
use crate::store::keys::{KeyStore, SealedKey};
use crate::store::seal::StoreKey;

/// Signing keys in the store, sealed with `seal`.
#[derive(Debug, Clone)]
pub struct StoreKeys {
    store: Arc<dyn KeyStore>,
    seal: Arc<StoreKey>,
}

impl StoreKeys {
    /// The keys in `store`, sealed with `seal`.
    pub fn new(store: Arc<dyn KeyStore>, seal: Arc<StoreKey>) -> Self {
        Self { store, seal }
    }

    fn seal(&self, key: &StoredKey) -> Result<SealedKey, KeySourceError> {
        let private_sealed = self
            .seal
            .seal(&key.pkcs8, &context(&key.kid))
            .map_err(|source| KeySourceError::Sealed {
                kid: key.kid.clone(),
                source,
            })?;
        Ok(SealedKey {
            kid: key.kid.clone(),
            alg: alg_name(key.alg).to_string(),
            private_sealed,
            created_at: key.created_at,
            signs_from: key.signs_from,
        })
    }

    fn open(&self, key: SealedKey) -> Result<StoredKey, KeySourceError> {
        let alg = Algorithm::from_str(&key.alg).map_err(|_| KeySourceError::Algorithm {
            kid: key.kid.clone(),
            alg: key.alg.clone(),
        })?;
        let pkcs8 = self
            .seal
            .open(&key.private_sealed, &context(&key.kid))
            .map_err(|source| KeySourceError::Sealed {
                kid: key.kid.clone(),
                source,
            })?;
        Ok(StoredKey {
            kid: key.kid,
            alg,
            pkcs8: Zeroizing::new(pkcs8),
            created_at: key.created_at,
            signs_from: key.signs_from,
        })
    }

    fn open_all(&self, keys: Vec<SealedKey>) -> Result<Vec<StoredKey>, KeySourceError> {
        keys.into_iter().map(|k| self.open(k)).collect()
    }
}

/// What a key's seal is bound to.
fn context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

#[async_trait]
impl KeySource for StoreKeys {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, KeySourceError> {
        let sealed = self
            .store
            .signing_keys()
            .await
            .map_err(KeySourceError::Store)?;
        self.open_all(sealed)
    }

    async fn add_signing_key(&self, key: StoredKey) -> Result<(), KeySourceError> {
        let sealed = self.seal(&key)?;
        self.store
            .add_signing_key(&sealed)
            .await
            .map_err(KeySourceError::Store)
    }

    async fn first_signing_key(
        &self,
        candidate: StoredKey,
    ) -> Result<Vec<StoredKey>, KeySourceError> {
        let sealed = self.seal(&candidate)?;
        let kept = self
            .store
            .first_signing_key(&sealed)
            .await
            .map_err(KeySourceError::Store)?;
        self.open_all(kept)
    }

    fn describe(&self) -> String {
        "the store".to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::SqliteStore;
    use crate::tokens::key_source::new_key;

    fn seal(hex: &str) -> Arc<StoreKey> {
        Arc::new(StoreKey::from_hex(&hex.repeat(32), "test").unwrap())
    }

    #[tokio::test]
    async fn keys_are_sealed_at_rest_and_come_back_whole() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let source = StoreKeys::new(Arc::new(SqliteStore::open(&path).unwrap()), seal("ab"));
        let key = new_key(Algorithm::ES256, 1_000, 1_305).unwrap();
        source.add_signing_key(key.clone()).await.unwrap();

        // What is on disk is not the private key.
        let raw: Vec<u8> = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT private_sealed FROM signing_keys WHERE kid = ?1",
                [&key.kid],
                |r| r.get(0),
            )
            .unwrap();
        assert_ne!(raw, *key.pkcs8);
        assert!(
            !raw.windows(16)
                .any(|w| key.pkcs8.windows(16).any(|p| p == w)),
            "no stretch of the PKCS#8 is stored in the clear"
        );

        let got = source.signing_keys().await.unwrap();
        assert_eq!(got.len(), 1);
        let k = &got[0];
        assert_eq!(
            (&k.kid, k.alg, k.created_at, k.signs_from),
            (&key.kid, Algorithm::ES256, 1_000, 1_305)
        );
        assert_eq!(*k.pkcs8, *key.pkcs8);
    }

    #[tokio::test]
    async fn another_store_key_fails_clearly() {
        crate::tls::install_crypto_providers();
        let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::in_memory().unwrap());
        let key = new_key(Algorithm::EdDSA, 1, 1).unwrap();
        StoreKeys::new(Arc::clone(&store), seal("ab"))
            .add_signing_key(key.clone())
            .await
            .unwrap();
        let err = StoreKeys::new(store, seal("cd"))
            .signing_keys()
            .await
            .unwrap_err();
        assert!(matches!(&err, KeySourceError::Sealed { kid, .. } if *kid == key.kid));
        let text = crate::telemetry::ErrorChain(&err).to_string();
        assert!(text.contains("does not open with this store key"), "{text}");
        assert!(text.contains("encryption_key"), "{text}");
    }

    #[tokio::test]
    async fn a_sealed_key_moved_to_another_kid_does_not_open() {
        crate::tls::install_crypto_providers();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let source = StoreKeys::new(store.clone(), seal("ab"));
        let key = new_key(Algorithm::ES256, 1, 1).unwrap();
        let mut sealed = source.seal(&key).unwrap();
        sealed.kid = "someone-else".into();
        store.add_signing_key(&sealed).await.unwrap();
        assert!(matches!(
            source.signing_keys().await,
            Err(KeySourceError::Sealed { .. })
        ));
    }

    /// Two instances starting on one empty store: one key, the same for both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_keys_make_one() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let a = StoreKeys::new(Arc::new(SqliteStore::open(&path).unwrap()), seal("ab"));
        let b = StoreKeys::new(Arc::new(SqliteStore::open(&path).unwrap()), seal("ab"));
        let (ka, kb) = (
            new_key(Algorithm::ES256, 5, 5).unwrap(),
            new_key(Algorithm::ES256, 5, 5).unwrap(),
        );
        let (ra, rb) = tokio::join!(a.first_signing_key(ka), b.first_signing_key(kb));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.len(), 1);
        assert_eq!(rb.len(), 1);
        assert_eq!(ra[0].kid, rb[0].kid);
        assert_eq!(a.signing_keys().await.unwrap().len(), 1);
    }
}
