//! The SQLite side's store tests, run against PostgreSQL (each in a
//! database of its own; skipped with a loud note when no server is
//! reachable outside CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::store::Store;
use crate::store::protect::FailureStreak;
use crate::store::protect::ProtectStore;
use crate::store::sessions::SessionStore;
use crate::store::sessions::{Decision, RefreshRecord, Session};
use crate::store::settings::SettingsStore;
use crate::store::status::StatusStore;
use crate::store::status::{StatusCounts, StatusRules};
use crate::store::{MetadataUpdate, User, new_user_id};

/// A test database, or return (skipped) when there is no server.
macro_rules! db {
    () => {
        match $crate::store::postgres::testing::TestDb::create().await {
            Some(db) => db,
            None => return,
        }
    };
}
pub(super) use db;

pub(super) fn user(realm: &str, username: &str, email: Option<&str>) -> User {
    User {
        user_id: new_user_id(),
        realm: realm.into(),
        username: Some(username.into()),
        email: email.map(str::to_string),
        email_verified: false,
        name: None,
        password_hash: Some("h".into()),
        blocked: false,
        app_metadata: serde_json::json!({}),
        user_metadata: serde_json::json!({}),
        created_at: 1,
        updated_at: 1,
        last_login: None,
        logins_count: 0,
    }
}

#[tokio::test]
async fn users_round_trip_and_uniqueness_per_realm() {
    let db = db!();
    let s = db.store().await;
    let mut alice = user("db", "alice", Some("Alice@Example.com"));
    alice.app_metadata = serde_json::json!({"roles": ["admin"], "n": 1});
    s.create_user(&alice).await.unwrap();
    let clash = s.create_user(&user("db", "ALICE", None)).await;
    assert!(
        matches!(&clash, Err(StoreError::Conflict(m)) if m.contains("username \"ALICE\"")),
        "{clash:?}"
    );
    assert!(matches!(
        s.create_user(&user("db", "bob", Some("alice@example.com")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut same_id = user("db", "carol", None);
    same_id.user_id = alice.user_id.clone();
    assert!(
        matches!(s.create_user(&same_id).await, Err(StoreError::Conflict(m)) if m.contains("is taken"))
    );
    s.create_user(&user("other", "alice", None)).await.unwrap();

    let found = s.find_login("db", "Alice").await.unwrap().unwrap();
    assert_eq!(found, alice, "every column round-trips");
    let by_mail = s.find_login("db", "ALICE@example.com").await.unwrap();
    assert_eq!(by_mail.map(|u| u.user_id), Some(alice.user_id.clone()));
    assert!(s.find_login("db", "nobody").await.unwrap().is_none());
    let everywhere = s.find_login_everywhere("alice").await.unwrap();
    assert_eq!(
        everywhere
            .iter()
            .map(|u| u.realm.as_str())
            .collect::<Vec<_>>(),
        ["db", "other"]
    );

    s.record_login(&alice.user_id, 50, Some("new"))
        .await
        .unwrap();
    let got = s.get_user(&alice.user_id).await.unwrap().unwrap();
    assert_eq!(
        (
            got.logins_count,
            got.last_login,
            got.password_hash.as_deref()
        ),
        (1, Some(50), Some("new"))
    );
    s.record_login(&alice.user_id, 60, None).await.unwrap();
    let got = s.get_user(&alice.user_id).await.unwrap().unwrap();
    assert_eq!(
        (got.logins_count, got.password_hash.as_deref()),
        (2, Some("new"))
    );
    assert!(s.set_blocked(&alice.user_id, true, 60).await.unwrap());
    assert!(s.get_user(&alice.user_id).await.unwrap().unwrap().blocked);
    assert!(s.set_password_hash(&alice.user_id, "h2", 70).await.unwrap());
    assert!(!s.set_password_hash("auth0|none", "h2", 70).await.unwrap());
    assert_eq!(s.list_users("db").await.unwrap().len(), 1);
    assert!(s.remove_user(&alice.user_id).await.unwrap());
    assert!(!s.remove_user(&alice.user_id).await.unwrap());
}

#[tokio::test]
async fn lists_sort_like_sqlite_and_bcrypt_costs_are_found() {
    let db = db!();
    let s = db.store().await;
    for (name, hash) in [
        ("bob", "$2b$12$abc"),
        ("Alice", "$argon2id$v=19$m=19456,t=2,p=1$x$y"),
        ("carol", "$2y$10$abc"),
        ("Zed", "$2b$12$def"),
    ] {
        let mut u = user("db", name, None);
        u.password_hash = Some(hash.into());
        s.create_user(&u).await.unwrap();
    }
    let mut mail_only = user("db", "x", Some("dave@example.com"));
    mail_only.username = None;
    s.create_user(&mail_only).await.unwrap();
    let names: Vec<String> = s
        .list_users("db")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.or(u.email).unwrap())
        .collect();
    assert_eq!(names, ["Alice", "bob", "carol", "dave@example.com", "Zed"]);
    assert_eq!(s.bcrypt_costs().await.unwrap(), [10, 12]);
}

#[tokio::test]
async fn metadata_is_written_whole() {
    let db = db!();
    let s = db.store().await;
    let u = user("db", "meta", None);
    s.create_user(&u).await.unwrap();
    let update = MetadataUpdate {
        user_id: u.user_id.clone(),
        app_metadata: Some(serde_json::json!({"plan": "gold", "tags": [1, 2]})),
        user_metadata: None,
        now: 99,
    };
    assert!(s.update_metadata(&update).await.unwrap());
    let got = s.get_user(&u.user_id).await.unwrap().unwrap();
    assert_eq!(
        got.app_metadata,
        serde_json::json!({"plan": "gold", "tags": [1, 2]})
    );
    assert_eq!(got.user_metadata, serde_json::json!({}));
    assert_eq!(got.updated_at, 99);
    let nobody = MetadataUpdate {
        user_id: "auth0|nobody".into(),
        ..update
    };
    assert!(!s.update_metadata(&nobody).await.unwrap());
}

pub(super) fn session(sid: &str, user_id: &str, created_at: i64, expires_at: i64) -> Session {
    Session {
        sid: sid.into(),
        user_id: user_id.into(),
        client_id: "app".into(),
        realm: "db".into(),
        audience: "aud".into(),
        scope: "openid offline_access".into(),
        created_at,
        expires_at,
        revoked_at: None,
        has_refresh: true,
        amr: "pwd".into(),
    }
}

pub(super) fn refresh(hash: &str, sid: &str, at: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        sid: sid.into(),
        client_id: "app".into(),
        created_at: at,
        last_used_at: at,
        absolute_expires_at: at + 10_000,
        retired_at_ms: None,
    }
}

#[tokio::test]
async fn families_beyond_the_limit_end_and_are_logged() {
    let db = db!();
    let s = db.store().await;
    let none = MetadataUpdate::default();
    for i in 0..3 {
        let sid = format!("s{i}");
        let dropped = s
            .create_login_session(
                &session(&sid, "auth0|u", 100 + i, 5_000),
                Some(&refresh(&format!("r{i}"), &sid, 100 + i)),
                2,
                100 + i,
                &none,
            )
            .await
            .unwrap();
        assert_eq!(dropped.is_empty(), i < 2, "{i}: {dropped:?}");
    }
    // The third login ended the oldest family.
    let live: Vec<String> = s
        .list_sessions("auth0|u", 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.revoked_at.is_none())
        .map(|s| s.sid)
        .collect();
    assert_eq!(live, ["s2", "s1"]);
    assert_eq!(
        s.revoked_sessions(200).await.unwrap(),
        [("s0".to_string(), 5_000)]
    );
    assert!(s.revoke_session("s1", 300).await.unwrap());
    assert!(!s.revoke_session("s1", 301).await.unwrap(), "ended once");
    assert!(!s.revoke_session("nope", 301).await.unwrap());
    let ended = s.revoke_user_sessions("auth0|u", 400).await.unwrap();
    assert_eq!(ended, [("s2".to_string(), 5_000)]);
    let log = s.revocations_since(0).await.unwrap();
    let sids: Vec<&str> = log.iter().map(|(_, sid, _)| sid.as_str()).collect();
    assert_eq!(sids, ["s0", "s1", "s2"]);
    assert!(log.windows(2).all(|w| w[0].0 < w[1].0), "{log:?}");
    assert_eq!(s.revocations_since(log[1].0).await.unwrap().len(), 1);

    // Sweeping removes expired sessions, their tokens and their log rows.
    assert_eq!(s.sweep_sessions(5_001).await.unwrap(), 3);
    assert!(s.find_refresh("r2").await.unwrap().is_none());
    assert!(s.revocations_since(0).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_exchange_rotates_touches_or_refuses() {
    let db = db!();
    let s = db.store().await;
    let u = user("db", "rot", None);
    s.create_user(&u).await.unwrap();
    s.create_session(
        &session("s", &u.user_id, 100, 1_000),
        Some(&refresh("old", "s", 100)),
        10,
        100,
    )
    .await
    .unwrap();
    let metadata = MetadataUpdate {
        user_id: u.user_id.clone(),
        app_metadata: Some(serde_json::json!({"refreshed": true})),
        user_metadata: None,
        now: 150,
    };
    // A refusal writes nothing, metadata included.
    let read = s
        .exchange_refresh("old", &metadata, Box::new(|_, _| Decision::Refuse))
        .await
        .unwrap();
    assert_eq!(read.map(|(r, _)| r.token_hash).as_deref(), Some("old"));
    let fresh = s.get_user(&u.user_id).await.unwrap().unwrap();
    assert_eq!(fresh.app_metadata, serde_json::json!({}));

    let rotate = |_: &RefreshRecord, _: &Session| Decision::Rotate {
        successor: refresh("new", "s", 150),
        retired_at_ms: 150_500,
        session_expires_at: 2_000,
    };
    s.exchange_refresh("old", &metadata, Box::new(rotate))
        .await
        .unwrap();
    let (old, session_now) = s.find_refresh("old").await.unwrap().unwrap();
    assert_eq!(old.retired_at_ms, Some(150_500));
    assert_eq!(session_now.expires_at, 2_000);
    let meta = s.get_user(&u.user_id).await.unwrap().unwrap().app_metadata;
    assert_eq!(meta, serde_json::json!({"refreshed": true}));
    // Rotating a retired token breaks the guard: an error, nothing written.
    let again = s
        .exchange_refresh(
            "old",
            &MetadataUpdate::default(),
            Box::new(move |_, _| Decision::Rotate {
                successor: refresh("newer", "s", 160),
                retired_at_ms: 160_000,
                session_expires_at: 3_000,
            }),
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::RowCount { changed: 0, .. })),
        "{again:?}"
    );
    assert!(s.find_refresh("newer").await.unwrap().is_none());

    s.exchange_refresh(
        "new",
        &MetadataUpdate::default(),
        Box::new(move |_, _| Decision::Touch {
            last_used_at: 170,
            session_expires_at: 1_500,
        }),
    )
    .await
    .unwrap();
    let (new, session_now) = s.find_refresh("new").await.unwrap().unwrap();
    assert_eq!((new.last_used_at, new.retired_at_ms), (170, None));
    assert_eq!(session_now.expires_at, 2_000, "a session never shrinks");
    assert!(
        s.exchange_refresh("missing", &metadata, Box::new(|_, _| Decision::Refuse))
            .await
            .unwrap()
            .is_none()
    );
    // A revoked session does not grow: the exchange fails and writes nothing.
    assert!(s.revoke_session("s", 180).await.unwrap());
    let touched = s
        .exchange_refresh(
            "new",
            &MetadataUpdate::default(),
            Box::new(move |_, _| Decision::Touch {
                last_used_at: 190,
                session_expires_at: 9_000,
            }),
        )
        .await;
    assert!(
        matches!(touched, Err(StoreError::RowCount { .. })),
        "{touched:?}"
    );
    assert_eq!(
        s.find_refresh("new").await.unwrap().unwrap().0.last_used_at,
        170
    );
}

#[tokio::test]
async fn streaks_buckets_settings_and_status() {
    let db = db!();
    let s = db.store().await;
    assert_eq!(
        s.add_login_failure("alice", "192.0.2.1", 1_000, 900)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.add_login_failure("alice", "192.0.2.1", 1_050, 950)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.add_login_failure("alice", "192.0.2.1", 1_200, 1_100)
            .await
            .unwrap(),
        1,
        "a new streak"
    );
    let st = s.attempt_state("alice", "192.0.2.1").await.unwrap();
    assert_eq!(
        st.streak,
        Some(FailureStreak {
            failures: 1,
            last_failure: 1_200
        })
    );
    assert_eq!(st.ip_tat, None);
    s.add_login_failure("alice", "192.0.2.2", 1_200, 0)
        .await
        .unwrap();
    assert_eq!(
        s.clear_login_failures("alice", Some("192.0.2.1"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.clear_login_failures("alice", None).await.unwrap(), 1);
    assert_eq!(
        s.attempt_state("alice", "192.0.2.2").await.unwrap().streak,
        None
    );

    assert_eq!(
        s.add_ip_failure("192.0.2.1", 1_000, 864).await.unwrap(),
        1_864
    );
    assert_eq!(
        s.add_ip_failure("192.0.2.1", 1_000, 864).await.unwrap(),
        2_728
    );
    assert_eq!(
        s.add_ip_failure("192.0.2.1", 9_000, 864).await.unwrap(),
        9_864
    );
    assert_eq!(
        s.attempt_state("x", "192.0.2.1").await.unwrap().ip_tat,
        Some(9_864)
    );
    s.add_login_failure("bob", "192.0.2.1", 1_000, 0)
        .await
        .unwrap();
    assert_eq!(s.sweep_protect(9_000, 500).await.unwrap(), 0);
    assert_eq!(s.sweep_protect(9_864, 1_001).await.unwrap(), 2);
    assert!(!s.clear_ip_failures("192.0.2.1").await.unwrap());

    assert_eq!(s.remember_first("a", 10).await.unwrap(), 10);
    assert_eq!(s.remember_first("a", 20).await.unwrap(), 10);

    let rules = StatusRules {
        block_threshold: 2,
        block_expiry: 100,
        ip_threshold: 2,
        ip_regain: 10,
    };
    assert_eq!(
        s.status_counts(1000, rules).await.unwrap(),
        StatusCounts::default()
    );
    for _ in 0..2 {
        s.add_login_failure("alice", "10.0.0.1", 1000, 0)
            .await
            .unwrap();
    }
    s.add_login_failure("bob", "10.0.0.1", 1000, 0)
        .await
        .unwrap();
    for _ in 0..3 {
        s.add_ip_failure("10.0.0.9", 1000, 10).await.unwrap();
    }
    s.create_session(&session("live", "auth0|u", 1000, 2000), None, 5, 1000)
        .await
        .unwrap();
    let counts = s.status_counts(1001, rules).await.unwrap();
    assert_eq!(
        (
            counts.active_sessions,
            counts.blocked_pairs,
            counts.throttled_ips
        ),
        (1, 1, 1)
    );
    assert_eq!(s.status_counts(1200, rules).await.unwrap().blocked_pairs, 0);
}
