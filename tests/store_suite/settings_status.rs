//! Values remembered once (the first writer wins, concurrent first calls
//! agree), and the counts of the admin status page.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::sessions::Session;
use passgate::store::status::{StatusCounts, StatusRules};

use crate::fixtures::{NOW, login, session, together};

/// The first value stored under a name stays; concurrent first calls all
/// get the one that was stored, which is one of theirs.
pub async fn remember_first_agrees(store: Arc<dyn Backend>) {
    assert_eq!(store.remember_first("a", 10).await.unwrap(), 10);
    assert_eq!(store.remember_first("a", 20).await.unwrap(), 10);
    assert_eq!(
        store.remember_first("b", -5).await.unwrap(),
        -5,
        "another name"
    );

    const N: usize = 16;
    let offered = |i: usize| 1_000 + i as i64;
    let got = together(N, |i| {
        let store = Arc::clone(&store);
        async move { store.remember_first("typ_cutover", offered(i)).await }
    })
    .await;
    let got: Vec<i64> = got.into_iter().map(|v| v.expect("remembered")).collect();
    assert!(
        got.iter().all(|&v| v == got[0]),
        "every caller agrees: {got:?}"
    );
    assert!((0..N).any(|i| offered(i) == got[0]), "{got:?}");
    assert_eq!(
        store.remember_first("typ_cutover", 7).await.unwrap(),
        got[0]
    );
}

/// Live sessions, pairs under a brute-force block and throttled IPs, by the
/// rules' thresholds and expiries.
pub async fn status_counts_by_the_rules(store: Arc<dyn Backend>) {
    let rules = StatusRules {
        block_threshold: 3,
        block_expiry: 600,
        ip_threshold: 3,
        ip_regain: 100,
    };
    assert_eq!(
        store.status_counts(NOW, rules).await.unwrap(),
        StatusCounts::default()
    );

    login(&*store, "live", "auth0|u", NOW).await;
    store
        .create_session(&session("plain", "auth0|v", NOW), None, 3, NOW)
        .await
        .unwrap();
    login(&*store, "revoked", "auth0|u", NOW).await;
    store.revoke_session("revoked", NOW).await.unwrap();
    let ending = Session {
        expires_at: NOW + 10,
        ..session("ending", "auth0|u", NOW - 10)
    };
    store.create_session(&ending, None, 3, NOW).await.unwrap();

    for _ in 0..3 {
        store
            .add_login_failure("user:a", "10.0.0.1", NOW, 0)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        store
            .add_login_failure("user:b", "10.0.0.1", NOW, 0)
            .await
            .unwrap();
    }
    for _ in 0..4 {
        store
            .add_login_failure("user:c", "10.0.0.2", NOW - 300, 0)
            .await
            .unwrap();
    }
    // Threshold 3, regain 100: throttled while tat - 200 > now.
    for _ in 0..3 {
        store.add_ip_failure("10.0.0.9", NOW, 100).await.unwrap(); // tat NOW + 300
    }
    for _ in 0..2 {
        store.add_ip_failure("10.0.0.8", NOW, 100).await.unwrap(); // tat NOW + 200
    }

    let counts = store.status_counts(NOW + 1, rules).await.unwrap();
    let expected = StatusCounts {
        active_sessions: 3,
        blocked_pairs: 2,
        throttled_ips: 1,
    };
    assert_eq!(counts, expected);
    let later = store.status_counts(NOW + 10, rules).await.unwrap();
    assert_eq!(
        later.active_sessions, 2,
        "a session expiring now is not live"
    );
    assert_eq!(later.throttled_ips, 1);
    let after = store.status_counts(NOW + 350, rules).await.unwrap();
    let expected = StatusCounts {
        active_sessions: 2,
        blocked_pairs: 1,
        throttled_ips: 0,
    };
    assert_eq!(
        after, expected,
        "user:c's block ended at NOW + 300, the throttle at NOW + 100"
    );
}
