//! `passgate store copy`: an embedded store with every kind of row is
//! copied into PostgreSQL and read back through the PostgreSQL store's
//! traits; a second copy writes nothing twice; an interrupted copy
//! completes on a rerun; a database with other data is refused unless
//! forced; bad sources and targets are refused before anything is written;
//! and the command itself, end to end. Skipped loudly without PostgreSQL
//! outside CI, as the other PostgreSQL tests are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use passgate::store::mfa::{MfaStore, StoredAuthenticator};
use passgate::store::mfa_transactions::{MfaTransaction, MfaTransactionStore, OobChallenge};
use passgate::store::postgres::copy::{CopyError, CopyOptions, CopyReport, Quiet, copy_sqlite};
use passgate::store::postgres::testing::TestDb;
use passgate::store::protect::ProtectStore;
use passgate::store::sessions::{Decision, RefreshRecord, Session, SessionStore};
use passgate::store::settings::SettingsStore;
use passgate::store::{Backend, MetadataUpdate, PgStore, SqliteStore, Store, User};
use serde_json::json;

const REALM: &str = "Username-Password-Authentication";
const NOW: i64 = 1_700_000_000;

macro_rules! db {
    () => {
        match TestDb::create().await {
            Some(db) => db,
            None => return,
        }
    };
}

fn user(id: &str, username: &str, email: Option<&str>) -> User {
    User {
        user_id: id.into(),
        realm: REALM.into(),
        username: Some(username.into()),
        email: email.map(str::to_string),
        email_verified: true,
        name: Some(format!("{username} N.")),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        blocked: false,
        app_metadata: json!({"roles": ["admin"], "plan": {"tier": 2}}),
        user_metadata: json!({"theme": "dark"}),
        created_at: NOW - 100,
        updated_at: NOW - 50,
        last_login: Some(NOW - 10),
        logins_count: 7,
    }
}

fn session(sid: &str, user_id: &str, created_at: i64) -> Session {
    Session {
        sid: sid.into(),
        user_id: user_id.into(),
        client_id: "app".into(),
        realm: REALM.into(),
        audience: "https://api.example.com".into(),
        scope: "openid offline_access".into(),
        created_at,
        expires_at: NOW + 3600,
        revoked_at: None,
        has_refresh: true,
        amr: "pwd mfa".into(),
    }
}

fn refresh(hash: &str, sid: &str) -> RefreshRecord {
    RefreshRecord {
        token_hash: hash.into(),
        sid: sid.into(),
        client_id: "app".into(),
        created_at: NOW - 5,
        last_used_at: NOW - 5,
        absolute_expires_at: NOW + 86_400,
        retired_at_ms: None,
    }
}

fn rotate(to: &str, sid: &str, at_ms: i64) -> passgate::store::sessions::Decide {
    let successor = refresh(to, sid);
    Box::new(move |_, _| Decision::Rotate {
        successor: successor.clone(),
        retired_at_ms: at_ms,
        session_expires_at: NOW + 3600,
    })
}

/// An embedded store with a row in every table: users (one imported with
/// a bcrypt hash, metadata), sessions with a rotated refresh family,
/// revocations, brute-force and IP counters, a setting, an MFA enrolment,
/// an MFA transaction and a wrong-code count.
async fn embedded(dir: &Path) -> PathBuf {
    let path = dir.join("passgate.db");
    let s = SqliteStore::open(&path).unwrap();
    s.create_user(&user("auth0|jurgen", "Jürgen", Some("jurgen@example.com")))
        .await
        .unwrap();
    s.create_user(&user("auth0|ann", "ann", None))
        .await
        .unwrap();
    let hash = bcrypt::hash("imported pw", 4).unwrap();
    let records = passgate::identity::import::parse(
        &json!([{"email": "legacy@example.com", "user_id": "legacy1",
                 "app_metadata": {"legacy": true},
                 "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": hash}}}])
        .to_string(),
    )
    .unwrap();
    let report = passgate::identity::import::import(&s, REALM, records, NOW, |_| ())
        .await
        .unwrap();
    assert_eq!(report.imported, 1);

    for (i, sid) in ["s1", "s2", "s3", "s4", "s5"].into_iter().enumerate() {
        let owner = if i.is_multiple_of(2) {
            "auth0|jurgen"
        } else {
            "auth0|ann"
        };
        s.create_session(
            &session(sid, owner, NOW - 20 + i as i64),
            Some(&refresh(&format!("{sid}-r1"), sid)),
            10,
            NOW,
        )
        .await
        .unwrap();
    }
    let metadata = MetadataUpdate::default();
    let got = s
        .exchange_refresh("s1-r1", &metadata, rotate("s1-r2", "s1", NOW * 1000))
        .await
        .unwrap();
    assert!(got.is_some());
    // Revoked out of creation order, so the log's order is its own.
    for sid in ["s4", "s2", "s5"] {
        assert!(s.revoke_session(sid, NOW).await.unwrap());
    }
    s.add_login_failure("jürgen", "192.0.2.7", NOW, NOW - 900)
        .await
        .unwrap();
    s.add_login_failure("jürgen", "192.0.2.7", NOW + 1, NOW - 900)
        .await
        .unwrap();
    s.add_ip_failure("192.0.2.7", NOW, 60).await.unwrap();
    assert_eq!(
        s.remember_first("cutover", NOW - 1000).await.unwrap(),
        NOW - 1000
    );

    s.add_authenticators(&[
        StoredAuthenticator {
            id: "totp|01".into(),
            user_id: "auth0|jurgen".into(),
            kind: "otp".into(),
            secret: vec![0, 1, 2, 250, 255, 9],
            active: false,
            last_step: 0,
            created_at: NOW - 30,
        },
        StoredAuthenticator {
            id: "recovery-code|02".into(),
            user_id: "auth0|jurgen".into(),
            kind: "recovery-code".into(),
            secret: vec![7; 32],
            active: false,
            last_step: 0,
            created_at: NOW - 30,
        },
    ])
    .await
    .unwrap();
    assert!(s.accept_step("totp|01", 56_666_666).await.unwrap());
    s.create_transaction(&MfaTransaction {
        token_hash: "mfa-t1".into(),
        user_id: "auth0|jurgen".into(),
        client_id: "app".into(),
        realm: REALM.into(),
        audience: "https://api.example.com".into(),
        decision: json!({"scope": "openid"}).to_string(),
        created_at: NOW,
        expires_at: NOW + 300,
        used_at: None,
        oob: None,
    })
    .await
    .unwrap();
    s.set_oob(
        "mfa-t1",
        &OobChallenge {
            authenticator_id: "email|03".into(),
            oob_code_hash: "oob".into(),
            binding_hash: "bind".into(),
            expires_at: NOW + 200,
        },
    )
    .await
    .unwrap();
    s.update_failures("auth0|jurgen", Box::new(|_| Some((2, NOW - 3))))
        .await
        .unwrap();
    drop(s);
    path
}

async fn copy(from: &Path, db: &TestDb, options: CopyOptions) -> Result<CopyReport, CopyError> {
    copy_sqlite(from, db.settings(), &options, &mut Quiet).await
}

fn rows(report: &CopyReport) -> u64 {
    report.tables.iter().map(|t| t.rows).sum()
}

fn copied(report: &CopyReport) -> u64 {
    report.tables.iter().map(|t| t.copied).sum()
}

/// Everything the two stores answer the same, through the traits.
async fn same_answers(sqlite: &dyn Backend, pg: &dyn Backend) {
    for id in ["auth0|jurgen", "auth0|ann", "legacy1"] {
        assert_eq!(
            sqlite.get_user(id).await.unwrap(),
            pg.get_user(id).await.unwrap(),
            "{id}"
        );
        assert_eq!(
            sqlite.list_sessions(id, NOW).await.unwrap(),
            pg.list_sessions(id, NOW).await.unwrap(),
            "{id}"
        );
        assert_eq!(
            sqlite.authenticators(id).await.unwrap(),
            pg.authenticators(id).await.unwrap(),
            "{id}"
        );
    }
    assert_eq!(
        sqlite.list_users(REALM).await.unwrap(),
        pg.list_users(REALM).await.unwrap()
    );
    assert_eq!(
        sqlite.revocations_since(0).await.unwrap(),
        pg.revocations_since(0).await.unwrap(),
        "the log, its seq values and order"
    );
    assert_eq!(
        sqlite.revoked_sessions(NOW).await.unwrap(),
        pg.revoked_sessions(NOW).await.unwrap()
    );
    for hash in ["s1-r1", "s1-r2", "s3-r1"] {
        assert_eq!(
            sqlite.find_refresh(hash).await.unwrap(),
            pg.find_refresh(hash).await.unwrap(),
            "{hash}"
        );
    }
    assert_eq!(
        sqlite.attempt_state("jürgen", "192.0.2.7").await.unwrap(),
        pg.attempt_state("jürgen", "192.0.2.7").await.unwrap()
    );
    assert_eq!(
        sqlite.find_transaction("mfa-t1").await.unwrap(),
        pg.find_transaction("mfa-t1").await.unwrap()
    );
    assert_eq!(
        sqlite.enrolled_users().await.unwrap(),
        pg.enrolled_users().await.unwrap()
    );
    assert_eq!(
        sqlite.bcrypt_costs().await.unwrap(),
        pg.bcrypt_costs().await.unwrap()
    );
}

/// Rows per copied table in the target, read directly.
async fn target_counts(db: &TestDb) -> Vec<(String, i64)> {
    let connector = passgate::store::postgres::Connector::new(db.settings()).unwrap();
    let (client, connection) = connector.dedicated().await.unwrap();
    let io = tokio::spawn(connection);
    let mut out = Vec::new();
    for t in [
        "settings",
        "users",
        "sessions",
        "refresh_tokens",
        "revocations",
        "login_failures",
        "ip_failures",
        "mfa_authenticators",
        "mfa_transactions",
        "mfa_failures",
    ] {
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        out.push((t.to_string(), n));
    }
    drop(client);
    let _ = io.await;
    out
}

/// Run `text` on the test database.
async fn sql(db: &TestDb, text: &str) {
    let connector = passgate::store::postgres::Connector::new(db.settings()).unwrap();
    let (client, connection) = connector.dedicated().await.unwrap();
    let io = tokio::spawn(connection);
    client.batch_execute(text).await.unwrap();
    drop(client);
    let _ = io.await;
}

/// Whether the target has any table at all (nothing written on refusal).
async fn target_tables(db: &TestDb) -> i64 {
    let connector = passgate::store::postgres::Connector::new(db.settings()).unwrap();
    let (client, connection) = connector.dedicated().await.unwrap();
    let io = tokio::spawn(connection);
    let n: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = io.await;
    n
}

#[tokio::test]
async fn every_table_is_copied_and_works_on_postgres() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    // A signing key kept in the store (PostgreSQL keeps them there; an
    // embedded store holds none unless put there, as here).
    let key = passgate::store::keys::SealedKey {
        kid: "kid-1".into(),
        alg: "ES256".into(),
        private_sealed: vec![9; 64],
        created_at: NOW - 100,
        signs_from: NOW - 100,
    };
    passgate::store::keys::KeyStore::add_signing_key(&SqliteStore::open(&path).unwrap(), &key)
        .await
        .unwrap();
    let report = copy(&path, &db, CopyOptions::default()).await.unwrap();
    assert!(!report.resumed);
    assert_eq!(
        passgate::store::keys::KeyStore::signing_keys(&db.store().await)
            .await
            .unwrap(),
        vec![key]
    );
    for t in &report.tables {
        assert_eq!((t.copied, t.already_there), (t.rows, 0), "{t:?}");
        assert!(t.rows > 0, "every table has a row: {t:?}");
    }

    let sqlite = SqliteStore::open(&path).unwrap();
    let pg = db.store().await;
    same_answers(&sqlite, &pg).await;

    // Login by lookup key: another case and form of the name.
    let found = pg.find_login(REALM, "JÜRGEN").await.unwrap().unwrap();
    assert_eq!(found.user_id, "auth0|jurgen");
    assert_eq!(
        found.app_metadata,
        json!({"roles": ["admin"], "plan": {"tier": 2}})
    );
    let legacy = pg
        .find_login(REALM, "LEGACY@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(legacy.password_hash.unwrap().starts_with("$2"));
    assert_eq!(pg.bcrypt_costs().await.unwrap(), vec![4]);
    // The MFA secret is the same bytes (sealed as it was).
    let auths = pg.authenticators("auth0|jurgen").await.unwrap();
    assert_eq!(auths[0].secret, vec![0, 1, 2, 250, 255, 9]);
    assert!(auths[0].active && auths[0].last_step == 56_666_666);
    // The setting stays the first one written.
    assert_eq!(pg.remember_first("cutover", NOW).await.unwrap(), NOW - 1000);

    // The refresh family goes on: the live token rotates, the retired one
    // is still known as retired.
    let (old, _) = pg.find_refresh("s1-r1").await.unwrap().unwrap();
    assert!(old.retired_at_ms.is_some());
    let metadata = MetadataUpdate::default();
    let got = pg
        .exchange_refresh("s1-r2", &metadata, rotate("s1-r3", "s1", NOW * 1000 + 5))
        .await
        .unwrap();
    assert!(got.is_some());
    assert!(pg.find_refresh("s1-r3").await.unwrap().is_some());

    // A new revocation sorts after the copied ones.
    let copied_log = pg.revocations_since(0).await.unwrap();
    assert_eq!(
        copied_log
            .iter()
            .map(|(_, sid, _)| sid.as_str())
            .collect::<Vec<_>>(),
        ["s4", "s2", "s5"]
    );
    let last = copied_log.last().unwrap().0;
    assert!(pg.revoke_session("s3", NOW).await.unwrap());
    let after = pg.revocations_since(last).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, "s3");
    // New users and sessions work beside the copied ones.
    pg.create_user(&user("auth0|new", "newcomer", None))
        .await
        .unwrap();
    assert!(
        pg.create_user(&user("auth0|dup", "jürgen", None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_second_copy_writes_nothing_twice() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    let first = copy(&path, &db, CopyOptions::default()).await.unwrap();
    let counts = target_counts(&db).await;
    let second = copy(&path, &db, CopyOptions::default()).await.unwrap();
    assert!(!second.resumed);
    assert_eq!(copied(&second), 0);
    for (a, b) in first.tables.iter().zip(&second.tables) {
        assert_eq!((b.rows, b.already_there), (a.rows, a.rows), "{b:?}");
    }
    assert_eq!(target_counts(&db).await, counts);
    let sqlite = SqliteStore::open(&path).unwrap();
    same_answers(&sqlite, &db.store().await).await;
}

#[tokio::test]
async fn an_interrupted_copy_completes_on_a_rerun() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    let stopped = copy(
        &path,
        &db,
        CopyOptions {
            batch_rows: 2,
            stop_after_rows: Some(7),
            ..CopyOptions::default()
        },
    )
    .await;
    assert!(
        matches!(stopped, Err(CopyError::Interrupted(n)) if n >= 7),
        "{stopped:?}"
    );
    let partial: i64 = target_counts(&db).await.iter().map(|(_, n)| n).sum();
    assert!((7..9).contains(&partial), "{partial} rows after the stop");

    // The rerun needs no --force: the rows are this file's.
    let rerun = copy(&path, &db, CopyOptions::default()).await.unwrap();
    assert!(rerun.resumed);
    assert_eq!(copied(&rerun) + partial as u64, rows(&rerun));
    let counts = target_counts(&db).await;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total as u64, rows(&rerun), "{counts:?}");
    let sqlite = SqliteStore::open(&path).unwrap();
    same_answers(&sqlite, &db.store().await).await;
}

#[tokio::test]
async fn a_database_with_other_data_is_refused_unless_forced() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    let pg: PgStore = db.store().await;
    pg.create_user(&user("auth0|other", "someone-else", None))
        .await
        .unwrap();
    // An ordered table with rows already: the copied log sorts after them.
    pg.create_session(&session("x1", "auth0|other", NOW), None, 10, NOW)
        .await
        .unwrap();
    assert!(pg.revoke_session("x1", NOW).await.unwrap());
    let before = target_counts(&db).await;

    let refused = copy(&path, &db, CopyOptions::default()).await;
    let Err(e @ CopyError::ForeignData(_)) = &refused else {
        panic!("{refused:?}");
    };
    let text = e.to_string();
    assert!(
        text.contains("users 1") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(target_counts(&db).await, before, "nothing written");

    let forced = copy(
        &path,
        &db,
        CopyOptions {
            force: true,
            ..CopyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(forced.tables.iter().all(|t| t.copied == t.rows));
    assert!(pg.get_user("auth0|other").await.unwrap().is_some());
    assert!(pg.find_login(REALM, "jürgen").await.unwrap().is_some());
    let log: Vec<String> = pg
        .revocations_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, sid, _)| sid)
        .collect();
    assert_eq!(log, ["x1", "s4", "s2", "s5"]);
    // Now the data is the copy's: a rerun needs no --force.
    copy(&path, &db, CopyOptions::default()).await.unwrap();
}

#[tokio::test]
async fn one_copy_at_a_time() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    // Another copy holds the lock on its connection.
    let connector = passgate::store::postgres::Connector::new(db.settings()).unwrap();
    let (client, connection) = connector.dedicated().await.unwrap();
    let io = tokio::spawn(connection);
    client
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&passgate::store::postgres::copy::COPY_LOCK],
        )
        .await
        .unwrap();
    let busy = copy(&path, &db, CopyOptions::default()).await;
    assert!(matches!(busy, Err(CopyError::Busy)), "{busy:?}");
    assert_eq!(target_tables(&db).await, 0, "nothing written");
    drop(client);
    let _ = io.await;
    copy(&path, &db, CopyOptions::default()).await.unwrap();
}

#[tokio::test]
async fn bad_sources_and_targets_are_refused_before_anything_is_written() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();

    let missing = copy(&dir.path().join("nope.db"), &db, CopyOptions::default()).await;
    assert!(
        matches!(missing, Err(CopyError::MissingSource { .. })),
        "{missing:?}"
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a database, just some words of text").unwrap();
    let e = copy(&text, &db, CopyOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("is not a passgate store"), "{e}");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE things (id INTEGER PRIMARY KEY)")
        .unwrap();
    let e = copy(&other, &db, CopyOptions::default()).await.unwrap_err();
    assert!(matches!(e, CopyError::NotAStore { .. }), "{e}");

    let path = embedded(dir.path()).await;
    let old = dir.path().join("old.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("VACUUM INTO ?1", [old.to_str().unwrap()])
        .unwrap();
    rusqlite::Connection::open(&old)
        .unwrap()
        .pragma_update(None, "user_version", 5)
        .unwrap();
    let e = copy(&old, &db, CopyOptions::default()).await.unwrap_err();
    assert!(
        matches!(e, CopyError::OldSource { found: 5, .. })
            && e.to_string().contains("passgate migrate"),
        "{e}"
    );
    assert_eq!(target_tables(&db).await, 0, "nothing written to the target");

    // A database of something else with a table named like one of ours.
    let foreign = db!();
    sql(
        &foreign,
        "CREATE TABLE users (id INT); INSERT INTO users VALUES (1)",
    )
    .await;
    for force in [false, true] {
        let options = CopyOptions {
            force,
            ..CopyOptions::default()
        };
        let e = copy(&path, &foreign, options).await.unwrap_err();
        assert!(matches!(e, CopyError::NotPassgate(_)), "{e}");
    }
    assert_eq!(target_tables(&foreign).await, 1, "nothing written to it");

    // A server that is not there: the store's "unavailable" text.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings =
        passgate::config::PgSettings::from_url(&format!("postgres://postgres@127.0.0.1:{port}/x"))
            .unwrap();
    settings.connect_timeout = std::time::Duration::from_secs(2);
    let e = copy_sqlite(&path, &settings, &CopyOptions::default(), &mut Quiet)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("the database is unavailable"), "{e}");
}

/// Exit code, stdout, stderr of `passgate ARGS`.
fn passgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_command_copies_and_reports_per_table() {
    let db = db!();
    let dir = tempfile::tempdir().unwrap();
    let path = embedded(dir.path()).await;
    let from = path.to_str().unwrap();
    let url = db.url();

    let (code, out, err) = passgate(&["store", "copy", "--from", from, "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("users: 3 rows read"),
        "plain lines off a terminal: {out}"
    );
    let users = out.lines().find(|l| l.starts_with("users ")).unwrap();
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["users", "3", "3", "0"]
    );
    assert!(out.contains("copy complete"), "{out}");

    // Again, the database from a config's [store] url: all already there.
    let cfg = dir.path().join("pg.toml");
    let d = dir.path().display();
    std::fs::write(
        &cfg,
        format!(
            "[issuer]\nurl = \"https://localhost/\"\nsigning_keys = \"{d}/signing\"\nalgorithm = \"ES256\"\n\
             [store]\nurl = \"{url}\"\nencryption_key_file = \"{d}/store.key\"\n\
             [[realms]]\nname = \"{REALM}\"\n"
        ),
    )
    .unwrap();
    let (code, out, err) = passgate(&[
        "store",
        "copy",
        "--from",
        from,
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let users = out.lines().find(|l| l.starts_with("users ")).unwrap();
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["users", "3", "0", "3"]
    );

    // The signing keys of the folder, sealed into the database, once.
    let key = passgate::tokens::folder::generate_into(
        &dir.path().join("signing"),
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    let args = [
        "store",
        "copy",
        "--from",
        from,
        "--config",
        cfg.to_str().unwrap(),
        "--with-signing-keys",
    ];
    let (code, out, err) = passgate(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signing keys: 1 moved"), "{out}");
    let stored = passgate::store::keys::KeyStore::signing_keys(&db.store().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, key.kid);
    assert_ne!(stored[0].private_sealed.len(), 0);
    let (code, out, err) = passgate(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signing keys: 0 moved"), "{out}");

    let (code, _, err) = passgate(&["store", "copy", "--from", from, "--to", "mysql://h/db"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a PostgreSQL URL"), "{err}");
    let (code, _, err) = passgate(&["store", "copy", "--from", "/nonexistent/p.db", "--to", &url]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/p.db: no such file"), "{err}");
}
