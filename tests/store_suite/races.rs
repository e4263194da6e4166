//! Refresh exchanges racing each other and a revocation, from tasks on the
//! multi-thread runtime released together: of N exchanges of one token
//! exactly one rotates (and only its metadata lands), and once a revocation
//! has committed every exchange that starts is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use passgate::store::Backend;
use passgate::store::sessions::{Decide, Decision, RefreshRecord};
use serde_json::json;

use crate::fixtures::{NOW, add_user, app_metadata, login, refresh, together};

/// A decision as the gateway makes it: refuse a retired token or a revoked
/// session, else rotate to `successor`.
fn rotate_if_live(successor: RefreshRecord, retired_at_ms: i64) -> Decide {
    Box::new(move |r, s| match (r.retired_at_ms, s.revoked_at) {
        (None, None) => Decision::Rotate {
            successor: successor.clone(),
            retired_at_ms,
            session_expires_at: s.expires_at,
        },
        _ => Decision::Refuse,
    })
}

/// N concurrent exchanges of one token: exactly one reads it live and
/// rotates; every other reads it retired by that one. One successor exists,
/// and the metadata is the winner's.
pub async fn concurrent_exchanges_one_rotation_wins(store: Arc<dyn Backend>) {
    const N: usize = 16;
    let alice = add_user(&*store, "alice").await;
    login(&*store, "s1", &alice, NOW).await;
    let retired_at = |i: usize| (NOW + 1) * 1000 + i as i64;
    let reads = together(N, |i| {
        let store = Arc::clone(&store);
        let md = app_metadata(&alice, json!({ "winner": i }), NOW + 1);
        let decide = rotate_if_live(refresh(&format!("s1/1-{i}"), "s1", NOW + 1), retired_at(i));
        async move { store.exchange_refresh("s1/0", &md, decide).await }
    })
    .await;
    let reads: Vec<RefreshRecord> = reads
        .into_iter()
        .map(|r| r.expect("no exchange fails").expect("the token exists").0)
        .collect();
    let winners: Vec<usize> = (0..N)
        .filter(|&i| reads[i].retired_at_ms.is_none())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation: {reads:?}");
    let w = winners[0];
    for (i, r) in reads.iter().enumerate().filter(|&(i, _)| i != w) {
        assert_eq!(
            r.retired_at_ms,
            Some(retired_at(w)),
            "exchange {i} saw the winner's retirement"
        );
    }
    let (old, _) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!(old.retired_at_ms, Some(retired_at(w)));
    for i in 0..N {
        let successor = store.find_refresh(&format!("s1/1-{i}")).await.unwrap();
        assert_eq!(successor.is_some(), i == w, "successor {i}");
    }
    let u = store.get_user(&alice).await.unwrap().expect("stored");
    assert_eq!(
        u.app_metadata,
        json!({ "winner": w }),
        "only the winner's metadata"
    );
}

/// How one chain of rotations ended.
#[derive(Debug)]
struct Chain {
    /// The token that was refused: the chain's last.
    last: String,
    /// Rotations made.
    rotations: usize,
}

/// Tasks keep rotating their sessions' refresh tokens while another ends
/// every session of the user: no exchange that starts after the revocation
/// committed rotates, every chain ends refused, its last token unretired.
pub async fn revocation_racing_exchanges_is_seen(store: Arc<dyn Backend>) {
    const CHAINS: usize = 4;
    const MAX_ROTATIONS: usize = 5_000;
    let alice = add_user(&*store, "alice").await;
    let mut expected = Vec::new();
    for k in 0..CHAINS {
        let (s, _) = login(&*store, &format!("c{k}"), &alice, NOW).await;
        expected.push((s.sid, s.expires_at));
    }
    let revoked = Arc::new(AtomicBool::new(false));
    let rotations = Arc::new(AtomicUsize::new(0));

    let outcomes = together(CHAINS + 1, |k| {
        let (store, alice) = (Arc::clone(&store), alice.clone());
        let (revoked, rotations) = (Arc::clone(&revoked), Arc::clone(&rotations));
        async move {
            if k == CHAINS {
                // The revoker: once the chains are under way, end everything.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while rotations.load(Ordering::SeqCst) < 3 * CHAINS {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the chains do not move"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let ended = store
                    .revoke_user_sessions(&alice, NOW + 1)
                    .await
                    .expect("revoke");
                revoked.store(true, Ordering::SeqCst);
                return Err(ended);
            }
            let mut current = format!("c{k}/0");
            for generation in 1..=MAX_ROTATIONS {
                let after_revocation = revoked.load(Ordering::SeqCst);
                let next = format!("c{k}/{generation}");
                let at_ms = (NOW + 1) * 1000 + generation as i64;
                let decide = rotate_if_live(refresh(&next, &format!("c{k}"), NOW + 1), at_ms);
                let (r, s) = store
                    .exchange_refresh(
                        &current,
                        &passgate::store::MetadataUpdate::default(),
                        decide,
                    )
                    .await
                    .expect("no exchange fails")
                    .expect("the token exists");
                assert_eq!(
                    r.retired_at_ms, None,
                    "chain {k}: only this task uses its tokens"
                );
                if s.revoked_at.is_some() {
                    return Ok(Chain {
                        last: current,
                        rotations: generation - 1,
                    });
                }
                assert!(
                    !after_revocation,
                    "chain {k}: an exchange that started after the revocation rotated"
                );
                rotations.fetch_add(1, Ordering::SeqCst);
                current = next;
                tokio::task::yield_now().await;
            }
            panic!("chain {k}: never refused");
        }
    })
    .await;

    let mut chains = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(chain) => chains.push(chain),
            Err(mut ended) => {
                ended.sort();
                assert_eq!(ended, expected, "every live session ended, with its expiry");
            }
        }
    }
    assert_eq!(chains.len(), CHAINS);
    for (k, chain) in chains.iter().enumerate() {
        let (last, session) = store
            .find_refresh(&chain.last)
            .await
            .unwrap()
            .expect("kept");
        assert_eq!(
            last.retired_at_ms, None,
            "chain {k}: the refused token stays as it was"
        );
        assert!(session.revoked_at.is_some());
        let beyond = format!("c{k}/{}", chain.rotations + 1);
        assert_eq!(
            store.find_refresh(&beyond).await.unwrap(),
            None,
            "chain {k}"
        );
        if chain.rotations > 0 {
            let (prev, _) = store
                .find_refresh(&format!("c{k}/{}", chain.rotations - 1))
                .await
                .unwrap()
                .expect("kept");
            assert!(
                prev.retired_at_ms.is_some(),
                "chain {k}: rotated tokens are retired"
            );
        }
    }
}
