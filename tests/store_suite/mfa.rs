//! Second factors over their life: enrolment (whole or not at all),
//! activation, the removal rules, resets, and who counts as enrolled.

use std::sync::Arc;

use passgate::store::Backend;
use passgate::store::mfa::StoredAuthenticator;

use crate::fixtures::{NOW, add_user, factor, factor_ids, mfa_transaction};

/// An enrolment is stored whole or not at all; a user's authenticators read
/// back oldest first, field for field, and only theirs. A user that does not
/// exist enrols nothing.
pub async fn authenticators_oldest_first_all_or_nothing(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    let enrolment = [
        factor("totp|a", &u, "otp", b"\x00sealed\xffseed", false, NOW + 20),
        factor(
            "email|b",
            &u,
            "email",
            b"alice@example.com",
            false,
            NOW + 10,
        ),
        factor(
            "recovery-code|c",
            &u,
            "recovery-code",
            &[7; 32],
            false,
            NOW + 20,
        ),
    ];
    store.add_authenticators(&enrolment).await.unwrap();
    store
        .add_authenticators(&[factor("totp|z", &other, "otp", b"s", true, NOW)])
        .await
        .unwrap();
    let stored = store.authenticators(&u).await.unwrap();
    let expected = [
        enrolment[1].clone(),
        enrolment[0].clone(),
        enrolment[2].clone(),
    ];
    assert_eq!(stored, expected, "{stored:?}");

    let clash = [
        factor("totp|d", &u, "otp", b"s", false, NOW + 30),
        factor("email|b", &u, "email", b"x@example.com", false, NOW + 30),
    ];
    assert!(
        store.add_authenticators(&clash).await.is_err(),
        "a taken id"
    );
    assert_eq!(
        factor_ids(&store.authenticators(&u).await.unwrap()),
        ["email|b", "totp|a", "recovery-code|c"]
    );
    let orphan = [factor("totp|o", "auth0|nobody", "otp", b"s", false, NOW)];
    assert!(
        store.add_authenticators(&orphan).await.is_err(),
        "no such user"
    );
    assert!(
        store
            .authenticators("auth0|nobody")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Activation marks the named authenticators of the user, no others.
pub async fn activate_marks_the_named(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    store
        .add_authenticators(&[
            factor("totp|1", &u, "otp", b"s", false, NOW),
            factor("email|1", &u, "email", b"a@example.com", false, NOW + 1),
            factor("totp|2", &other, "otp", b"s", false, NOW),
        ])
        .await
        .unwrap();
    store
        .activate(&u, &["totp|1".to_string(), "totp|2".to_string()])
        .await
        .unwrap();
    let active = |list: Vec<StoredAuthenticator>| list.iter().map(|a| a.active).collect::<Vec<_>>();
    assert_eq!(
        active(store.authenticators(&u).await.unwrap()),
        [true, false]
    );
    assert_eq!(
        active(store.authenticators(&other).await.unwrap()),
        [false],
        "not theirs to name"
    );
    store.activate(&u, &[]).await.unwrap();
}

/// Removal: `inactive_only` spares a confirmed factor; the last real factor
/// takes the recovery codes along, another left keeps them; another user's
/// id is not removed.
pub async fn remove_authenticator_rules(store: Arc<dyn Backend>) {
    let u = add_user(&*store, "alice").await;
    let other = add_user(&*store, "bob").await;
    store
        .add_authenticators(&[
            factor("totp|1", &u, "otp", b"s", true, NOW),
            factor("email|1", &u, "email", b"a@example.com", false, NOW + 1),
            factor(
                "recovery-code|1",
                &u,
                "recovery-code",
                &[1; 32],
                true,
                NOW + 2,
            ),
            factor("totp|b", &other, "otp", b"s", true, NOW),
        ])
        .await
        .unwrap();
    assert!(
        !store
            .remove_authenticator(&u, "totp|1", true)
            .await
            .unwrap(),
        "confirmed"
    );
    assert!(
        !store
            .remove_authenticator(&u, "totp|b", false)
            .await
            .unwrap(),
        "bob's"
    );
    assert_eq!(store.authenticators(&other).await.unwrap().len(), 1);
    assert!(
        store
            .remove_authenticator(&u, "email|1", true)
            .await
            .unwrap(),
        "pending"
    );
    assert_eq!(
        factor_ids(&store.authenticators(&u).await.unwrap()),
        ["totp|1", "recovery-code|1"]
    );
    assert!(
        !store
            .remove_authenticator(&u, "email|1", false)
            .await
            .unwrap(),
        "gone"
    );
    assert!(
        store
            .remove_authenticator(&u, "totp|1", false)
            .await
            .unwrap()
    );
    assert!(
        store.authenticators(&u).await.unwrap().is_empty(),
        "codes follow the last factor"
    );

    store
        .add_authenticators(&[
            factor("totp|2", &u, "otp", b"s", true, NOW),
            factor("email|2", &u, "email", b"a@example.com", true, NOW + 1),
            factor(
                "recovery-code|2",
                &u,
                "recovery-code",
                &[2; 32],
                true,
                NOW + 2,
            ),
        ])
        .await
        .unwrap();
    assert!(
        store
            .remove_authenticator(&u, "totp|2", false)
            .await
            .unwrap()
    );
    assert_eq!(
        factor_ids(&store.authenticators(&u).await.unwrap()),
        ["email|2", "recovery-code|2"]
    );
}

/// Enrolled users have an active factor other than recovery codes; a reset
/// removes a user's factors (counting them) and the wrong-code count, and so
/// does removing the user.
pub async fn reset_and_enrolled_users(store: Arc<dyn Backend>) {
    let a = add_user(&*store, "a").await;
    let b = add_user(&*store, "b").await;
    let c = add_user(&*store, "c").await;
    let d = add_user(&*store, "d").await;
    store
        .add_authenticators(&[
            factor("totp|a", &a, "otp", b"s", true, NOW),
            factor("recovery-code|a", &a, "recovery-code", &[1; 32], true, NOW),
            factor("totp|b", &b, "otp", b"s", false, NOW),
            factor("recovery-code|c", &c, "recovery-code", &[2; 32], true, NOW),
            factor("email|d", &d, "email", b"d@example.com", true, NOW),
        ])
        .await
        .unwrap();
    let enrolled = || {
        let store = Arc::clone(&store);
        async move {
            let mut users = store.enrolled_users().await.unwrap();
            users.sort();
            users
        }
    };
    let mut expected = vec![a.clone(), d.clone()];
    expected.sort();
    assert_eq!(enrolled().await, expected);

    store
        .update_failures(&a, Box::new(|_| Some((2, NOW))))
        .await
        .unwrap();
    assert_eq!(store.reset_authenticators(&a).await.unwrap(), 2);
    assert!(store.authenticators(&a).await.unwrap().is_empty());
    assert_eq!(
        store.update_failures(&a, Box::new(|c| c)).await.unwrap(),
        None,
        "count cleared"
    );
    assert_eq!(store.reset_authenticators(&a).await.unwrap(), 0);
    assert_eq!(enrolled().await, std::slice::from_ref(&d));

    store
        .create_transaction(&mfa_transaction("td", &d, NOW + 300))
        .await
        .unwrap();
    assert!(store.remove_user(&d).await.unwrap());
    assert!(
        store.authenticators(&d).await.unwrap().is_empty(),
        "a removed user's factors go"
    );
    assert_eq!(
        store.find_transaction("td").await.unwrap(),
        None,
        "and their transactions"
    );
    assert!(enrolled().await.is_empty());
}
