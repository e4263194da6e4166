//! What the cases build their data from (users, sessions, refresh tokens,
//! second factors, MFA transactions) and [`together`], which starts tasks at
//! one instant so a race is a race.

use std::future::Future;
use std::sync::Arc;

use passgate::store::mfa::{MfaTransaction, StoredAuthenticator};
use passgate::store::sessions::{Decide, Decision, RefreshRecord, Session};
use passgate::store::{Backend, MetadataUpdate, User, new_user_id};
use tokio::sync::Barrier;

/// "Now" in every case: the store takes time as an argument.
pub const NOW: i64 = 1_700_000_000;
/// A day, in seconds.
pub const DAY: i64 = 86_400;

/// A user of `realm` (not stored), with an argon2 hash and empty metadata.
pub fn user(realm: &str, username: Option<&str>, email: Option<&str>) -> User {
    User {
        user_id: new_user_id(),
        realm: realm.into(),
        username: username.map(str::to_string),
        email: email.map(str::to_string),
        email_verified: false,
        name: None,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into()),
        blocked: false,
        app_metadata: serde_json::json!({}),
        user_metadata: serde_json::json!({}),
        created_at: NOW - DAY,
        updated_at: NOW - DAY,
        last_login: None,
        logins_count: 0,
    }
}

/// Store a user named `username` in realm `db`; its id.
pub async fn add_user(store: &dyn Backend, username: &str) -> String {
    let u = user("db", Some(username), None);
    store.create_user(&u).await.expect("create user");
    u.user_id
}

/// The ids of `users`, in their order.
pub fn ids(users: &[User]) -> Vec<String> {
    users.iter().map(|u| u.user_id.clone()).collect()
}

/// A day-long session of `user_id` with client `app`, without refresh token.
pub fn session(sid: &str, user_id: &str, created_at: i64) -> Session {
    Session {
        sid: sid.into(),
        user_id: user_id.into(),
        client_id: "app".into(),
        realm: "db".into(),
        audience: "https://api.example.com".into(),
        scope: "openid offline_access".into(),
        created_at,
        expires_at: created_at + DAY,
        revoked_at: None,
        has_refresh: false,
        amr: "pwd".into(),
    }
}

/// A refresh token of session `sid`, issued at `created_at`.
pub fn refresh(token_hash: &str, sid: &str, created_at: i64) -> RefreshRecord {
    RefreshRecord {
        token_hash: token_hash.into(),
        sid: sid.into(),
        client_id: "app".into(),
        created_at,
        last_used_at: created_at,
        absolute_expires_at: created_at + 30 * DAY,
        retired_at_ms: None,
    }
}

/// Store a session `sid` of `user_id` with its first refresh token,
/// `<sid>/0`; both as stored.
pub async fn login(
    store: &dyn Backend,
    sid: &str,
    user_id: &str,
    created_at: i64,
) -> (Session, RefreshRecord) {
    let s = Session {
        has_refresh: true,
        ..session(sid, user_id, created_at)
    };
    let r = refresh(&format!("{sid}/0"), sid, created_at);
    store
        .create_session(&s, Some(&r), 100, created_at)
        .await
        .expect("create session");
    (s, r)
}

/// The session `sid` as `list_sessions` shows it (listing from time 0, so
/// expired sessions not yet swept show too).
pub async fn stored_session(store: &dyn Backend, user_id: &str, sid: &str) -> Option<Session> {
    let all = store
        .list_sessions(user_id, 0)
        .await
        .expect("list sessions");
    all.into_iter().find(|s| s.sid == sid)
}

/// A decision that rotates to `successor`, whatever it is shown.
pub fn rotate_to(successor: RefreshRecord, retired_at_ms: i64, session_expires_at: i64) -> Decide {
    Box::new(move |_, _| Decision::Rotate {
        successor: successor.clone(),
        retired_at_ms,
        session_expires_at,
    })
}

/// A decision that refuses.
pub fn refuse() -> Decide {
    Box::new(|_, _| Decision::Refuse)
}

/// No metadata to write with an exchange.
pub fn no_metadata() -> MetadataUpdate {
    MetadataUpdate::default()
}

/// New `app_metadata` for `user_id`.
pub fn app_metadata(user_id: &str, value: serde_json::Value, now: i64) -> MetadataUpdate {
    MetadataUpdate {
        user_id: user_id.into(),
        app_metadata: Some(value),
        user_metadata: None,
        now,
    }
}

/// An authenticator of `user_id`, created at `created_at`.
pub fn factor(
    id: &str,
    user_id: &str,
    kind: &str,
    secret: &[u8],
    active: bool,
    created_at: i64,
) -> StoredAuthenticator {
    StoredAuthenticator {
        id: id.into(),
        user_id: user_id.into(),
        kind: kind.into(),
        secret: secret.to_vec(),
        active,
        last_step: 0,
        created_at,
    }
}

/// An open MFA transaction of `user_id`, expiring at `expires_at`.
pub fn mfa_transaction(token_hash: &str, user_id: &str, expires_at: i64) -> MfaTransaction {
    MfaTransaction {
        token_hash: token_hash.into(),
        user_id: user_id.into(),
        client_id: "app".into(),
        realm: "db".into(),
        audience: "https://api.example.com".into(),
        decision: r#"{"scope":"openid"}"#.into(),
        created_at: expires_at - 300,
        expires_at,
        used_at: None,
        oob: None,
    }
}

/// Run `task(0)`, …, `task(n - 1)` as tasks on the runtime's worker threads,
/// all released at once by a barrier; their outputs in task order. A panic in
/// a task is raised again here, so its assertion fails the case.
pub async fn together<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let work = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(n);
    for handle in handles {
        match handle.await {
            Ok(output) => outputs.push(output),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a task did not finish: {e}"),
        }
    }
    outputs
}

/// The ids of `list`, in their order.
pub fn factor_ids(list: &[StoredAuthenticator]) -> Vec<&str> {
    list.iter().map(|a| a.id.as_str()).collect()
}

/// `v`, sorted (for results whose order the contract leaves open).
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
