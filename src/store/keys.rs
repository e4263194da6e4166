//! passgate's own signing keys kept in the store (docs/architecture.md,
//! "Signing keys"): the PostgreSQL backend keeps them here so every instance
//! signs with the same keys; SQLite implements the trait too (passgate on
//! SQLite keeps its keys in `[issuer] signing_keys`, but the shared store
//! tests run against this implementation).
//!
//! The store sees only sealed private keys: `tokens/` seals the PKCS#8 with
//! the store key before it gets here and opens it after, so a copied
//! database alone does not hold a usable key.

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::StoreError;
use super::sqlite::SqliteDb;
use super::sqlite_store::SqliteStore;

/// Migration 9: signing keys, their private halves sealed.
pub const SCHEMA: &str = "CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_sealed BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        signs_from INTEGER NOT NULL
    );";

/// One stored signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// The PKCS#8 private key, sealed with the store key (context
    /// `signing-key:<kid>`).
    pub private_sealed: Vec<u8>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// When the key starts signing (seconds since the epoch); it is
    /// published from the moment it is stored.
    pub signs_from: i64,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// Persistence of signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every stored key, oldest first (by `created_at`, then `kid`).
    async fn signing_keys(&self) -> Result<Vec<SealedKey>, StoreError>;
    /// Store a new key; `Conflict` when its `kid` is stored already.
    async fn add_signing_key(&self, key: &SealedKey) -> Result<(), StoreError>;
    /// Store `candidate` only if the store holds no key yet, then return
    /// every stored key, oldest first. "Empty, so insert" is one atomic
    /// step: of instances starting together on an empty store, exactly one
    /// candidate is kept and every caller gets that one.
    async fn first_signing_key(&self, candidate: &SealedKey) -> Result<Vec<SealedKey>, StoreError>;
}

// === impl SqliteDb ===

const COLUMNS: &str = "kid, alg, private_sealed, created_at, signs_from";

fn row(r: &Row<'_>) -> rusqlite::Result<SealedKey> {
    Ok(SealedKey {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_sealed: r.get(2)?,
        created_at: r.get(3)?,
        signs_from: r.get(4)?,
    })
}

fn all(c: &rusqlite::Connection) -> rusqlite::Result<Vec<SealedKey>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM signing_keys ORDER BY created_at, kid"
    ))?;
    stmt.query_map([], row)?.collect()
}

fn insert(c: &rusqlite::Connection, k: &SealedKey) -> rusqlite::Result<usize> {
    c.execute(
        &format!("INSERT INTO signing_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
        params![k.kid, k.alg, k.private_sealed, k.created_at, k.signs_from],
    )
}

impl SqliteDb {
    pub(crate) fn signing_keys(&self) -> Result<Vec<SealedKey>, StoreError> {
        self.with(all)
    }

    pub(crate) fn add_signing_key(&self, key: &SealedKey) -> Result<(), StoreError> {
        self.in_tx(|tx| insert(tx, key).map(drop))
    }

    pub(crate) fn first_signing_key(
        &self,
        candidate: &SealedKey,
    ) -> Result<Vec<SealedKey>, StoreError> {
        // BEGIN IMMEDIATE: the write lock is held from the count on, so a
        // second process waits here and then finds the first one's key.
        self.in_write_tx(|tx| {
            let stored: i64 =
                tx.query_row("SELECT COUNT(*) FROM signing_keys", [], |r| r.get(0))?;
            if stored == 0 {
                insert(tx, candidate)?;
            }
            all(tx)
        })
    }
}

// === impl SqliteStore ===

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SealedKey>, StoreError> {
        self.lanes.read(|db| db.signing_keys()).await
    }
    async fn add_signing_key(&self, key: &SealedKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.lanes.write(move |db| db.add_signing_key(&key)).await
    }
    async fn first_signing_key(&self, candidate: &SealedKey) -> Result<Vec<SealedKey>, StoreError> {
        let candidate = candidate.clone();
        self.lanes
            .write(move |db| db.first_signing_key(&candidate))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use super::*;

    fn key(kid: &str, created_at: i64) -> SealedKey {
        SealedKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_sealed: vec![1, 2, 3, kid.len() as u8],
            created_at,
            signs_from: created_at + 300,
        }
    }

    #[tokio::test]
    async fn keys_come_back_oldest_first_and_a_kid_is_stored_once() {
        let s = SqliteStore::in_memory().unwrap();
        assert!(s.signing_keys().await.unwrap().is_empty());
        s.add_signing_key(&key("b", 20)).await.unwrap();
        s.add_signing_key(&key("a", 10)).await.unwrap();
        s.add_signing_key(&key("c", 20)).await.unwrap();
        let got = s.signing_keys().await.unwrap();
        assert_eq!(got, vec![key("a", 10), key("b", 20), key("c", 20)]);
        assert!(matches!(
            s.add_signing_key(&key("a", 99)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.signing_keys().await.unwrap().len(), 3, "nothing changed");
    }

    #[tokio::test]
    async fn the_first_key_is_kept_only_on_an_empty_store() {
        let s = SqliteStore::in_memory().unwrap();
        assert_eq!(
            s.first_signing_key(&key("first", 1)).await.unwrap(),
            vec![key("first", 1)]
        );
        assert_eq!(
            s.first_signing_key(&key("second", 2)).await.unwrap(),
            vec![key("first", 1)],
            "a store with a key keeps it and ignores the candidate"
        );
    }

    /// Two processes starting on one empty store: two connections (each
    /// store has its own writer thread), many candidates at once, one key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_keys_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let a = Arc::new(SqliteStore::open(&path).unwrap());
        let b = Arc::new(SqliteStore::open(&path).unwrap());
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { s.first_signing_key(&key(&format!("k{i}"), i)).await })
            })
            .collect();
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap().unwrap());
        }
        assert_eq!(answers[0].len(), 1, "one key: {answers:?}");
        assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
        assert_eq!(a.signing_keys().await.unwrap(), answers[0]);
    }
}
