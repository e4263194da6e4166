//! `passgate check-config` compiling the scripts, and `passgate actions try`,
//! as a person at a terminal would run them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REALM: &str = "Username-Password-Authentication";

fn fixture(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p.display().to_string()
}

fn config(dir: &Path, scripts: &str) -> PathBuf {
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
default_audience = "https://api.example.com"
[store]
path = "{d}/passgate.db"
[passwords]
memory = "64KiB"
iterations = 1
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items", "write:items"]
[[clients]]
id = "app"
name = "Demo App"
[[realms]]
name = "{REALM}"
{scripts}
"#
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let o: Output = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_every_script_that_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[[rules]]\nname = \"ok\"\nscript = \"{}\"\n[[rules]]\nname = \"broken\"\nscript = \"{}\"\n[[actions]]\nname = \"req\"\nscript = \"{}\"\n",
            fixture("rules/add-roles.js"),
            fixture("rules/syntax-error.js"),
            fixture("actions/require-top.js"),
        ),
    );
    let (code, _, err) = run(&cfg, &["check-config"], None);
    assert_eq!(code, 1, "{err}");
    let syntax = format!("rules[1].script: {}:2:", fixture("rules/syntax-error.js"));
    assert!(err.contains(&syntax), "{err}");
    assert!(
        err.contains(&format!(
            "actions[0].script: {}",
            fixture("actions/require-top.js")
        )) && err.contains("require('axios') is not supported"),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");

    let fine = config(
        dir.path(),
        &format!(
            "[[actions]]\nname = \"plan\"\nscript = \"{}\"\nsecrets = {{ API_KEY = \"k\" }}\n",
            fixture("actions/plan-claim.js")
        ),
    );
    let (code, out, err) = run(&fine, &["check-config"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn actions_try_prints_the_decision_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let plan = fixture("actions/plan-claim.js");
    let cfg = config(
        dir.path(),
        &format!(
            "[[actions]]\nname = \"plan\"\nscript = \"{plan}\"\nsecrets = {{ API_KEY = \"sk_configured\" }}\n"
        ),
    );
    let (code, _, err) = run(
        &cfg,
        &[
            "users",
            "add",
            "--realm",
            REALM,
            "--username",
            "ann",
            "--email",
            "ann@contractor.example",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(code, 0, "{err}");
    let db = std::fs::read(dir.path().join("passgate.db")).unwrap();

    // A configured script: its secrets apply.
    let args = |script: &str| {
        vec![
            "actions".to_string(),
            "try".into(),
            "--script".into(),
            script.to_string(),
            "--realm".into(),
            REALM.into(),
            "--username".into(),
            "ann".into(),
            "--client".into(),
            "app".into(),
        ]
    };
    let a = args(&plan);
    let (code, out, err) = run(
        &cfg,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["decision"], "allow");
    assert_eq!(j["access_token_claims"]["https://example.com/plan"], "free");
    assert_eq!(
        j["access_token_claims"]["https://example.com/key_prefix"],
        "sk_"
    );
    assert_eq!(j["scope"], "read:items write:items");

    // An unconfigured action that denies, told apart from a rule by its export.
    let mut a = args(&fixture("actions/deny-contractors.js"));
    a.extend(["--secret".to_string(), "X=1".to_string()]);
    let (code, out, err) = run(
        &cfg,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["decision"], "deny");
    assert_eq!(j["status"], 403);
    assert_eq!(j["error_description"], "Contractors may not use Demo App.");

    // A rule that writes metadata: shown, not stored.
    let a = args(&fixture("rules/login-counter.js"));
    let (code, out, err) = run(
        &cfg,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["app_metadata"]["password_logins"], 1);
    assert_eq!(std::fs::read(dir.path().join("passgate.db")).unwrap(), db);

    // A runaway script is reported, with exit code 1.
    let a = args(&fixture("actions/endless-loop.js"));
    let (code, _, err) = run(
        &cfg,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("ran past the extensibility timeout"), "{err}");
}
