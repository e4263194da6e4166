#![allow(clippy::unwrap_used)]
use super::*;
use crate::store::User;
use crate::store::mfa_fixtures::{authenticator, transaction};

fn store_with_user() -> SqliteDb {
    let s = SqliteDb::in_memory().unwrap();
    s.create_user(&User {
        user_id: "auth0|u".into(),
        realm: "r".into(),
        username: Some("u".into()),
        email: None,
        email_verified: false,
        name: None,
        password_hash: None,
        blocked: false,
        app_metadata: serde_json::json!({}),
        user_metadata: serde_json::json!({}),
        created_at: 0,
        updated_at: 0,
        last_login: None,
        logins_count: 0,
    })
    .unwrap();
    s
}

#[test]
fn each_use_happens_once() {
    let s = store_with_user();
    s.add_authenticators(&[
        authenticator("totp|1", "otp", b"sealed", false),
        authenticator("recovery-code|1", "recovery-code", b"h1", true),
    ])
    .unwrap();
    assert!(s.accept_step("totp|1", 10).unwrap());
    assert!(!s.accept_step("totp|1", 10).unwrap(), "same step: a replay");
    assert!(!s.accept_step("totp|1", 9).unwrap(), "an earlier step");
    assert_eq!(s.enrolled_users().unwrap(), ["auth0|u"]);

    let next = authenticator("recovery-code|2", "recovery-code", b"h2", true);
    assert!(s.replace_recovery_code("auth0|u", b"h1", &next).unwrap());
    assert!(
        !s.replace_recovery_code("auth0|u", b"h1", &next).unwrap(),
        "spent"
    );

    let t = transaction("th");
    s.create_transaction(&t).unwrap();
    assert!(s.finish_transaction("th", 1).unwrap());
    assert!(!s.finish_transaction("th", 2).unwrap(), "finished once");
    assert_eq!(s.find_transaction("th").unwrap().unwrap().used_at, Some(1));
    assert_eq!(s.sweep_transactions(601).unwrap(), 1);

    // A confirmed factor is not removed as a pending one; removing the
    // last factor takes its recovery codes along.
    assert!(!s.remove_authenticator("auth0|u", "totp|1", true).unwrap());
    assert!(s.remove_authenticator("auth0|u", "totp|1", false).unwrap());
    assert!(s.authenticators("auth0|u").unwrap().is_empty());
}

#[test]
fn an_otp_confirmation_writes_everything_or_nothing() {
    let s = store_with_user();
    s.add_authenticators(&[
        authenticator("totp|1", "otp", b"sealed", false),
        authenticator("recovery-code|1", "recovery-code", b"h1", false),
    ])
    .unwrap();
    s.create_transaction(&transaction("t1")).unwrap();
    s.create_transaction(&transaction("t2")).unwrap();
    s.update_failures("auth0|u", &mut |_| Some((3, 0))).unwrap();
    let confirm = |hash: &'static str, step: i64| OtpConfirmation {
        user_id: "auth0|u",
        authenticator_id: "totp|1",
        step,
        token_hash: hash,
        now: 5,
    };
    assert_eq!(s.confirm_otp(&confirm("t1", 10)).unwrap(), Confirmed::Done);
    let all = s.authenticators("auth0|u").unwrap();
    assert!(
        all.iter().all(|a| a.active),
        "factor and recovery code live"
    );
    assert_eq!(all[0].last_step, 10);
    assert_eq!(s.find_transaction("t1").unwrap().unwrap().used_at, Some(5));
    assert_eq!(
        s.update_failures("auth0|u", &mut |c| c).unwrap(),
        None,
        "count cleared"
    );

    // A finished transaction: the step is not accepted.
    assert_eq!(
        s.confirm_otp(&confirm("t1", 11)).unwrap(),
        Confirmed::TransactionUsed
    );
    assert_eq!(s.authenticators("auth0|u").unwrap()[0].last_step, 10);
    // A replayed step: the open transaction stays open.
    assert_eq!(
        s.confirm_otp(&confirm("t2", 10)).unwrap(),
        Confirmed::StepUsed
    );
    assert_eq!(s.find_transaction("t2").unwrap().unwrap().used_at, None);
    assert_eq!(s.confirm_otp(&confirm("t2", 11)).unwrap(), Confirmed::Done);
}

#[test]
fn failures_are_read_and_written_together() {
    let s = store_with_user();
    let bump = |stored: Option<FailureCount>| Some((stored.map_or(0, |c| c.0) + 1, 5));
    for _ in 0..3 {
        s.update_failures("auth0|u", &mut |c| bump(c)).unwrap();
    }
    assert_eq!(
        s.update_failures("auth0|u", &mut |c| c).unwrap(),
        Some((3, 5))
    );
    assert_eq!(s.update_failures("auth0|u", &mut |_| None).unwrap(), None);
    assert_eq!(s.reset_authenticators("auth0|u").unwrap(), 0);
}
