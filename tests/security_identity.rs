//! Issue 10, findings 5 and 15: who an identifier is, and what a wrong
//! password's answer gives away.
//!
//! - Finding 5: login names are matched by a lookup key (Unicode NFKC and full
//!   case folding), so `JÜRGEN`/`Jürgen` are one account, a username and its
//!   e-mail share one brute-force counter, `unblock` by any alias lifts the
//!   account's block, and an older store migrates forward (colliding rows are
//!   named in a warning and keep working by exact match).
//! - Finding 15: every password check is answered no sooner than a floor, so
//!   unknown user, argon2 user and bcrypt user take the same time. The
//!   mechanism is tested here with a fixed floor; the medians are measured by
//!   the ignored `timing_medians_of_the_three_cases`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use passgate::identity::password::{HashParams, Hasher};
use passgate::identity::users::Admin;
use passgate::store::{SqliteStore, Store};
use serde_json::json;

const REALM: &str = LOGIN_REALM;
const PASSWORD: &str = "correct horse battery";
const BLOCKED: &str = "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it.";

/// One realm, one API, one client with a secret; cheap argon2; `extra` is
/// appended (e.g. a `[passwords]` line).
fn toml(passwords: &str) -> String {
    format!(
        r#"{}
[attack_protection]
request_limit = 100000
user_ip_burst = 100000
user_ip_limit = 100000
[passwords]
memory = "64KiB"
iterations = 1
{passwords}
"#,
        login_toml()
    )
}

fn cheap() -> HashParams {
    HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

fn store_at(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("passgate.db")).unwrap())
}

fn admin(store: &Arc<SqliteStore>) -> Admin {
    Admin::new(
        store.clone(),
        Hasher::new(cheap(), 1).unwrap(),
        passgate::clock::system(),
    )
    .with_protect(store.clone())
}

async fn login(c: &TestClient, user: &str, password: &str) -> Reply {
    let pairs = [
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ];
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

fn assert_error(reply: &Reply, status: u16, error: &str, description: &str) {
    assert_eq!(
        reply.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.body,
        json!({"error": error, "error_description": description})
            .to_string()
            .as_bytes()
    );
}

fn assert_wrong(reply: &Reply) {
    assert_error(reply, 403, "invalid_grant", "Wrong email or password.");
}

fn assert_blocked(reply: &Reply) {
    assert_error(reply, 429, "too_many_attempts", BLOCKED);
}

fn assert_ok(reply: &Reply) {
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
}

async fn failures(c: &TestClient, user: &str, n: usize) {
    for i in 0..n {
        let r = login(c, user, "wrong password").await;
        assert_wrong(&r);
        let _ = i;
    }
}

async fn start(passwords: &str) -> (TestGateway, Arc<SqliteStore>) {
    let gw = TestGateway::builder().toml(&toml(passwords)).start().await;
    let store = store_at(gw.dir.path());
    (gw, store)
}

fn localhost() -> Option<IpAddr> {
    Some("127.0.0.1".parse().unwrap())
}

// === finding 5: one account, one lookup key, one counter ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_email_share_one_brute_force_counter() {
    let (gw, store) = start("").await;
    admin(&store)
        .add(REALM, "carol", Some("carol@example.com"), PASSWORD)
        .await
        .unwrap();
    let c = gw.client(Proto::H1);
    // Ten failures spread over the account's aliases, in any case.
    failures(&c, "carol", 4).await;
    failures(&c, "Carol@Example.com", 3).await;
    failures(&c, "CAROL", 3).await;
    for alias in [
        "carol",
        "carol@example.com",
        "CAROL@EXAMPLE.COM",
        "Ｃａｒｏｌ",
    ] {
        assert_blocked(&login(&c, alias, PASSWORD).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_case_and_normal_forms_name_one_account() {
    let (gw, store) = start("").await;
    let a = admin(&store);
    let jurgen = a.add(REALM, "Jürgen", None, PASSWORD).await.unwrap();
    // The same name in capitals, decomposed, or in compatibility forms is a clash.
    for other in ["JÜRGEN", "Ju\u{308}rgen", "ＪÜＲＧＥＮ"] {
        let err = a
            .add(REALM, other, None, PASSWORD)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already has a user named"), "{err}");
        assert!(err.contains("Jürgen"), "the clash is named: {err}");
    }
    // A username that folds to someone's e-mail clashes too.
    a.add(REALM, "zoe", Some("Zoë@example.com"), PASSWORD)
        .await
        .unwrap();
    let err = a
        .add(REALM, "ZOË@EXAMPLE.COM", None, PASSWORD)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Zoë@example.com"), "{err}");
    // What the user typed is what lists and profiles keep showing.
    let listed = a.list(REALM).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].username.as_deref(), Some("Jürgen"));

    let c = gw.client(Proto::H1);
    for alias in ["JÜRGEN", "jürgen", "Ju\u{308}rgen", "ＪＵ\u{308}ＲＧＥＮ"] {
        assert_ok(&login(&c, alias, PASSWORD).await);
    }
    // Failures under any form count for the one account.
    failures(&c, "JÜRGEN", 5).await;
    failures(&c, "jürgen", 5).await;
    assert_blocked(&login(&c, "Jürgen", PASSWORD).await);
    assert_eq!(
        a.find(REALM, "JÜRGEN").await.unwrap().user_id,
        jurgen.user_id,
        "admin commands find the account by any form"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_identifiers_count_under_their_lookup_key() {
    let (gw, _store) = start("").await;
    let c = gw.client(Proto::H1);
    failures(&c, "nobody", 5).await;
    failures(&c, "ＮＯＢＯＤＹ", 5).await;
    assert_blocked(&login(&c, "Nobody", "wrong password").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unblock_by_any_alias_lifts_the_account_block() {
    let (gw, store) = start("").await;
    admin(&store)
        .add(REALM, "dave", Some("dave@example.com"), PASSWORD)
        .await
        .unwrap();
    let c = gw.client(Proto::H1);
    failures(&c, "dave", 10).await;
    assert_blocked(&login(&c, "dave@example.com", PASSWORD).await);
    let cleared =
        passgate::protect::unblock(store.as_ref(), "DAVE@example.com", localhost(), "admin")
            .await
            .unwrap();
    assert_eq!(cleared, 1);
    assert_ok(&login(&c, "dave", PASSWORD).await);

    // The command, from every IP, by the other alias.
    failures(&c, "Dave@Example.com", 10).await;
    assert_blocked(&login(&c, "dave", PASSWORD).await);
    let config = gw.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n",
            gw.dir.path().join("passgate.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["unblock", "--identifier", "DAVE", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_ok(&login(&c, "dave@example.com", PASSWORD).await);

    // A password change lifts it too.
    failures(&c, "dave", 10).await;
    admin(&store)
        .set_password(REALM, "DAVE@EXAMPLE.COM", "another long pw")
        .await
        .unwrap();
    assert_ok(&login(&c, "dave", "another long pw").await);
}

#[tokio::test]
async fn import_refuses_a_folded_duplicate_and_names_it() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    admin(&store)
        .add(REALM, "Jürgen", Some("j@example.com"), PASSWORD)
        .await
        .unwrap();
    let records = passgate::identity::import::parse(
        r#"[{"username": "JÜRGEN"}, {"email": "J@EXAMPLE.COM"}, {"username": "eve"}]"#,
    )
    .unwrap();
    let report = passgate::identity::import::import(store.as_ref(), REALM, records, 1, |_| ())
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    let skipped: Vec<usize> = report.skipped.iter().map(|(i, _)| *i).collect();
    assert_eq!(skipped, vec![0, 1]);
    for (_, why) in &report.skipped {
        assert!(
            why.contains("Jürgen") || why.contains("j@example.com"),
            "{why}"
        );
    }
}

// === finding 5: an older store migrates forward ===

/// The users table as schema version 1 created it (c9844b0).
const USERS_V1: &str = "CREATE TABLE users (
    user_id TEXT PRIMARY KEY, realm TEXT NOT NULL, username TEXT, email TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0, name TEXT, password_hash TEXT,
    blocked INTEGER NOT NULL DEFAULT 0, app_metadata TEXT NOT NULL DEFAULT '{}',
    user_metadata TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, last_login INTEGER, logins_count INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX users_realm_username ON users(realm, username COLLATE NOCASE) WHERE username IS NOT NULL;
CREATE UNIQUE INDEX users_realm_email ON users(realm, email COLLATE NOCASE) WHERE email IS NOT NULL;";

/// A store at schema version 3 with two users that collide after folding,
/// a username equal to another user's e-mail, and a blocked pair.
fn old_store(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(USERS_V1).unwrap();
    conn.execute_batch(passgate::store::sessions::SCHEMA)
        .unwrap();
    conn.execute_batch(passgate::store::protect::SCHEMA)
        .unwrap();
    let hash = Hasher::new(cheap(), 1)
        .unwrap()
        .hash_blocking(PASSWORD)
        .unwrap();
    let other = Hasher::new(cheap(), 1)
        .unwrap()
        .hash_blocking("the other one")
        .unwrap();
    for (id, username, email, hash) in [
        ("auth0|j1", Some("Jürgen"), None, &hash),
        ("auth0|j2", Some("JÜRGEN"), None, &other),
        ("auth0|c1", Some("carol"), Some("carol@example.com"), &hash),
        ("auth0|m1", Some("mallory@example.com"), None, &other),
        ("auth0|m2", Some("mike"), Some("MALLORY@example.com"), &hash),
    ] {
        conn.execute(
            "INSERT INTO users (user_id, realm, username, email, password_hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, 1)",
            rusqlite::params![id, REALM, username, email, hash],
        )
        .unwrap();
    }
    // carol was blocked from this IP under the old lowercased identifier.
    conn.execute(
        "INSERT INTO login_failures (identifier, ip, failures, last_failure) VALUES ('carol', '127.0.0.1', 10, ?1)",
        rusqlite::params![passgate::clock::system().now()],
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_store_migrates_and_names_its_colliding_rows() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    old_store(&dir.path().join("passgate.db"));

    // Opening migrates; the collisions are named in a warning.
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let store = tracing::subscriber::with_default(subscriber, || store_at(dir.path()));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for named in ["auth0|j1", "auth0|j2", "auth0|m1", "auth0|m2"] {
        assert!(logs.contains(named), "{named} named in:\n{logs}");
    }
    assert!(!logs.contains("auth0|c1"), "{logs}");

    let gw = TestGateway::builder()
        .dir(dir.clone())
        .toml(&toml(""))
        .start()
        .await;
    let c = gw.client(Proto::H1);
    // Colliding rows keep working by exact match, each with its own password...
    assert_ok(&login(&c, "Jürgen", PASSWORD).await);
    assert_ok(&login(&c, "JÜRGEN", "the other one").await);
    assert_ok(&login(&c, "mallory@example.com", "the other one").await);
    assert_ok(&login(&c, "MALLORY@example.com", PASSWORD).await);
    // ...and a form matching neither exactly logs into neither.
    assert_wrong(&login(&c, "jürgen", PASSWORD).await);
    assert_wrong(&login(&c, "jürgen", "the other one").await);
    // The old block of "carol" is now the account's: its e-mail is blocked too.
    assert_blocked(&login(&c, "carol@example.com", PASSWORD).await);
    // New users cannot join a collision.
    let err = admin(&store)
        .add(REALM, "jÜrgen", None, PASSWORD)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Jürgen") || err.contains("JÜRGEN"), "{err}");
    // Once an administrator removes one side, the other is found by any form.
    admin(&store).remove(REALM, "JÜRGEN").await.unwrap();
    assert_ok(&login(&c, "jürgen", PASSWORD).await);
    // Reopening the migrated store changes nothing.
    assert!(
        store_at(dir.path())
            .get_user("auth0|j1")
            .await
            .unwrap()
            .is_some()
    );
}

// === finding 15: the three cases cost the same time ===

/// A bcrypt user as an Auth0 import leaves it (cost 10, Auth0's).
async fn import_bcrypt_user(store: &SqliteStore, username: &str, cost: u32) {
    let hash = bcrypt::hash(PASSWORD, cost).unwrap();
    let records = passgate::identity::import::parse(
        &json!([{
            "username": username,
            "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": hash}}
        }])
        .to_string(),
    )
    .unwrap();
    let report = passgate::identity::import::import(store, REALM, records, 1, |_| ())
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_password_check_waits_for_the_configured_floor() {
    let floor = Duration::from_millis(400);
    let (gw, store) = start("verify_floor = \"400ms\"").await;
    admin(&store)
        .add(REALM, "argon", None, PASSWORD)
        .await
        .unwrap();
    import_bcrypt_user(&store, "imported", 4).await;
    let c = gw.client(Proto::H1);
    for user in ["nobody", "argon", "imported"] {
        let t = Instant::now();
        assert_wrong(&login(&c, user, "wrong password").await);
        assert!(t.elapsed() >= floor, "{user}: {:?}", t.elapsed());
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Measures the three cases end to end with the default floor ("auto") and
/// the default argon2 cost, against a bcrypt cost-10 user (Auth0's cost):
/// `cargo test --release --test security_identity -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand and read the numbers"]
async fn timing_medians_of_the_three_cases() {
    // Default argon2 cost; no blocks or throttles in the way of 180 failures.
    let toml = toml("")
        .replace("memory = \"64KiB\"\niterations = 1\n", "")
        .replace(
            "[attack_protection]\n",
            "[attack_protection]\nbrute_force = false\nsuspicious_ip = false\n",
        );
    let gw = TestGateway::builder().toml(&toml).start().await;
    let store = store_at(gw.dir.path());
    // The floor is measured at start from the bcrypt costs present: import first, then restart.
    import_bcrypt_user(&store, "imported", 10).await;
    Admin::new(
        store.clone(),
        Hasher::new(HashParams::default(), 1).unwrap(),
        passgate::clock::system(),
    )
    .add(REALM, "argon", None, PASSWORD)
    .await
    .unwrap();
    let dir = gw.dir.clone();
    gw.shutdown().await;
    let gw = TestGateway::builder().dir(dir).toml(&toml).start().await;
    let c = gw.client(Proto::H1);
    let cases = ["nobody", "argon", "imported"];
    let mut samples = vec![Vec::new(); cases.len()];
    for round in 0..60 {
        for (i, user) in cases.iter().enumerate() {
            // Distinct unknown names: no cache of any kind helps the unknown case.
            let name = match *user {
                "nobody" => format!("nobody{round}"),
                u => u.to_string(),
            };
            let t = Instant::now();
            let r = login(&c, &name, &format!("wrong {round}")).await;
            let took = t.elapsed();
            assert_wrong(&r);
            if round >= 5 {
                samples[i].push(took);
            }
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    for (user, m) in cases.iter().zip(&medians) {
        println!("{user:>10}: median {m:?}");
    }
    let (lo, hi) = (
        medians.iter().min().copied().unwrap(),
        medians.iter().max().copied().unwrap(),
    );
    println!(
        "spread: {:.1} %",
        (hi.as_secs_f64() / lo.as_secs_f64() - 1.0) * 100.0
    );
}

#[test]
fn verify_floor_is_auto_or_a_short_duration() {
    let parse = |v: &str| {
        passgate::config::Config::from_toml(&format!("[passwords]\nverify_floor = {v}\n"))
            .map(|c| c.passwords.verify_floor)
            .map_err(|e| e.to_string())
    };
    use passgate::config::VerifyFloor;
    assert_eq!(parse("\"auto\""), Ok(VerifyFloor::Auto));
    assert_eq!(
        parse("\"250ms\""),
        Ok(VerifyFloor::Fixed(Duration::from_millis(250)))
    );
    assert_eq!(parse("\"0s\""), Ok(VerifyFloor::Fixed(Duration::ZERO)));
    for bad in ["\"soon\"", "\"1m\""] {
        let err = parse(bad).unwrap_err();
        assert!(err.contains("passwords.verify_floor:"), "{err}");
    }
    assert_eq!(
        passgate::config::Config::from_toml("")
            .unwrap()
            .passwords
            .verify_floor,
        VerifyFloor::Auto
    );
}
