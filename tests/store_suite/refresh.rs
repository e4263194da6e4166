//! Refresh exchanges one at a time: what each [`Decision`] writes, that a
//! refusal or a failed write leaves everything as it was, and that the
//! refresh's metadata lands with the exchange or not at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use passgate::store::Backend;
use passgate::store::sessions::{Decide, Decision};
use serde_json::json;

use crate::fixtures::{
    NOW, add_user, app_metadata, login, no_metadata, refresh, refuse, rotate_to,
};

/// Rotation retires the token (in milliseconds) for its successor and
/// extends the session, never shortening it; the exchange returns what it
/// read. A retired token does not rotate again: such a decision fails and
/// writes nothing.
pub async fn exchange_rotates_once(store: Arc<dyn Backend>) {
    let (s, rt0) = login(&*store, "s1", "auth0|u", NOW).await;
    let rt1 = refresh("s1/1", "s1", NOW + 10);
    let retired_ms = (NOW + 10) * 1000 + 250;
    let read = store
        .exchange_refresh(
            "s1/0",
            &no_metadata(),
            rotate_to(rt1.clone(), retired_ms, s.expires_at + 100),
        )
        .await
        .unwrap();
    assert_eq!(
        read,
        Some((rt0.clone(), s.clone())),
        "what was read, before the write"
    );
    let (old, session) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!(old.retired_at_ms, Some(retired_ms));
    assert_eq!(session.expires_at, s.expires_at + 100);
    assert_eq!(
        store.find_refresh("s1/1").await.unwrap(),
        Some((rt1, session.clone()))
    );

    let rt2 = refresh("s1/2", "s1", NOW + 20);
    let again = store
        .exchange_refresh(
            "s1/0",
            &no_metadata(),
            rotate_to(rt2.clone(), retired_ms + 5_000, s.expires_at + 500),
        )
        .await;
    assert!(again.is_err(), "a retired token rotated again: {again:?}");
    assert_eq!(store.find_refresh("s1/2").await.unwrap(), None);
    let (old, unchanged) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!(
        (old.retired_at_ms, unchanged),
        (Some(retired_ms), session.clone())
    );

    store
        .exchange_refresh(
            "s1/1",
            &no_metadata(),
            rotate_to(rt2, retired_ms + 5_000, NOW),
        )
        .await
        .unwrap();
    let (_, after) = store.find_refresh("s1/2").await.unwrap().expect("stored");
    assert_eq!(
        after.expires_at, session.expires_at,
        "an exchange never shortens a session"
    );
}

/// Touch (a client without rotation) keeps the token, marks it used and
/// extends the session, never shortening it.
pub async fn touch_keeps_the_token(store: Arc<dyn Backend>) {
    let (s, rt0) = login(&*store, "s1", "auth0|u", NOW).await;
    let touch = |last_used_at, session_expires_at| -> Decide {
        Box::new(move |_, _| Decision::Touch {
            last_used_at,
            session_expires_at,
        })
    };
    let read = store
        .exchange_refresh("s1/0", &no_metadata(), touch(NOW + 60, s.expires_at + 600))
        .await
        .unwrap();
    assert_eq!(read, Some((rt0.clone(), s.clone())));
    let (r, session) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!((r.last_used_at, r.retired_at_ms), (NOW + 60, None));
    assert_eq!(session.expires_at, s.expires_at + 600);
    assert_eq!(
        (r.created_at, r.absolute_expires_at),
        (rt0.created_at, rt0.absolute_expires_at)
    );

    store
        .exchange_refresh("s1/0", &no_metadata(), touch(NOW + 70, NOW))
        .await
        .unwrap();
    let (r, session) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!(
        (r.last_used_at, session.expires_at),
        (NOW + 70, s.expires_at + 600)
    );
}

/// A refusal writes nothing: not the token, not the session, not the
/// metadata. An unknown token is `None`, without asking the decision.
pub async fn refusal_writes_nothing(store: Arc<dyn Backend>) {
    let alice = add_user(&*store, "alice").await;
    let before = store.get_user(&alice).await.unwrap().expect("stored");
    let (s, rt0) = login(&*store, "s1", &alice, NOW).await;
    let md = app_metadata(&alice, json!({"v": 2}), NOW + 5);
    let read = store.exchange_refresh("s1/0", &md, refuse()).await.unwrap();
    assert_eq!(read, Some((rt0.clone(), s.clone())));
    assert_eq!(store.find_refresh("s1/0").await.unwrap(), Some((rt0, s)));
    assert_eq!(store.get_user(&alice).await.unwrap(), Some(before.clone()));

    let asked = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&asked);
    let decide: Decide = Box::new(move |_, _| {
        flag.store(true, Ordering::SeqCst);
        Decision::Refuse
    });
    assert_eq!(
        store.exchange_refresh("nope", &md, decide).await.unwrap(),
        None
    );
    assert!(!asked.load(Ordering::SeqCst), "no token, no decision");
    assert_eq!(store.get_user(&alice).await.unwrap(), Some(before));
}

/// The refresh's metadata is written with a rotation or a touch, and not
/// when the exchange's write fails (here: the successor's hash is taken),
/// which also leaves the token unretired.
pub async fn metadata_lands_with_the_exchange_or_not_at_all(store: Arc<dyn Backend>) {
    let alice = add_user(&*store, "alice").await;
    let (s, _) = login(&*store, "s1", &alice, NOW).await;
    login(&*store, "s2", &alice, NOW).await;
    let app = || {
        let store = Arc::clone(&store);
        let id = alice.clone();
        async move {
            let u = store.get_user(&id).await.unwrap().expect("stored");
            (u.app_metadata, u.updated_at)
        }
    };
    let before = app().await;

    let taken = refresh("s2/0", "s1", NOW + 1);
    let md = app_metadata(&alice, json!({"v": 1}), NOW + 1);
    let failed = store
        .exchange_refresh(
            "s1/0",
            &md,
            rotate_to(taken, (NOW + 1) * 1000, s.expires_at),
        )
        .await;
    assert!(failed.is_err(), "the successor's hash is taken: {failed:?}");
    assert_eq!(app().await, before, "no rotation, no metadata");
    let (r, _) = store.find_refresh("s1/0").await.unwrap().expect("kept");
    assert_eq!(r.retired_at_ms, None, "a failed exchange retires nothing");

    let touch: Decide = Box::new(move |_, _| Decision::Touch {
        last_used_at: NOW + 2,
        session_expires_at: NOW,
    });
    let md = app_metadata(&alice, json!({"v": 2}), NOW + 2);
    store.exchange_refresh("s1/0", &md, touch).await.unwrap();
    assert_eq!(app().await, (json!({"v": 2}), NOW + 2));

    let md = app_metadata(&alice, json!({"v": 3}), NOW + 3);
    let next = refresh("s1/1", "s1", NOW + 3);
    store
        .exchange_refresh("s1/0", &md, rotate_to(next, (NOW + 3) * 1000, s.expires_at))
        .await
        .unwrap();
    assert_eq!(app().await, (json!({"v": 3}), NOW + 3));
    assert!(store.find_refresh("s1/1").await.unwrap().is_some());
}

/// A revoked session's token neither rotates nor is touched, even when a
/// decision asks for it: the write fails and nothing changes.
pub async fn a_revoked_session_does_not_rotate(store: Arc<dyn Backend>) {
    let alice = add_user(&*store, "alice").await;
    let (s, _) = login(&*store, "s1", &alice, NOW).await;
    assert!(store.revoke_session("s1", NOW + 1).await.unwrap());
    let before = store.find_refresh("s1/0").await.unwrap().expect("kept");
    let user_before = store.get_user(&alice).await.unwrap();
    let md = app_metadata(&alice, json!({"v": 1}), NOW + 2);

    let next = refresh("s1/1", "s1", NOW + 2);
    let rotated = store
        .exchange_refresh(
            "s1/0",
            &md,
            rotate_to(next, (NOW + 2) * 1000, s.expires_at + 100),
        )
        .await;
    assert!(rotated.is_err(), "{rotated:?}");
    let touch: Decide = Box::new(move |_, _| Decision::Touch {
        last_used_at: NOW + 2,
        session_expires_at: s.expires_at + 100,
    });
    let touched = store.exchange_refresh("s1/0", &md, touch).await;
    assert!(touched.is_err(), "{touched:?}");

    assert_eq!(store.find_refresh("s1/0").await.unwrap(), Some(before));
    assert_eq!(store.find_refresh("s1/1").await.unwrap(), None);
    assert_eq!(store.get_user(&alice).await.unwrap(), user_before);
}
