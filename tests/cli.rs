//! The `passgate` command line as a script would drive it: `users`, `sessions`
//! and `keys`, with their exit codes (0 ok, 1 user error, 2 usage error).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const REALM: &str = "Username-Password-Authentication";

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("passgate.toml");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            r#"
[issuer]
url = "https://localhost/"
signing_keys = "{d}/signing"
algorithm = "ES256"
[store]
path = "{d}/passgate.db"
[passwords]
memory = "64KiB"
iterations = 1
[[realms]]
name = "{REALM}"
"#
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_passgate"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn users_commands_from_add_to_remove() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let user = ["--realm", REALM, "--username", "bob"];
    let add = |extra: &[&str], stdin: Option<&str>| {
        let mut args = vec!["users", "add"];
        args.extend_from_slice(&user);
        args.extend_from_slice(extra);
        text(&run(&cfg, &args, stdin))
    };

    let (code, out, _) = add(
        &["--email", "bob@example.com", "--password-stdin"],
        Some("long enough pw\n"),
    );
    assert_eq!(code, 0);
    assert!(out.contains("added bob (auth0|"), "{out}");
    let (code, _, err) = add(&["--password-stdin"], Some("long enough pw\n"));
    assert_eq!(code, 1);
    assert!(err.contains("already has a user named \"bob\""), "{err}");
    let (code, _, err) = add(&[], None);
    assert_eq!(code, 1);
    assert!(err.contains("pass --password-stdin"), "{err}");

    let (code, out, _) = text(&run(
        &cfg,
        &["users", "list", "--realm", REALM, "--json"],
        None,
    ));
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["username"], "bob");
    assert_eq!(list[0]["email"], "bob@example.com");
    assert!(
        list[0].get("password_hash").is_none(),
        "hashes never leave the store"
    );

    let (code, _, _) = text(&run(
        &cfg,
        &["users", "block", "--realm", REALM, "--username", "bob"],
        None,
    ));
    assert_eq!(code, 0);
    let (_, out, _) = text(&run(
        &cfg,
        &["users", "list", "--realm", REALM, "--json"],
        None,
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["blocked"],
        true
    );
    assert_eq!(
        text(&run(
            &cfg,
            &["users", "unblock", "--realm", REALM, "--username", "bob"],
            None
        ))
        .0,
        0
    );

    let (code, _, err) = text(&run(
        &cfg,
        &[
            "users",
            "set-password",
            "--realm",
            REALM,
            "--username",
            "bob",
            "--password-stdin",
        ],
        Some("short\n"),
    ));
    assert_eq!(code, 1);
    assert!(err.contains("at least 8 characters"), "{err}");
    let (code, out, _) = text(&run(
        &cfg,
        &[
            "users",
            "set-password",
            "--realm",
            REALM,
            "--username",
            "bob",
            "--password-stdin",
        ],
        Some("a new long password\n"),
    ));
    assert_eq!(code, 0, "{out}");

    let (code, out, _) = text(&run(
        &cfg,
        &["sessions", "list", "--realm", REALM, "--username", "bob"],
        None,
    ));
    assert_eq!(code, 0);
    assert!(out.starts_with("sid"), "{out}");

    assert_eq!(
        text(&run(
            &cfg,
            &["users", "remove", "--realm", REALM, "--username", "bob"],
            None
        ))
        .0,
        0
    );
    let (code, _, err) = text(&run(
        &cfg,
        &["users", "remove", "--realm", REALM, "--username", "bob"],
        None,
    ));
    assert_eq!(code, 1);
    assert!(err.contains("no user \"bob\""), "{err}");

    let (code, _, err) = text(&run(&cfg, &["users", "list", "--realm", "nope"], None));
    assert_eq!(code, 1);
    assert!(err.contains("realm \"nope\" is not in the config"), "{err}");
    let (code, _, _) = text(&run(&cfg, &["users", "frobnicate"], None));
    assert_eq!(code, 2, "usage error");
}

#[test]
fn import_reports_bad_records_by_index_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let hash = bcrypt::hash("imported pw", 4).unwrap();
    let file = dir.path().join("users.json");
    std::fs::write(
        &file,
        serde_json::json!([
            {"email": "a@example.com", "user_id": "legacy1", "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": hash}}},
            {"name": "nobody to log in as"},
            {"username": "c", "email_verified": true}
        ])
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = text(&run(
        &cfg,
        &["users", "import", "--realm", REALM, file.to_str().unwrap()],
        None,
    ));
    assert_eq!(code, 1, "a skipped record is reported as a problem");
    assert!(out.contains("imported 2 user(s)"), "{out}");
    assert!(
        err.contains("record 1: skipped: needs an email or a username"),
        "{err}"
    );
    let (_, out, _) = text(&run(
        &cfg,
        &["users", "list", "--realm", REALM, "--json"],
        None,
    ));
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|u| u["user_id"] == "auth0|legacy1")
    );
}

#[test]
fn keys_rotate_adds_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for n in 1..=2 {
        let (code, out, _) = text(&run(&cfg, &["keys", "rotate"], None));
        assert_eq!(code, 0);
        assert!(out.contains("new signing key"), "{out}");
        let pems = std::fs::read_dir(dir.path().join("signing"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "pem")
            })
            .count();
        assert_eq!(pems, n);
    }
}
