//! `passgate migrate`: brings the store the config names (SQLite or
//! PostgreSQL) up to date, says from which version, and nothing else; the
//! other commands work on PostgreSQL as they do on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use passgate::store::postgres::testing::TestDb;

const REALM: &str = "Username-Password-Authentication";

fn config(dir: &Path, store: &str) -> std::path::PathBuf {
    let path = dir.join("passgate.toml");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "[issuer]\nurl = \"https://localhost/\"\nsigning_keys = \"{d}/signing\"\nalgorithm = \"ES256\"\n\
             [store]\n{store}\nencryption_key_file = \"{d}/store.key\"\n\
             [passwords]\nmemory = \"64KiB\"\niterations = 1\n[[realms]]\nname = \"{REALM}\"\n"
        ),
    )
    .unwrap();
    path
}

/// Exit code, stdout, stderr.
fn run(config: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn migrates_then_is_up_to_date(config: &Path, shown: &str) {
    let (code, out, err) = run(config, &["migrate"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(shown) && out.contains("(was 0)"), "{out}");
    let (code, out, err) = run(config, &["migrate"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("(up to date)"), "{out}");
}

#[test]
fn migrate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("passgate.db");
    let cfg = config(dir.path(), &format!("path = \"{}\"", db.display()));
    migrates_then_is_up_to_date(
        &cfg,
        &format!("store.path {}: schema version", db.display()),
    );
    assert!(db.exists());
}

#[tokio::test]
async fn migrate_and_users_on_postgres() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("url = \"{}\"", db.url()));
    migrates_then_is_up_to_date(&cfg, "store.url postgres");

    let (code, out, err) = run(
        &cfg,
        &[
            "users",
            "add",
            "--realm",
            REALM,
            "--username",
            "Jürgen",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(
        &cfg,
        &[
            "users",
            "add",
            "--realm",
            REALM,
            "--username",
            "JÜRGEN",
            "--password-stdin",
        ],
        "another long password\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("same login name"), "{err}");
    let (code, out, err) = run(&cfg, &["users", "list", "--realm", REALM], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Jürgen"), "{out}");
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "url = \"postgres://app:hunter2@127.0.0.1:{port}/passgate\"\nconnect_timeout = \"1s\""
        ),
    );
    let (code, out, err) = run(&cfg, &["migrate"], "");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "store.url postgres://app:***@127.0.0.1:{port}/passgate"
        )) && err.contains("unavailable"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
