//! Users: creation and its uniqueness of login names by lookup key (NFKC and
//! full case folding, usernames and e-mails in one name space per realm),
//! the lookups a login and the CLI make, and the writes of an administrator
//! or a successful login.

use std::sync::Arc;

use passgate::store::{Backend, MetadataUpdate, StoreError};
use serde_json::json;

use crate::fixtures::{NOW, ids, together, user};

/// A user reads back field for field as it was written.
pub async fn user_round_trips(store: Arc<dyn Backend>) {
    let mut alice = user("db", Some("Alice"), Some("alice@example.com"));
    alice.name = Some("Alice Liddell".into());
    alice.email_verified = true;
    alice.app_metadata = json!({"roles": ["admin"], "plan": {"seats": 3, "trial": false}});
    alice.user_metadata = json!({"lang": "de", "note": "ünïcödé ✓"});
    alice.last_login = Some(NOW - 10);
    alice.logins_count = 7;
    store.create_user(&alice).await.expect("create");
    let mut bob = user("db", None, Some("bob@example.com"));
    bob.password_hash = None;
    bob.blocked = true;
    store.create_user(&bob).await.expect("create");

    assert_eq!(store.get_user(&alice.user_id).await.unwrap(), Some(alice));
    assert_eq!(store.get_user(&bob.user_id).await.unwrap(), Some(bob));
    assert_eq!(store.get_user("auth0|nobody").await.unwrap(), None);
}

/// A username or e-mail whose lookup key is taken in the realm (by a
/// username or an e-mail) is refused, naming the clash, and nothing of it is
/// stored; so is a taken user id. Other realms, and names that differ after
/// folding, are free.
pub async fn login_names_clash_by_lookup_key(store: Arc<dyn Backend>) {
    let jurgen = user("db", Some("Jürgen"), Some("J.Doe@Example.com"));
    store.create_user(&jurgen).await.expect("create");
    let strasse = user("db", Some("straße"), None);
    store.create_user(&strasse).await.expect("create");
    // (username, e-mail, the clashing name the message quotes)
    let clashes = [
        ("JÜRGEN", None, "JÜRGEN"),
        ("Ju\u{308}rgen", None, "Ju\u{308}rgen"),
        ("ＪÜＲＧＥＮ", None, "ＪÜＲＧＥＮ"),
        ("STRASSE", None, "STRASSE"),
        ("j.doe@example.COM", None, "j.doe@example.COM"),
        ("someone", Some("JÜRGEN"), "JÜRGEN"),
        ("someone", Some("J.DOE@example.com"), "J.DOE@example.com"),
    ];
    for (username, email, quoted) in clashes {
        let got = store.create_user(&user("db", Some(username), email)).await;
        assert!(
            matches!(&got, Err(StoreError::Conflict(m)) if m.contains(quoted)),
            "{username:?} / {email:?}: {got:?}"
        );
    }
    let mut same_id = user("db", Some("other"), None);
    same_id.user_id = jurgen.user_id.clone();
    let got = store.create_user(&same_id).await;
    assert!(
        matches!(&got, Err(StoreError::Conflict(m)) if m.contains(&jurgen.user_id)),
        "{got:?}"
    );
    let mut listed = ids(&store.list_users("db").await.unwrap());
    listed.sort();
    let mut expected = vec![jurgen.user_id.clone(), strasse.user_id.clone()];
    expected.sort();
    assert_eq!(listed, expected, "nothing of the refused users is stored");

    let elsewhere = user("other", Some("jürgen"), Some("j.doe@example.com"));
    store.create_user(&elsewhere).await.expect("another realm");
    store
        .create_user(&user("db", Some("Jurgen"), None))
        .await
        .expect("u and ü stay apart");
    store
        .create_user(&user("db", Some("Jürgen2"), Some("jürgen@example.com")))
        .await
        .expect("a longer name is another name");
}

/// A login finds its user by username or e-mail, typed in any case or
/// normal form, in its realm only.
pub async fn find_login_by_username_or_email(store: Arc<dyn Backend>) {
    let jurgen = user("db", Some("Jürgen"), Some("J.Doe@Example.com"));
    let bob = user("db", Some("bob"), None);
    for u in [&jurgen, &bob] {
        store.create_user(u).await.expect("create");
    }
    let found = |realm: &'static str, typed: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let u = store.find_login(realm, typed).await.expect("find_login");
            u.map(|u| u.user_id)
        }
    };
    for typed in [
        "Jürgen",
        "JÜRGEN",
        "ju\u{308}rgen",
        "ＪÜＲＧＥＮ",
        "j.doe@example.com",
        "J.DOE@EXAMPLE.COM",
    ] {
        assert_eq!(
            found("db", typed).await,
            Some(jurgen.user_id.clone()),
            "{typed:?}"
        );
    }
    assert_eq!(found("db", "BOB").await, Some(bob.user_id.clone()));
    for typed in ["nobody", "jurgen", "Jürgen ", "j.doe"] {
        assert_eq!(found("db", typed).await, None, "{typed:?}");
    }
    assert_eq!(found("other", "Jürgen").await, None, "another realm");
    let got = store.find_login("db", "JÜRGEN").await.unwrap();
    assert_eq!(got, Some(jurgen), "the whole user, as stored");
}

/// Without a realm, a login name finds at most one user in each realm.
pub async fn find_login_everywhere_gives_one_per_realm(store: Arc<dyn Backend>) {
    let a = user("db", Some("alice"), None);
    let b = user("partners", Some("ALICE"), Some("alice@partner.example"));
    let c = user("staff", Some("carol"), Some("Alice"));
    let d = user("db", Some("dave"), Some("dave@example.com"));
    for u in [&a, &b, &c, &d] {
        store.create_user(u).await.expect("create");
    }
    let mut found = store.find_login_everywhere("Alice").await.unwrap();
    found.sort_by(|x, y| x.realm.cmp(&y.realm));
    assert_eq!(found, vec![a, b, c]);
    assert!(
        store
            .find_login_everywhere("nobody")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&store
            .find_login_everywhere("DAVE@example.com")
            .await
            .unwrap()),
        [d.user_id]
    );
}

/// A realm's users, by login name (username, else e-mail) without regard to case.
pub async fn list_users_by_name(store: Arc<dyn Backend>) {
    let names = [
        (Some("bob"), None),
        (Some("Alice"), None),
        (None, Some("carol@example.com")),
        (Some("Dave"), Some("a@example.com")),
    ];
    for (username, email) in names {
        store
            .create_user(&user("db", username, email))
            .await
            .expect("create");
    }
    store
        .create_user(&user("other", Some("aaron"), None))
        .await
        .expect("create");
    let listed: Vec<String> = store
        .list_users("db")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.or(u.email).unwrap_or_default())
        .collect();
    assert_eq!(listed, ["Alice", "bob", "carol@example.com", "Dave"]);
    assert!(store.list_users("empty").await.unwrap().is_empty());
}

/// A removed user is gone (once), and its login name is free again.
pub async fn remove_user_frees_the_name(store: Arc<dyn Backend>) {
    let alice = user("db", Some("alice"), Some("alice@example.com"));
    let bob = user("db", Some("bob"), None);
    for u in [&alice, &bob] {
        store.create_user(u).await.expect("create");
    }
    assert!(store.remove_user(&alice.user_id).await.unwrap());
    assert_eq!(store.get_user(&alice.user_id).await.unwrap(), None);
    assert_eq!(store.find_login("db", "alice").await.unwrap(), None);
    assert!(!store.remove_user(&alice.user_id).await.unwrap(), "once");
    assert!(!store.remove_user("auth0|nobody").await.unwrap());
    assert!(store.get_user(&bob.user_id).await.unwrap().is_some());
    store
        .create_user(&user("db", Some("ALICE@example.com"), None))
        .await
        .expect("the name is free again");
}

/// Blocking, unblocking and a new password hash: each stamps `updated_at`
/// and says whether there was such a user.
pub async fn block_and_set_password(store: Arc<dyn Backend>) {
    let alice = user("db", Some("alice"), None);
    store.create_user(&alice).await.expect("create");
    let get = || {
        let store = Arc::clone(&store);
        let id = alice.user_id.clone();
        async move { store.get_user(&id).await.unwrap().expect("stored") }
    };

    assert!(store.set_blocked(&alice.user_id, true, NOW).await.unwrap());
    let got = get().await;
    assert!(got.blocked);
    assert_eq!(got.updated_at, NOW);
    let found = store.find_login("db", "alice").await.unwrap();
    assert!(
        found.is_some_and(|u| u.blocked),
        "a blocked user is found, and shows as blocked"
    );
    assert!(
        store
            .set_blocked(&alice.user_id, false, NOW + 1)
            .await
            .unwrap()
    );
    assert_eq!(
        (get().await.blocked, get().await.updated_at),
        (false, NOW + 1)
    );
    assert!(!store.set_blocked("auth0|nobody", true, NOW).await.unwrap());

    let hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
    assert!(
        store
            .set_password_hash(&alice.user_id, hash, NOW + 2)
            .await
            .unwrap()
    );
    let got = get().await;
    assert_eq!(
        (got.password_hash.as_deref(), got.updated_at),
        (Some(hash), NOW + 2)
    );
    assert!(
        !store
            .set_password_hash("auth0|nobody", hash, NOW)
            .await
            .unwrap()
    );
}

/// A login counts, stamps `last_login`, and stores a rehash when there is
/// one; concurrent logins each count.
pub async fn record_login_counts_and_rehashes(store: Arc<dyn Backend>) {
    let alice = user("db", Some("alice"), None);
    store.create_user(&alice).await.expect("create");
    let old_hash = alice.password_hash.clone();

    store.record_login(&alice.user_id, NOW, None).await.unwrap();
    let got = store
        .get_user(&alice.user_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!((got.logins_count, got.last_login), (1, Some(NOW)));
    assert_eq!(got.password_hash, old_hash, "no rehash: the hash stays");

    store
        .record_login(&alice.user_id, NOW + 5, Some("$argon2id$rehashed"))
        .await
        .unwrap();
    let got = store
        .get_user(&alice.user_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (
            got.logins_count,
            got.last_login,
            got.password_hash.as_deref()
        ),
        (2, Some(NOW + 5), Some("$argon2id$rehashed"))
    );

    const LOGINS: usize = 16;
    let done = together(LOGINS, |_| {
        let store = Arc::clone(&store);
        let id = alice.user_id.clone();
        async move { store.record_login(&id, NOW + 10, None).await }
    })
    .await;
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    let got = store
        .get_user(&alice.user_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.logins_count, 2 + LOGINS as i64, "every login counted");
}

/// Metadata from a login's scripts replaces what it names and leaves the rest.
pub async fn update_metadata_replaces_what_it_names(store: Arc<dyn Backend>) {
    let mut alice = user("db", Some("alice"), None);
    alice.app_metadata = json!({"plan": "free", "roles": ["user"]});
    alice.user_metadata = json!({"lang": "en"});
    store.create_user(&alice).await.expect("create");
    let update =
        |app: Option<serde_json::Value>, mine: Option<serde_json::Value>, now| MetadataUpdate {
            user_id: alice.user_id.clone(),
            app_metadata: app,
            user_metadata: mine,
            now,
        };
    let read = || {
        let store = Arc::clone(&store);
        let id = alice.user_id.clone();
        async move {
            let u = store.get_user(&id).await.unwrap().expect("stored");
            (u.app_metadata, u.user_metadata, u.updated_at)
        }
    };

    let app = json!({"plan": "pro", "seats": [1, 2.5, null], "ok": true});
    assert!(
        store
            .update_metadata(&update(Some(app.clone()), None, NOW))
            .await
            .unwrap()
    );
    assert_eq!(read().await, (app.clone(), json!({"lang": "en"}), NOW));

    let mine = json!({"lang": "fr", "nested": {"deep": {"er": "é"}}});
    assert!(
        store
            .update_metadata(&update(None, Some(mine.clone()), NOW + 1))
            .await
            .unwrap()
    );
    assert_eq!(read().await, (app, mine, NOW + 1));

    let both = (json!({}), json!({"x": 1}));
    let changed = store
        .update_metadata(&update(Some(both.0.clone()), Some(both.1.clone()), NOW + 2))
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(read().await, (both.0, both.1, NOW + 2));

    let nobody = MetadataUpdate {
        user_id: "auth0|nobody".into(),
        ..update(Some(json!({"a": 1})), None, NOW)
    };
    assert!(!store.update_metadata(&nobody).await.unwrap());
}

/// The distinct costs of the bcrypt hashes still stored (imported users).
pub async fn bcrypt_costs_of_stored_hashes(store: Arc<dyn Backend>) {
    assert!(
        store.bcrypt_costs().await.unwrap().is_empty(),
        "empty store"
    );
    let hashes = [
        Some("$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"),
        Some("$2y$12$QjSH496pcT5CEbzjD/vtVeH03tfHKFy36d4J0Ltp3lRtee9HDxY3K"),
        Some("$2a$10$vI8aWBnW3fID.ZQ4/zo1G.q1lRps.9cGLcZEiGDMVr5yUP1KUOYTa"),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"),
        None,
    ];
    let mut users = Vec::new();
    for (i, hash) in hashes.into_iter().enumerate() {
        let mut u = user("db", Some(&format!("user{i}")), None);
        u.password_hash = hash.map(str::to_string);
        store.create_user(&u).await.expect("create");
        users.push(u.user_id);
    }
    assert_eq!(store.bcrypt_costs().await.unwrap(), [10, 12]);
    let argon = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA";
    store
        .set_password_hash(&users[1], argon, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.bcrypt_costs().await.unwrap(),
        [10],
        "rehashed: cost 12 gone"
    );
}
