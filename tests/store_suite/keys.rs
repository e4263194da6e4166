//! Signing keys: published oldest first, a `kid` stored once, and the first
//! key of an empty store made once however many instances start together.

use std::sync::Arc;

use passgate::store::keys::SealedKey;
use passgate::store::{Backend, StoreError};

use super::fixtures::together;

fn sealed(kid: &str, created_at: i64) -> SealedKey {
    SealedKey {
        kid: kid.into(),
        alg: "ES256".into(),
        private_sealed: vec![7; 48],
        created_at,
        signs_from: created_at + 300,
    }
}

pub async fn signing_keys_oldest_first_each_kid_once(store: Arc<dyn Backend>) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    store.add_signing_key(&sealed("late", 20)).await.unwrap();
    store.add_signing_key(&sealed("early", 10)).await.unwrap();
    assert!(matches!(
        store.add_signing_key(&sealed("early", 30)).await,
        Err(StoreError::Conflict(_))
    ));
    let keys = store.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["early", "late"]);
    assert_eq!(keys[0], sealed("early", 10), "stored as given");
    // With keys stored, a "first" key is not added.
    let after = store.first_signing_key(&sealed("third", 40)).await.unwrap();
    assert_eq!(after.len(), 2);
}

pub async fn the_first_key_is_made_once(store: Arc<dyn Backend>) {
    let answers = together(8, |i| {
        let store = Arc::clone(&store);
        async move {
            store
                .first_signing_key(&sealed(&format!("candidate-{i}"), 1))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(answers[0].len(), 1);
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "every caller got the one kept key"
    );
    assert_eq!(store.signing_keys().await.unwrap(), answers[0]);
}
