//! What only PostgreSQL has to prove: two instances (two pools) racing on
//! one refresh token, one counter, one MFA code or one first value; and the
//! schema's versions and its lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::mfa_tests::store_with_user;
use super::tests::{db, refresh, session, user};
use super::*;
use crate::store::MetadataUpdate;
use crate::store::Migrated;
use crate::store::Store;
use crate::store::mfa::MfaStore;
use crate::store::mfa::{Confirmed, OtpConfirmation, StoredAuthenticator};
use crate::store::mfa_fixtures::transaction;
use crate::store::mfa_transactions::MfaTransactionStore;
use crate::store::protect::ProtectStore;
use crate::store::sessions::Decision;
use crate::store::sessions::SessionStore;
use crate::store::settings::SettingsStore;

/// Two exchanges of one token from two instances: exactly one rotates, the
/// other reads the token retired (the reuse a token endpoint refuses).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_on_one_refresh_token_cannot_both_win() {
    let db = db!();
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    for round in 0..10 {
        let sid = format!("s{round}");
        let token = format!("t{round}");
        a.create_session(
            &session(&sid, "auth0|u", 100, 10_000),
            Some(&refresh(&token, &sid, 100)),
            100,
            100,
        )
        .await
        .unwrap();
        let rotated = Arc::new(AtomicUsize::new(0));
        let saw_retired = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, store)| {
                let (sid, token) = (sid.clone(), token.clone());
                let (rotated, saw_retired, barrier) =
                    (rotated.clone(), saw_retired.clone(), barrier.clone());
                let presented = token.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .exchange_refresh(
                            &presented,
                            &MetadataUpdate::default(),
                            Box::new(move |r, _| {
                                if r.retired_at_ms.is_some() {
                                    saw_retired.fetch_add(1, Ordering::SeqCst);
                                    return Decision::Refuse;
                                }
                                // Hold the rows a while: the other exchange must wait, not win.
                                std::thread::sleep(Duration::from_millis(30));
                                rotated.fetch_add(1, Ordering::SeqCst);
                                Decision::Rotate {
                                    successor: refresh(&format!("{token}-{i}"), &sid, 101),
                                    retired_at_ms: 101_000,
                                    session_expires_at: 10_000,
                                }
                            }),
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            (
                rotated.load(Ordering::SeqCst),
                saw_retired.load(Ordering::SeqCst)
            ),
            (1, 1),
            "round {round}"
        );
        let successors = [format!("{token}-0"), format!("{token}-1")];
        let mut stored = 0;
        for s in &successors {
            stored += usize::from(a.find_refresh(s).await.unwrap().is_some());
        }
        assert_eq!(stored, 1, "round {round}: one successor");
    }
}

/// Failures counted from two instances at once all count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_from_two_instances_add_up() {
    let db = db!();
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .add_login_failure("user:auth0|x", "203.0.113.9", 1_000, 0)
                    .await
                    .unwrap();
                store
                    .add_ip_failure("203.0.113.9", 1_000, 10)
                    .await
                    .unwrap();
                store.remember_first("cutover", 1_000 + i).await.unwrap()
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.push(t.await.unwrap());
    }
    firsts.dedup();
    assert_eq!(firsts.len(), 1, "every instance agrees on the first value");
    let st = a
        .attempt_state("user:auth0|x", "203.0.113.9")
        .await
        .unwrap();
    assert_eq!(st.streak.map(|s| s.failures), Some(40));
    assert_eq!(st.ip_tat, Some(1_000 + 40 * 10));
}

/// One TOTP step, one recovery code, one wrong-code count: each once,
/// whichever instance asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mfa_codes_are_accepted_once_across_instances() {
    let db = db!();
    let a = Arc::new(store_with_user(&db).await);
    let b = Arc::new(db.store().await);
    let factor = |id: &str, kind: &str, secret: &[u8], active| StoredAuthenticator {
        id: id.into(),
        user_id: "auth0|u".into(),
        kind: kind.into(),
        secret: secret.to_vec(),
        active,
        last_step: 0,
        created_at: 0,
    };
    a.add_authenticators(&[
        factor("totp|1", "otp", b"seed", true),
        factor("recovery-code|1", "recovery-code", b"h1", true),
    ])
    .await
    .unwrap();
    a.create_transaction(&transaction("t1")).await.unwrap();
    a.create_transaction(&transaction("t2")).await.unwrap();
    let confirm = |store: Arc<PgStore>, hash: &'static str| {
        tokio::spawn(async move {
            store
                .confirm_otp(&OtpConfirmation {
                    user_id: "auth0|u",
                    authenticator_id: "totp|1",
                    step: 7,
                    token_hash: hash,
                    now: 1,
                })
                .await
                .unwrap()
        })
    };
    let (x, y) = (confirm(a.clone(), "t1"), confirm(b.clone(), "t2"));
    let mut results = [x.await.unwrap(), y.await.unwrap()];
    results.sort_by_key(|c| *c == Confirmed::Done);
    assert_eq!(results, [Confirmed::StepUsed, Confirmed::Done]);

    let spend = |store: Arc<PgStore>, next: &str| {
        let next = factor(next, "recovery-code", next.as_bytes(), true);
        tokio::spawn(async move {
            store
                .replace_recovery_code("auth0|u", b"h1", &next)
                .await
                .unwrap()
        })
    };
    let (x, y) = (spend(a.clone(), "rc-a"), spend(b.clone(), "rc-b"));
    let spent = [x.await.unwrap(), y.await.unwrap()];
    assert_eq!(spent.iter().filter(|s| **s).count(), 1, "{spent:?}");

    let bumps: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .update_failures("auth0|u", Box::new(|c| Some((c.map_or(0, |c| c.0) + 1, 0))))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in bumps {
        t.await.unwrap();
    }
    assert_eq!(
        a.update_failures("auth0|u", Box::new(|c| c)).await.unwrap(),
        Some((20, 0))
    );
}

/// Users with one login name created from two instances at once: one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clashing_users_from_two_instances_make_one() {
    let db = db!();
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    // A username against another user's e-mail: no unique index covers that
    // pair, the realm's lock does.
    let first = user("db", "pat@example.com", None);
    let mut second = user("db", "patricia", Some("PAT@example.com"));
    second.user_id = format!("{}x", first.user_id);
    let (x, y) = (
        tokio::spawn(async move { a.create_user(&first).await }),
        tokio::spawn(async move { b.create_user(&second).await }),
    );
    let results = [x.await.unwrap(), y.await.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Conflict(_))))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let db = db!();
    let settings = db.settings().clone();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let settings = settings.clone();
            tokio::spawn(async move {
                let store = PgStore::open(&settings).unwrap();
                store.migrate().await
            })
        })
        .collect();
    let mut applied = Vec::new();
    for t in opens {
        applied.push(t.await.unwrap().unwrap());
    }
    let known = migrations::known_version();
    assert_eq!(
        applied.iter().filter(|m| m.from == 0).count(),
        1,
        "{applied:?}"
    );
    assert!(applied.iter().all(|m| m.to == known));
    let store = db.store().await;
    assert_eq!(
        store.migrate().await.unwrap(),
        Migrated {
            from: known,
            to: known
        }
    );
    // A database from a newer passgate is refused, not touched.
    let client = store.client().await.unwrap();
    client
        .execute(
            "INSERT INTO passgate_schema (version) VALUES ($1)",
            &[&(known + 1)],
        )
        .await
        .unwrap();
    let newer = PgStore::connect(&settings).await;
    assert!(
        matches!(newer, Err(StoreError::Schema { found, known: k }) if found == known + 1 && k == known),
        "{newer:?}"
    );
}
