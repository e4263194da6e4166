//! Revocations: a session or all of a user's ended once each, the revoked
//! set the gateway loads, and the log other instances catch up from, in
//! order, under concurrent revocations too.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::sessions::Session;

use crate::fixtures::{DAY, NOW, login, session, sorted, stored_session, together};

/// A session ends once; the revocation is logged once, with its expiry.
pub async fn revoke_session_once(store: Arc<dyn Backend>) {
    let (s1, _) = login(&*store, "s1", "auth0|u", NOW).await;
    login(&*store, "s2", "auth0|u", NOW).await;
    assert!(store.revoke_session("s1", NOW + 1).await.unwrap());
    assert!(!store.revoke_session("s1", NOW + 2).await.unwrap(), "once");
    assert!(!store.revoke_session("nope", NOW + 2).await.unwrap());

    let ended = stored_session(&*store, "auth0|u", "s1")
        .await
        .expect("kept");
    assert_eq!(
        ended.revoked_at,
        Some(NOW + 1),
        "the first revocation's time"
    );
    let (_, seen) = store
        .find_refresh("s1/0")
        .await
        .unwrap()
        .expect("token kept");
    assert_eq!(
        seen.revoked_at,
        Some(NOW + 1),
        "an exchange sees the revocation"
    );
    let other = stored_session(&*store, "auth0|u", "s2")
        .await
        .expect("kept");
    assert_eq!(other.revoked_at, None);
    let log: Vec<_> = store
        .revocations_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, sid, exp)| (sid, exp))
        .collect();
    assert_eq!(log, [("s1".to_string(), s1.expires_at)]);
}

/// Ending a user's sessions ends (and logs) each live one, and returns them.
pub async fn revoke_user_sessions_ends_each_live_one(store: Arc<dyn Backend>) {
    let u = "auth0|u";
    let (s1, _) = login(&*store, "s1", u, NOW).await;
    let s2 = session("s2", u, NOW + 1);
    store.create_session(&s2, None, 3, NOW + 1).await.unwrap();
    login(&*store, "s3", u, NOW - 10).await;
    assert!(store.revoke_session("s3", NOW - 5).await.unwrap());
    let old = Session {
        expires_at: NOW - 1,
        ..session("old", u, NOW - 2 * DAY)
    };
    store
        .create_session(&old, None, 3, NOW - 2 * DAY)
        .await
        .unwrap();
    login(&*store, "v1", "auth0|v", NOW).await;
    let seq = store
        .revocations_since(0)
        .await
        .unwrap()
        .last()
        .map(|r| r.0)
        .expect("s3 logged");

    let ended = store.revoke_user_sessions(u, NOW + 5).await.unwrap();
    let expected = [
        ("s1".to_string(), s1.expires_at),
        ("s2".to_string(), s2.expires_at),
    ];
    assert_eq!(sorted(ended), expected);
    for sid in ["s1", "s2"] {
        let s = stored_session(&*store, u, sid).await.expect("kept");
        assert_eq!(s.revoked_at, Some(NOW + 5), "{sid}");
    }
    let s3 = stored_session(&*store, u, "s3").await.expect("kept");
    assert_eq!(
        s3.revoked_at,
        Some(NOW - 5),
        "an ended session keeps its time"
    );
    let v1 = stored_session(&*store, "auth0|v", "v1")
        .await
        .expect("kept");
    assert_eq!(v1.revoked_at, None, "another user's session");
    let logged: Vec<_> = store
        .revocations_since(seq)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, sid, exp)| (sid, exp))
        .collect();
    assert_eq!(sorted(logged), expected);
    assert!(
        store
            .revoke_user_sessions(u, NOW + 6)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Revoked sessions are listed for the gateway's revoked set until they expire.
pub async fn revoked_sessions_until_they_expire(store: Arc<dyn Backend>) {
    let u = "auth0|u";
    let long = Session {
        expires_at: NOW + 100,
        ..session("long", u, NOW - 10)
    };
    let short = Session {
        expires_at: NOW + 10,
        ..session("short", u, NOW - 10)
    };
    for s in [&long, &short] {
        store.create_session(s, None, 3, NOW).await.unwrap();
    }
    login(&*store, "live", u, NOW).await;
    assert!(store.revoked_sessions(NOW).await.unwrap().is_empty());
    store.revoke_session("long", NOW).await.unwrap();
    store.revoke_session("short", NOW).await.unwrap();
    assert_eq!(
        sorted(store.revoked_sessions(NOW).await.unwrap()),
        [
            ("long".to_string(), NOW + 100),
            ("short".to_string(), NOW + 10)
        ]
    );
    assert_eq!(
        store.revoked_sessions(NOW + 50).await.unwrap(),
        [("long".to_string(), NOW + 100)]
    );
    assert!(store.revoked_sessions(NOW + 101).await.unwrap().is_empty());
}

/// The revocation log reads in order from any point; its sequence numbers
/// only grow, under concurrent revocations too.
pub async fn revocations_since_in_order(store: Arc<dyn Backend>) {
    assert!(store.revocations_since(0).await.unwrap().is_empty());
    for sid in ["a", "b", "c", "d"] {
        login(&*store, sid, "auth0|u", NOW).await;
    }
    for sid in ["a", "b", "c"] {
        store.revoke_session(sid, NOW).await.unwrap();
    }
    let log = store.revocations_since(0).await.unwrap();
    let names: Vec<&str> = log.iter().map(|(_, sid, _)| sid.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(log[0].0 > 0);
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0), "{log:?}");
    assert_eq!(store.revocations_since(log[0].0).await.unwrap(), log[1..]);
    assert!(store.revocations_since(log[2].0).await.unwrap().is_empty());
    store.revoke_session("d", NOW).await.unwrap();
    let next = store.revocations_since(log[2].0).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].0 > log[2].0 && next[0].1 == "d", "{next:?}");

    const N: usize = 16;
    for i in 0..N {
        login(&*store, &format!("c{i}"), "auth0|u", NOW).await;
    }
    let done = together(N, |i| {
        let store = Arc::clone(&store);
        async move { store.revoke_session(&format!("c{i}"), NOW + 1).await }
    })
    .await;
    assert!(done.iter().all(|r| matches!(r, Ok(true))), "{done:?}");
    let after = store.revocations_since(next[0].0).await.unwrap();
    assert_eq!(after.len(), N);
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "{after:?}");
    let mut concurrent: Vec<&str> = after.iter().map(|(_, sid, _)| sid.as_str()).collect();
    concurrent.sort_unstable();
    concurrent.dedup();
    assert_eq!(concurrent.len(), N, "each revocation logged once");
}
