//! The SQLite side's second-factor tests, run against PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::testing::TestDb;
use super::tests::{db, user};
use super::*;
use crate::store::Store;
use crate::store::mfa::MfaStore;
use crate::store::mfa::{Confirmed, OtpConfirmation};
use crate::store::mfa_fixtures::{authenticator, transaction};
use crate::store::mfa_transactions::FailureCount;
use crate::store::mfa_transactions::MfaTransactionStore;

pub(super) async fn store_with_user(db: &TestDb) -> PgStore {
    let s = db.store().await;
    let mut u = user("r", "u", None);
    u.user_id = "auth0|u".into();
    s.create_user(&u).await.unwrap();
    s
}

#[tokio::test]
async fn each_mfa_use_happens_once() {
    let db = db!();
    let s = store_with_user(&db).await;
    s.add_authenticators(&[
        authenticator("totp|1", "otp", b"sealed", false),
        authenticator("recovery-code|1", "recovery-code", b"h1", true),
    ])
    .await
    .unwrap();
    assert!(s.accept_step("totp|1", 10).await.unwrap());
    assert!(
        !s.accept_step("totp|1", 10).await.unwrap(),
        "same step: a replay"
    );
    assert!(
        !s.accept_step("totp|1", 9).await.unwrap(),
        "an earlier step"
    );
    assert_eq!(s.enrolled_users().await.unwrap(), ["auth0|u"]);

    let next = authenticator("recovery-code|2", "recovery-code", b"h2", true);
    assert!(
        s.replace_recovery_code("auth0|u", b"h1", &next)
            .await
            .unwrap()
    );
    assert!(
        !s.replace_recovery_code("auth0|u", b"h1", &next)
            .await
            .unwrap(),
        "spent"
    );

    s.create_transaction(&transaction("th")).await.unwrap();
    let oob = crate::store::mfa_transactions::OobChallenge {
        authenticator_id: "email|1".into(),
        oob_code_hash: "oh".into(),
        binding_hash: "bh".into(),
        expires_at: 300,
    };
    s.set_oob("th", &oob).await.unwrap();
    assert_eq!(
        s.find_transaction("th").await.unwrap().unwrap().oob,
        Some(oob)
    );
    assert!(s.finish_transaction("th", 1).await.unwrap());
    assert!(
        !s.finish_transaction("th", 2).await.unwrap(),
        "finished once"
    );
    assert_eq!(
        s.find_transaction("th").await.unwrap().unwrap().used_at,
        Some(1)
    );
    assert_eq!(s.sweep_transactions(601).await.unwrap(), 1);

    assert!(
        !s.remove_authenticator("auth0|u", "totp|1", true)
            .await
            .unwrap()
    );
    assert!(
        s.remove_authenticator("auth0|u", "totp|1", false)
            .await
            .unwrap()
    );
    assert!(s.authenticators("auth0|u").await.unwrap().is_empty());

    s.add_authenticators(&[authenticator("totp|2", "otp", b"s", false)])
        .await
        .unwrap();
    s.activate("auth0|u", &["totp|2".to_string()])
        .await
        .unwrap();
    assert!(s.authenticators("auth0|u").await.unwrap()[0].active);
    assert_eq!(s.reset_authenticators("auth0|u").await.unwrap(), 1);
    // Removing the user takes the rest along.
    s.add_authenticators(&[authenticator("totp|3", "otp", b"s", true)])
        .await
        .unwrap();
    assert!(s.remove_user("auth0|u").await.unwrap());
    assert!(s.authenticators("auth0|u").await.unwrap().is_empty());
}

#[tokio::test]
async fn an_otp_confirmation_writes_everything_or_nothing() {
    let db = db!();
    let s = store_with_user(&db).await;
    s.add_authenticators(&[
        authenticator("totp|1", "otp", b"sealed", false),
        authenticator("recovery-code|1", "recovery-code", b"h1", false),
    ])
    .await
    .unwrap();
    s.create_transaction(&transaction("t1")).await.unwrap();
    s.create_transaction(&transaction("t2")).await.unwrap();
    s.update_failures("auth0|u", Box::new(|_| Some((3, 0))))
        .await
        .unwrap();
    let confirm = |hash: &'static str, step: i64| OtpConfirmation {
        user_id: "auth0|u",
        authenticator_id: "totp|1",
        step,
        token_hash: hash,
        now: 5,
    };
    assert_eq!(
        s.confirm_otp(&confirm("t1", 10)).await.unwrap(),
        Confirmed::Done
    );
    let all = s.authenticators("auth0|u").await.unwrap();
    assert!(
        all.iter().all(|a| a.active),
        "factor and recovery code live"
    );
    assert_eq!(all[0].last_step, 10);
    assert_eq!(
        s.find_transaction("t1").await.unwrap().unwrap().used_at,
        Some(5)
    );
    assert_eq!(
        s.update_failures("auth0|u", Box::new(|c| c)).await.unwrap(),
        None
    );
    assert_eq!(
        s.confirm_otp(&confirm("t1", 11)).await.unwrap(),
        Confirmed::TransactionUsed
    );
    assert_eq!(s.authenticators("auth0|u").await.unwrap()[0].last_step, 10);
    assert_eq!(
        s.confirm_otp(&confirm("t2", 10)).await.unwrap(),
        Confirmed::StepUsed
    );
    assert_eq!(
        s.find_transaction("t2").await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(
        s.confirm_otp(&confirm("t2", 11)).await.unwrap(),
        Confirmed::Done
    );
    assert_eq!(
        s.confirm_otp(&confirm("missing", 12)).await.unwrap(),
        Confirmed::TransactionUsed
    );
}

#[tokio::test]
async fn failures_are_read_and_written_together() {
    let db = db!();
    let s = store_with_user(&db).await;
    let bump = |stored: Option<FailureCount>| Some((stored.map_or(0, |c| c.0) + 1, 5));
    for _ in 0..3 {
        s.update_failures("auth0|u", Box::new(bump)).await.unwrap();
    }
    assert_eq!(
        s.update_failures("auth0|u", Box::new(|c| c)).await.unwrap(),
        Some((3, 5))
    );
    assert_eq!(
        s.update_failures("auth0|u", Box::new(|_| None))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.update_failures("auth0|u", Box::new(|c| c)).await.unwrap(),
        None
    );
}
