//! Sessions: creation (with its refresh-token family and the cap on
//! families per user and client, and the login's metadata), the list the
//! admin API reads, and the sweep.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::sessions::Session;
use serde_json::json;

use crate::fixtures::{
    DAY, NOW, add_user, app_metadata, login, no_metadata, refresh, session, sorted, stored_session,
};

fn sids(list: &[Session]) -> Vec<&str> {
    list.iter().map(|s| s.sid.as_str()).collect()
}

/// A session is stored with or without its first refresh token, and reads
/// back as written; a sid is used once.
pub async fn sessions_with_and_without_refresh(store: Arc<dyn Backend>) {
    let plain = session("s-plain", "auth0|u", NOW);
    assert!(
        store
            .create_session(&plain, None, 3, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    let with = Session {
        has_refresh: true,
        amr: "pwd mfa".into(),
        ..session("s-rt", "auth0|u", NOW + 1)
    };
    let rt = refresh("h-1", "s-rt", NOW + 1);
    assert!(
        store
            .create_session(&with, Some(&rt), 3, NOW + 1)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.find_refresh("h-1").await.unwrap(),
        Some((rt, with.clone()))
    );
    assert_eq!(store.find_refresh("h-unknown").await.unwrap(), None);
    assert_eq!(
        store.list_sessions("auth0|u", NOW).await.unwrap(),
        [with, plain.clone()]
    );
    assert!(
        store
            .create_session(&plain, None, 3, NOW + 2)
            .await
            .is_err(),
        "a sid is used once"
    );
}

/// Past `max_families` live refresh families of one user and client, the
/// oldest end (and are logged as revocations); sessions without refresh
/// token, of another client or user, expired or already revoked do not count.
pub async fn max_families_ends_the_oldest(store: Arc<dyn Backend>) {
    let u = "auth0|u";
    store
        .create_session(&session("plain", u, NOW - 9), None, 2, NOW)
        .await
        .unwrap();
    let other_client = Session {
        client_id: "cli".into(),
        has_refresh: true,
        ..session("other-client", u, NOW - 8)
    };
    let mut rt = refresh("other-client/0", "other-client", NOW - 8);
    rt.client_id = "cli".into();
    store
        .create_session(&other_client, Some(&rt), 2, NOW)
        .await
        .unwrap();
    login(&*store, "other-user", "auth0|v", NOW - 7).await;
    let expired = Session {
        has_refresh: true,
        expires_at: NOW - 1,
        ..session("expired", u, NOW - 2 * DAY)
    };
    let rt = refresh("expired/0", "expired", NOW - 2 * DAY);
    store
        .create_session(&expired, Some(&rt), 2, NOW - 2 * DAY)
        .await
        .unwrap();
    login(&*store, "revoked", u, NOW - 6).await;
    assert!(store.revoke_session("revoked", NOW - 5).await.unwrap());
    let logged = store.revocations_since(0).await.unwrap().len();

    let (s1, _) = login(&*store, "s1", u, NOW).await;
    let (s2, _) = login(&*store, "s2", u, NOW + 1).await;
    let s3 = Session {
        has_refresh: true,
        ..session("s3", u, NOW + 2)
    };
    let dropped = store
        .create_session(&s3, Some(&refresh("s3/0", "s3", NOW + 2)), 2, NOW + 2)
        .await
        .unwrap();
    assert_eq!(dropped, [("s1".to_string(), s1.expires_at)]);
    let ended = stored_session(&*store, u, "s1")
        .await
        .expect("kept, revoked");
    assert_eq!(ended.revoked_at, Some(NOW + 2));
    for live in ["s2", "s3", "plain", "other-client", "expired"] {
        let s = stored_session(&*store, u, live).await.expect("stored");
        assert_eq!(s.revoked_at, None, "{live}");
    }
    let log = store.revocations_since(0).await.unwrap();
    let new: Vec<_> = log[logged..]
        .iter()
        .map(|(_, sid, exp)| (sid.as_str(), *exp))
        .collect();
    assert_eq!(new, [("s1", s1.expires_at)]);

    let s4 = Session {
        has_refresh: true,
        ..session("s4", u, NOW + 3)
    };
    let dropped = store
        .create_session(&s4, Some(&refresh("s4/0", "s4", NOW + 3)), 1, NOW + 3)
        .await
        .unwrap();
    assert_eq!(
        sorted(dropped),
        [
            ("s2".to_string(), s2.expires_at),
            ("s3".to_string(), s3.expires_at)
        ]
    );
    let other = stored_session(&*store, "auth0|v", "other-user")
        .await
        .expect("stored");
    assert_eq!(other.revoked_at, None, "another user's family");
}

/// A login's session and the metadata its scripts decided land together, or
/// neither does.
pub async fn login_session_writes_metadata_with_it(store: Arc<dyn Backend>) {
    let alice = add_user(&*store, "alice").await;
    let s1 = Session {
        has_refresh: true,
        ..session("s1", &alice, NOW)
    };
    let md = app_metadata(&alice, json!({"plan": "pro"}), NOW);
    store
        .create_login_session(&s1, Some(&refresh("s1/0", "s1", NOW)), 3, NOW, &md)
        .await
        .unwrap();
    let app = |store: Arc<dyn Backend>, id: String| async move {
        let u = store.get_user(&id).await.unwrap().expect("stored");
        (u.app_metadata, u.updated_at)
    };
    assert_eq!(
        app(Arc::clone(&store), alice.clone()).await,
        (json!({"plan": "pro"}), NOW)
    );
    assert!(store.find_refresh("s1/0").await.unwrap().is_some());

    let again = app_metadata(&alice, json!({"plan": "free"}), NOW + 1);
    let refused = store
        .create_login_session(
            &s1,
            Some(&refresh("s1/new", "s1", NOW + 1)),
            3,
            NOW + 1,
            &again,
        )
        .await;
    assert!(refused.is_err(), "the sid is taken");
    assert_eq!(
        app(Arc::clone(&store), alice.clone()).await,
        (json!({"plan": "pro"}), NOW),
        "no session, no metadata"
    );
    assert_eq!(store.find_refresh("s1/new").await.unwrap(), None);

    let empty = passgate::store::MetadataUpdate {
        user_id: alice.clone(),
        now: NOW + 2,
        ..no_metadata()
    };
    store
        .create_login_session(&session("s2", &alice, NOW + 2), None, 3, NOW + 2, &empty)
        .await
        .unwrap();
    assert_eq!(
        app(Arc::clone(&store), alice.clone()).await,
        (json!({"plan": "pro"}), NOW),
        "nothing to write: the user is untouched"
    );
    assert!(stored_session(&*store, &alice, "s2").await.is_some());
}

/// A user's sessions that have not expired, revoked ones included, newest
/// first (of two created in one second, the later one first).
pub async fn list_sessions_newest_first(store: Arc<dyn Backend>) {
    let u = "auth0|u";
    for (sid, at) in [("a", NOW - 300), ("c", NOW - 100), ("b", NOW - 200)] {
        login(&*store, sid, u, at).await;
    }
    store
        .create_session(&session("same-1", u, NOW - 50), None, 3, NOW)
        .await
        .unwrap();
    store
        .create_session(&session("same-2", u, NOW - 50), None, 3, NOW)
        .await
        .unwrap();
    login(&*store, "revoked", u, NOW - 150).await;
    store.revoke_session("revoked", NOW - 1).await.unwrap();
    let old = Session {
        expires_at: NOW - 1,
        ..session("expired", u, NOW - 2 * DAY)
    };
    store
        .create_session(&old, None, 3, NOW - 2 * DAY)
        .await
        .unwrap();
    login(&*store, "theirs", "auth0|v", NOW).await;

    let listed = store.list_sessions(u, NOW).await.unwrap();
    assert_eq!(
        sids(&listed),
        ["same-2", "same-1", "c", "revoked", "b", "a"]
    );
    assert!(
        store
            .list_sessions("auth0|nobody", NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The sweep deletes sessions that expired before `now`, with their refresh
/// tokens and their entries in the revocation log; the rest stays.
pub async fn sweep_sessions_deletes_the_expired(store: Arc<dyn Backend>) {
    let u = "auth0|u";
    for (sid, expires_at, revoked) in [
        ("old", NOW - 1, false),
        ("old-revoked", NOW - 1, true),
        ("edge", NOW, false),
        ("live", NOW + 100, false),
        ("live-revoked", NOW + 100, true),
    ] {
        let s = Session {
            has_refresh: true,
            expires_at,
            ..session(sid, u, NOW - DAY)
        };
        let rt = refresh(&format!("{sid}/0"), sid, NOW - DAY);
        store
            .create_session(&s, Some(&rt), 100, NOW - DAY)
            .await
            .unwrap();
        if revoked {
            store.revoke_session(sid, NOW - 10).await.unwrap();
        }
    }
    assert_eq!(store.sweep_sessions(NOW).await.unwrap(), 2);
    let left = store.list_sessions(u, 0).await.unwrap();
    assert_eq!(sorted(sids(&left)), ["edge", "live", "live-revoked"]);
    assert_eq!(store.find_refresh("old/0").await.unwrap(), None);
    assert_eq!(store.find_refresh("old-revoked/0").await.unwrap(), None);
    assert!(store.find_refresh("live/0").await.unwrap().is_some());
    let log: Vec<String> = store
        .revocations_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, sid, _)| sid)
        .collect();
    assert_eq!(
        log,
        ["live-revoked"],
        "the expired session's entry is swept"
    );
    assert_eq!(store.sweep_sessions(NOW).await.unwrap(), 0);
}
