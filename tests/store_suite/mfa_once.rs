//! Second factors used once: a TOTP step, an MFA transaction finished by an
//! OTP code (everything written or nothing), a recovery code; each under
//! concurrency too.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::mfa::{Confirmed, OtpConfirmation};

use crate::fixtures::{NOW, add_user, factor, factor_ids, mfa_transaction, together};

/// A TOTP step is accepted once, and never one before it; accepting makes
/// the authenticator active.
pub async fn accept_step_once(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    store
        .add_authenticators(&[factor("totp|1", &u, "otp", b"s", false, NOW)])
        .await
        .unwrap();
    assert!(store.accept_step("totp|1", 10).await.unwrap());
    let a = &store.authenticators(&u).await.unwrap()[0];
    assert_eq!((a.active, a.last_step), (true, 10));
    assert!(!store.accept_step("totp|1", 10).await.unwrap(), "a replay");
    assert!(
        !store.accept_step("totp|1", 9).await.unwrap(),
        "an earlier step"
    );
    assert!(store.accept_step("totp|1", 12).await.unwrap());
    assert_eq!(store.authenticators(&u).await.unwrap()[0].last_step, 12);
    assert!(!store.accept_step("totp|nope", 20).await.unwrap());

    let steps = together(8, |_| {
        let store = Arc::clone(&store);
        async move { store.accept_step("totp|1", 13).await }
    })
    .await;
    let accepted = steps.iter().filter(|s| matches!(s, Ok(true))).count();
    assert_eq!(accepted, 1, "one step, once: {steps:?}");
}

/// Finishing an MFA transaction with a TOTP code: `Done` writes everything
/// (step, factor and pending recovery codes live, wrong-code count cleared,
/// transaction used); `TransactionUsed` and `StepUsed` write nothing.
pub async fn confirm_otp_writes_all_or_nothing(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    store
        .add_authenticators(&[
            factor("totp|1", &u, "otp", b"s", false, NOW),
            factor("recovery-code|1", &u, "recovery-code", &[1; 32], false, NOW),
            factor("totp|bob", &other, "otp", b"s", false, NOW),
        ])
        .await
        .unwrap();
    for t in ["t1", "t2"] {
        store
            .create_transaction(&mfa_transaction(t, &u, NOW + 300))
            .await
            .unwrap();
    }
    store
        .update_failures(&u, Box::new(|_| Some((3, NOW))))
        .await
        .unwrap();
    let confirm = |token_hash: &'static str, authenticator_id: &'static str, step: i64| {
        let (store, u) = (Arc::clone(&store), u.clone());
        async move {
            let c = OtpConfirmation {
                user_id: &u,
                authenticator_id,
                step,
                token_hash,
                now: NOW + 5,
            };
            store.confirm_otp(&c).await.unwrap()
        }
    };
    let failures = |user: String| {
        let store = Arc::clone(&store);
        async move { store.update_failures(&user, Box::new(|c| c)).await.unwrap() }
    };

    assert_eq!(
        confirm("t2", "totp|bob", 10).await,
        Confirmed::StepUsed,
        "another user's factor"
    );
    assert_eq!(
        confirm("nope", "totp|1", 10).await,
        Confirmed::TransactionUsed,
        "no such transaction"
    );
    let untouched = store.authenticators(&u).await.unwrap();
    assert!(
        untouched.iter().all(|a| !a.active && a.last_step == 0),
        "{untouched:?}"
    );
    assert_eq!(failures(u.clone()).await, Some((3, NOW)));

    assert_eq!(confirm("t1", "totp|1", 10).await, Confirmed::Done);
    let all = store.authenticators(&u).await.unwrap();
    assert!(
        all.iter().all(|a| a.active),
        "factor and recovery code live: {all:?}"
    );
    assert_eq!(all[0].last_step, 10);
    assert_eq!(
        store
            .find_transaction("t1")
            .await
            .unwrap()
            .and_then(|t| t.used_at),
        Some(NOW + 5)
    );
    assert_eq!(failures(u.clone()).await, None, "count cleared");

    store
        .update_failures(&u, Box::new(|_| Some((1, NOW))))
        .await
        .unwrap();
    assert_eq!(
        confirm("t1", "totp|1", 11).await,
        Confirmed::TransactionUsed
    );
    assert_eq!(
        store.authenticators(&u).await.unwrap()[0].last_step,
        10,
        "step not taken"
    );
    assert_eq!(failures(u.clone()).await, Some((1, NOW)), "count kept");
    assert_eq!(
        confirm("t2", "totp|1", 10).await,
        Confirmed::StepUsed,
        "a replay"
    );
    assert_eq!(
        store
            .find_transaction("t2")
            .await
            .unwrap()
            .and_then(|t| t.used_at),
        None
    );
    assert_eq!(failures(u.clone()).await, Some((1, NOW)), "count kept");
    assert_eq!(confirm("t2", "totp|1", 11).await, Confirmed::Done);
    let bob = store.authenticators(&other).await.unwrap();
    assert!(!bob[0].active, "the other user's factor is untouched");
}

/// Concurrent confirmations: of several codes for one transaction exactly
/// one finishes it; of one step offered to several transactions exactly one
/// is accepted and the other transactions stay open.
pub async fn concurrent_confirmations_finish_once(store: Arc<dyn Backend>) {
    const N: usize = 8;
    let u = add_user(&*store, "alice").await;
    store
        .add_authenticators(&[factor("totp|1", &u, "otp", b"s", false, NOW)])
        .await
        .unwrap();
    store
        .create_transaction(&mfa_transaction("one", &u, NOW + 300))
        .await
        .unwrap();
    let ends = together(N, |i| {
        let (store, u) = (Arc::clone(&store), u.clone());
        async move {
            let c = OtpConfirmation {
                user_id: &u,
                authenticator_id: "totp|1",
                step: 10 + i as i64,
                token_hash: "one",
                now: NOW,
            };
            store.confirm_otp(&c).await.expect("confirm")
        }
    })
    .await;
    let done: Vec<usize> = (0..N).filter(|&i| ends[i] == Confirmed::Done).collect();
    assert_eq!(done.len(), 1, "{ends:?}");
    let step = store.authenticators(&u).await.unwrap()[0].last_step;
    assert_eq!(step, 10 + done[0] as i64, "the winner's step, and only it");

    for i in 0..N {
        store
            .create_transaction(&mfa_transaction(&format!("t{i}"), &u, NOW + 300))
            .await
            .unwrap();
    }
    let ends = together(N, |i| {
        let (store, u) = (Arc::clone(&store), u.clone());
        async move {
            let token_hash = format!("t{i}");
            let c = OtpConfirmation {
                user_id: &u,
                authenticator_id: "totp|1",
                step: 100,
                token_hash: &token_hash,
                now: NOW,
            };
            store.confirm_otp(&c).await.expect("confirm")
        }
    })
    .await;
    let done: Vec<usize> = (0..N).filter(|&i| ends[i] == Confirmed::Done).collect();
    assert_eq!(done.len(), 1, "{ends:?}");
    for (i, end) in ends.iter().enumerate() {
        let t = store
            .find_transaction(&format!("t{i}"))
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(t.used_at.is_some(), i == done[0], "transaction {i}");
        if i != done[0] {
            assert_eq!(*end, Confirmed::StepUsed, "transaction {i}");
        }
    }
}

/// A live recovery code is spent once, for its successor, even when many
/// tasks present it at once; a pending code or another user's cannot be spent.
pub async fn replace_recovery_code_once(store: Arc<dyn Backend>) {
    const N: usize = 8;
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    store
        .add_authenticators(&[
            factor("totp|1", &u, "otp", b"s", true, NOW),
            factor("recovery-code|1", &u, "recovery-code", &[1; 32], true, NOW),
            factor("recovery-code|p", &u, "recovery-code", &[2; 32], false, NOW),
            factor(
                "recovery-code|b",
                &other,
                "recovery-code",
                &[3; 32],
                true,
                NOW,
            ),
        ])
        .await
        .unwrap();
    let spent = together(N, |i| {
        let (store, u) = (Arc::clone(&store), u.clone());
        let next = factor(
            &format!("recovery-code|n{i}"),
            &u,
            "recovery-code",
            &[10 + i as u8; 32],
            true,
            NOW + 1,
        );
        async move { store.replace_recovery_code(&u, &[1; 32], &next).await }
    })
    .await;
    let winners: Vec<usize> = (0..N).filter(|&i| matches!(spent[i], Ok(true))).collect();
    assert_eq!(winners.len(), 1, "{spent:?}");
    assert!(spent.iter().all(Result::is_ok), "{spent:?}");
    let listed = store.authenticators(&u).await.unwrap();
    let winner = format!("recovery-code|n{}", winners[0]);
    assert_eq!(
        factor_ids(&listed),
        ["totp|1", "recovery-code|p", winner.as_str()]
    );

    let next = factor(
        "recovery-code|x",
        &u,
        "recovery-code",
        &[9; 32],
        true,
        NOW + 2,
    );
    assert!(
        !store
            .replace_recovery_code(&u, &[2; 32], &next)
            .await
            .unwrap(),
        "pending"
    );
    assert!(
        !store
            .replace_recovery_code(&u, &[3; 32], &next)
            .await
            .unwrap(),
        "bob's"
    );
    assert!(
        !store
            .replace_recovery_code(&u, &[1; 32], &next)
            .await
            .unwrap(),
        "spent"
    );
    assert_eq!(store.authenticators(&other).await.unwrap().len(), 1);
    assert_eq!(
        store.authenticators(&u).await.unwrap().len(),
        3,
        "no successor stored"
    );
}
