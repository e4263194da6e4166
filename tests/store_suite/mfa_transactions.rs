//! MFA transactions (by the hash of their `mfa_token`): stored, found,
//! finished once even under concurrency, their e-mail challenge, the sweep;
//! and the per-user wrong-code count, read and rewritten atomically.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::mfa::{MfaTransaction, OobChallenge};

use crate::fixtures::{NOW, add_user, mfa_transaction, together};

/// A transaction reads back as written, and finishes once.
pub async fn transactions_round_trip_and_finish_once(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let t = MfaTransaction {
        decision: r#"{"scope":"openid profile","amr":["pwd"],"ünï":"✓"}"#.into(),
        ..mfa_transaction("th", &u, NOW + 300)
    };
    store.create_transaction(&t).await.unwrap();
    assert_eq!(store.find_transaction("th").await.unwrap(), Some(t.clone()));
    assert_eq!(store.find_transaction("nope").await.unwrap(), None);
    assert!(
        store.create_transaction(&t).await.is_err(),
        "a hash is used once"
    );

    assert!(store.finish_transaction("th", NOW + 1).await.unwrap());
    assert!(
        !store.finish_transaction("th", NOW + 2).await.unwrap(),
        "once"
    );
    assert!(!store.finish_transaction("nope", NOW + 2).await.unwrap());
    let finished = store.find_transaction("th").await.unwrap();
    assert_eq!(
        finished,
        Some(MfaTransaction {
            used_at: Some(NOW + 1),
            ..t
        })
    );
}

/// Many tasks finishing one transaction at once: exactly one does.
pub async fn finish_transaction_concurrently_once(store: Arc<dyn Backend>) {
    const N: usize = 16;
    let u = add_user(&*store, "alice").await;
    store
        .create_transaction(&mfa_transaction("th", &u, NOW + 300))
        .await
        .unwrap();
    let finished = together(N, |i| {
        let store = Arc::clone(&store);
        async move { store.finish_transaction("th", NOW + i as i64).await }
    })
    .await;
    let winners: Vec<usize> = (0..N)
        .filter(|&i| matches!(finished[i], Ok(true)))
        .collect();
    assert_eq!(winners.len(), 1, "{finished:?}");
    assert!(finished.iter().all(Result::is_ok), "{finished:?}");
    let t = store.find_transaction("th").await.unwrap().expect("stored");
    assert_eq!(
        t.used_at,
        Some(NOW + winners[0] as i64),
        "the winner's time"
    );
}

/// The e-mail challenge of a transaction is recorded, and a new one replaces it.
pub async fn set_oob_replaces_the_challenge(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let t = mfa_transaction("th", &u, NOW + 300);
    store.create_transaction(&t).await.unwrap();
    store
        .create_transaction(&mfa_transaction("other", &u, NOW + 300))
        .await
        .unwrap();
    let first = OobChallenge {
        authenticator_id: "email|1".into(),
        oob_code_hash: "oob-1".into(),
        binding_hash: "bind-1".into(),
        expires_at: NOW + 120,
    };
    store.set_oob("th", &first).await.unwrap();
    let found = store.find_transaction("th").await.unwrap().expect("stored");
    assert_eq!(
        found,
        MfaTransaction {
            oob: Some(first),
            ..t.clone()
        }
    );
    let second = OobChallenge {
        authenticator_id: "email|2".into(),
        oob_code_hash: "oob-2".into(),
        binding_hash: "bind-2".into(),
        expires_at: NOW + 240,
    };
    store.set_oob("th", &second).await.unwrap();
    let found = store.find_transaction("th").await.unwrap().expect("stored");
    assert_eq!(found.oob, Some(second));
    let other = store
        .find_transaction("other")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(other.oob, None, "another transaction's challenge");
}

/// The sweep drops transactions that expired before `now`, used or not.
pub async fn sweep_transactions_drops_the_expired(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    for (hash, expires_at) in [
        ("old", NOW - 1),
        ("old-used", NOW - 1),
        ("edge", NOW),
        ("live", NOW + 300),
    ] {
        store
            .create_transaction(&mfa_transaction(hash, &u, expires_at))
            .await
            .unwrap();
    }
    store.finish_transaction("old-used", NOW - 2).await.unwrap();
    assert_eq!(store.sweep_transactions(NOW).await.unwrap(), 2);
    for (hash, kept) in [
        ("old", false),
        ("old-used", false),
        ("edge", true),
        ("live", true),
    ] {
        let found = store.find_transaction(hash).await.unwrap();
        assert_eq!(found.is_some(), kept, "{hash}");
    }
    assert_eq!(store.sweep_transactions(NOW).await.unwrap(), 0);
}

/// The wrong-code count: the update sees what is stored and its answer is
/// stored (`None` clears); concurrent updates each see the one before.
pub async fn update_failures_reads_and_writes_together(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    let seen = store.update_failures(
        &u,
        Box::new(|stored| {
            assert_eq!(stored, None, "nothing stored yet");
            Some((1, NOW))
        }),
    );
    assert_eq!(seen.await.unwrap(), Some((1, NOW)));
    assert_eq!(
        store.update_failures(&u, Box::new(|c| c)).await.unwrap(),
        Some((1, NOW))
    );
    assert_eq!(
        store
            .update_failures(&other, Box::new(|c| c))
            .await
            .unwrap(),
        None
    );

    const N: usize = 16;
    let counts = together(N, |_| {
        let (store, u) = (Arc::clone(&store), u.clone());
        async move {
            let bump = Box::new(|c: Option<(i64, i64)>| c.map(|(n, since)| (n + 1, since)));
            store.update_failures(&u, bump).await
        }
    })
    .await;
    let mut counts: Vec<i64> = counts
        .into_iter()
        .map(|c| c.expect("updated").expect("stored").0)
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..=N as i64 + 1).collect::<Vec<_>>(),
        "no update lost"
    );

    assert_eq!(
        store.update_failures(&u, Box::new(|_| None)).await.unwrap(),
        None
    );
    assert_eq!(
        store.update_failures(&u, Box::new(|c| c)).await.unwrap(),
        None,
        "cleared"
    );
}
