//! Attack-protection counters: failure streaks per (identifier, IP), which
//! restart after a quiet period and count every concurrent failure, and
//! suspicious-IP buckets (GCRA: `tat = max(tat, now) + regain`).

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::protect::{AttemptState, FailureStreak};

use crate::fixtures::{NOW, together};

const IP: &str = "192.0.2.1";
const IP2: &str = "2001:db8::/64";

fn streak(failures: u32, last_failure: i64) -> Option<FailureStreak> {
    Some(FailureStreak {
        failures,
        last_failure,
    })
}

/// A streak counts consecutive failures of one pair, and starts again at 1
/// when its last failure is before `streak_starts_after` (not at it).
pub async fn login_failures_count_and_restart(store: Arc<dyn Backend>) {
    let empty = store.attempt_state("user:auth0|a", IP).await.unwrap();
    assert_eq!(empty, AttemptState::default());
    let add = |ip: &'static str, now: i64, starts_after: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .add_login_failure("user:auth0|a", ip, now, starts_after)
                .await
                .unwrap()
        }
    };
    assert_eq!(add(IP, NOW, NOW - 100).await, 1);
    assert_eq!(add(IP, NOW + 50, NOW - 50).await, 2);
    assert_eq!(
        add(IP, NOW + 60, NOW + 50).await,
        3,
        "the last failure at the limit still counts"
    );
    assert_eq!(
        add(IP, NOW + 200, NOW + 100).await,
        1,
        "quiet since before the limit: a new streak"
    );
    assert_eq!(add(IP2, NOW + 200, 0).await, 1, "another IP: another pair");
    let other = store
        .add_login_failure("name:bob", IP, NOW + 200, 0)
        .await
        .unwrap();
    assert_eq!(other, 1, "another identifier: another pair");

    let state = store.attempt_state("user:auth0|a", IP).await.unwrap();
    assert_eq!(
        state,
        AttemptState {
            streak: streak(1, NOW + 200),
            ip_tat: None
        }
    );
    let state = store
        .attempt_state("user:auth0|a", "198.51.100.7")
        .await
        .unwrap();
    assert_eq!(state.streak, None);
}

/// Failures of one pair from many tasks at once are each counted: the
/// counts returned are 1..=N, once each.
pub async fn concurrent_login_failures_all_count(store: Arc<dyn Backend>) {
    const N: usize = 32;
    let counts = together(N, |_| {
        let store = Arc::clone(&store);
        async move {
            store
                .add_login_failure("name:alice", IP, NOW, NOW - 900)
                .await
        }
    })
    .await;
    let mut counts: Vec<u32> = counts.into_iter().map(|c| c.expect("counted")).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=N as u32).collect::<Vec<_>>());
    let state = store.attempt_state("name:alice", IP).await.unwrap();
    assert_eq!(state.streak, streak(N as u32, NOW));
}

/// Clearing forgets an identifier's streaks from one IP, or from all; other
/// identifiers keep theirs.
pub async fn clear_login_failures_with_and_without_ip(store: Arc<dyn Backend>) {
    for (id, ip) in [("user:a", IP), ("user:a", IP2), ("user:b", IP)] {
        store.add_login_failure(id, ip, NOW, 0).await.unwrap();
    }
    assert_eq!(
        store
            .clear_login_failures("user:a", Some(IP))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.attempt_state("user:a", IP).await.unwrap().streak,
        None
    );
    assert_eq!(
        store.attempt_state("user:a", IP2).await.unwrap().streak,
        streak(1, NOW)
    );
    store.add_login_failure("user:a", IP, NOW, 0).await.unwrap();
    assert_eq!(store.clear_login_failures("user:a", None).await.unwrap(), 2);
    for ip in [IP, IP2] {
        assert_eq!(
            store.attempt_state("user:a", ip).await.unwrap().streak,
            None
        );
    }
    assert_eq!(
        store.attempt_state("user:b", IP).await.unwrap().streak,
        streak(1, NOW)
    );
    assert_eq!(
        store
            .clear_login_failures("user:nobody", None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .clear_login_failures("user:b", Some(IP2))
            .await
            .unwrap(),
        0
    );
}

/// An IP's bucket: each failure moves its `tat` to `max(tat, now) + regain`;
/// concurrent failures each move it; clearing forgets it once.
pub async fn ip_failures_move_the_tat(store: Arc<dyn Backend>) {
    let regain = 864;
    assert_eq!(
        store.add_ip_failure(IP, NOW, regain).await.unwrap(),
        NOW + regain
    );
    assert_eq!(
        store.add_ip_failure(IP, NOW, regain).await.unwrap(),
        NOW + 2 * regain
    );
    assert_eq!(
        store.add_ip_failure(IP, NOW + 100, regain).await.unwrap(),
        NOW + 3 * regain,
        "tat ahead of now: it grows from tat"
    );
    let later = NOW + 10 * regain;
    assert_eq!(
        store.add_ip_failure(IP, later, regain).await.unwrap(),
        later + regain,
        "from now"
    );
    let state = store.attempt_state("name:anyone", IP).await.unwrap();
    assert_eq!(
        state,
        AttemptState {
            streak: None,
            ip_tat: Some(later + regain)
        }
    );

    const N: usize = 32;
    let tats = together(N, |_| {
        let store = Arc::clone(&store);
        async move { store.add_ip_failure(IP2, NOW, 10).await }
    })
    .await;
    let mut tats: Vec<i64> = tats.into_iter().map(|t| t.expect("counted")).collect();
    tats.sort_unstable();
    assert_eq!(
        tats,
        (1..=N as i64).map(|i| NOW + 10 * i).collect::<Vec<_>>()
    );

    assert!(store.clear_ip_failures(IP).await.unwrap());
    assert!(!store.clear_ip_failures(IP).await.unwrap(), "once");
    assert_eq!(
        store.attempt_state("name:anyone", IP).await.unwrap().ip_tat,
        None
    );
    let other = store
        .attempt_state("name:anyone", IP2)
        .await
        .unwrap()
        .ip_tat;
    assert_eq!(other, Some(NOW + 10 * N as i64));
}

/// The sweep deletes streaks quiet since before `streak_starts_after` and
/// buckets empty at `now`, and counts what it deleted.
pub async fn sweep_protect_deletes_what_is_over(store: Arc<dyn Backend>) {
    store
        .add_login_failure("user:old", IP, NOW - 1000, 0)
        .await
        .unwrap();
    store
        .add_login_failure("user:edge", IP, NOW - 500, 0)
        .await
        .unwrap();
    store
        .add_login_failure("user:new", IP, NOW, 0)
        .await
        .unwrap();
    store
        .add_ip_failure("10.0.0.1", NOW - 100, 50)
        .await
        .unwrap(); // empty at NOW - 50
    store
        .add_ip_failure("10.0.0.2", NOW - 100, 100)
        .await
        .unwrap(); // empty at NOW
    store.add_ip_failure("10.0.0.3", NOW, 100).await.unwrap();
    assert_eq!(store.sweep_protect(NOW, NOW - 500).await.unwrap(), 3);
    let state = |id: &'static str, ip: &'static str| {
        let store = Arc::clone(&store);
        async move { store.attempt_state(id, ip).await.unwrap() }
    };
    assert_eq!(state("user:old", IP).await.streak, None);
    assert_eq!(state("user:edge", IP).await.streak, streak(1, NOW - 500));
    assert_eq!(state("user:new", IP).await.streak, streak(1, NOW));
    assert_eq!(state("x", "10.0.0.1").await.ip_tat, None);
    assert_eq!(state("x", "10.0.0.2").await.ip_tat, None, "empty at now");
    assert_eq!(state("x", "10.0.0.3").await.ip_tat, Some(NOW + 100));
    assert_eq!(store.sweep_protect(NOW, NOW - 500).await.unwrap(), 0);
}

/// A login naming a NUL character (PostgreSQL's text cannot hold one) finds
/// nobody, and its failures are counted and cleared like any other's: on
/// both backends an answer, never a store error.
pub async fn a_login_with_a_nul_finds_nobody_and_still_counts(store: Arc<dyn Backend>) {
    let alice = crate::fixtures::user("db", Some("alice"), None);
    store.create_user(&alice).await.expect("create");
    for typed in ["al\0ice", "alice\0", "\0"] {
        assert_eq!(
            store.find_login("db", typed).await.unwrap(),
            None,
            "{typed:?}"
        );
        assert!(store.find_login_everywhere(typed).await.unwrap().is_empty());
    }
    let id = "user:al\0ice";
    assert_eq!(
        store.attempt_state(id, IP).await.unwrap(),
        AttemptState::default()
    );
    assert_eq!(
        store
            .add_login_failure(id, IP, NOW, NOW - 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .add_login_failure(id, IP, NOW + 1, NOW - 100)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.attempt_state(id, IP).await.unwrap().streak,
        streak(2, NOW + 1)
    );
    assert_eq!(store.clear_login_failures(id, None).await.unwrap(), 1);
    assert_eq!(
        store.attempt_state(id, IP).await.unwrap(),
        AttemptState::default()
    );
}
