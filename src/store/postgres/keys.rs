//! Signing keys in PostgreSQL, their private halves sealed by `tokens/`
//! before they arrive (see `store/keys.rs`). Every instance reads the same
//! keys; the first key of an empty database is made once, whichever
//! instances start together.

use tokio_postgres::Row;

use super::errors::pg;
use super::{LockSpace, PgStore, begin, commit, lock};
use crate::store::StoreError;
use crate::store::keys::{KeyStore, SealedKey};

const COLUMNS: &str = "kid, alg, private_sealed, created_at, signs_from";

fn key(r: &Row) -> Result<SealedKey, StoreError> {
    Ok(SealedKey {
        kid: r.try_get(0).map_err(pg)?,
        alg: r.try_get(1).map_err(pg)?,
        private_sealed: r.try_get(2).map_err(pg)?,
        created_at: r.try_get(3).map_err(pg)?,
        signs_from: r.try_get(4).map_err(pg)?,
    })
}

const SELECT_ALL: &str = "SELECT kid, alg, private_sealed, created_at, signs_from FROM signing_keys ORDER BY created_at, kid";

#[async_trait::async_trait]
impl KeyStore for PgStore {
    async fn signing_keys(&self) -> Result<Vec<SealedKey>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(SELECT_ALL, &[]).await.map_err(pg)?;
        rows.iter().map(key).collect()
    }

    async fn add_signing_key(&self, k: &SealedKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
                &[
                    &k.kid,
                    &k.alg,
                    &k.private_sealed,
                    &k.created_at,
                    &k.signs_from,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn first_signing_key(&self, candidate: &SealedKey) -> Result<Vec<SealedKey>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // "Empty, so insert" under one lock: under READ COMMITTED a second
        // instance would otherwise count zero too and insert its own.
        lock(&tx, LockSpace::SigningKeys, "first").await?;
        let stored: i64 = tx
            .query_one("SELECT COUNT(*) FROM signing_keys", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if stored == 0 {
            let k = candidate;
            tx.execute(
                &format!("INSERT INTO signing_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
                &[
                    &k.kid,
                    &k.alg,
                    &k.private_sealed,
                    &k.created_at,
                    &k.signs_from,
                ],
            )
            .await
            .map_err(pg)?;
        }
        let rows = tx.query(SELECT_ALL, &[]).await.map_err(pg)?;
        let keys = rows.iter().map(key).collect::<Result<Vec<_>, _>>()?;
        commit(tx).await?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::postgres::testing::TestDb;

    fn sealed(kid: &str, created_at: i64) -> SealedKey {
        SealedKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_sealed: vec![1, 2, 3],
            created_at,
            signs_from: created_at,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_starting_together_make_one_first_key() {
        let Some(db) = TestDb::create().await else {
            return;
        };
        let (a, b) = (db.store().await, db.store().await);
        let (ka, kb) = (sealed("a", 1), sealed("b", 1));
        let (x, y) = tokio::join!(a.first_signing_key(&ka), b.first_signing_key(&kb));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.len(), 1);
        assert_eq!(x, y, "both instances use the one key that was kept");
        a.add_signing_key(&sealed("c", 2)).await.unwrap();
        assert!(matches!(
            a.add_signing_key(&sealed("c", 3)).await,
            Err(StoreError::Conflict(_))
        ));
        let kids: Vec<String> = b
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1], "c");
    }
}
