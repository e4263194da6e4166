//! Auth0's official Python SDK drives passgate's token endpoint (see
//! tests/sdk/auth0_python.py). The test uses the machine's `python3` when it
//! has the SDK; otherwise it installs the SDK into a virtual environment of
//! its own under the target directory, and fails, naming what to install,
//! when neither works. It never passes without running the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use common::*;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_python_sdk_logs_in() {
    let python = python_with_sdk();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&format!(
            r#"
[issuer]
url = "https://passgate.test/"
signing_keys = "{{dir}}/signing"
algorithm = "RS256"
default_audience = "https://api.example.com"
default_realm = "Username-Password-Authentication"
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items", "write:items"]
[[clients]]
id = "sdk-app"
secret = "sdk-secret"
grant_types = ["password", "http://auth0.com/oauth/grant-type/password-realm"]
[[realms]]
name = "Username-Password-Authentication"
[[rules]]
name = "add-roles"
script = "{fixtures}/rules/add-roles.js"
[rules.configuration]
ROLES_NAMESPACE = "https://example.com/"
[[actions]]
name = "deny-contractors"
script = "{fixtures}/actions/deny-contractors.js"
[[routes]]
prefix = "/api/"
upstream = "{}"
audience = "https://api.example.com"
"#,
            upstream.url,
            fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
        ))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store.clone(),
        Hasher::new(Default::default(), 1).unwrap(),
        passgate::clock::system(),
    );
    let user = admin
        .add(
            "Username-Password-Authentication",
            "sdk-user",
            Some("sdk@example.com"),
            "sdk password 1",
        )
        .await
        .unwrap();
    // The rule copies these roles into the tokens; the action refuses contractors.
    passgate::store::Store::update_metadata(
        store.as_ref(),
        &passgate::store::MetadataUpdate {
            user_id: user.user_id,
            app_metadata: Some(serde_json::json!({"roles": ["reader"]})),
            user_metadata: None,
            now: 0,
        },
    )
    .await
    .unwrap();
    admin
        .add(
            "Username-Password-Authentication",
            "contractor",
            Some("c@contractor.example"),
            "sdk password 1",
        )
        .await
        .unwrap();

    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/auth0_python.py"
        ))
        .env("PASSGATE_DOMAIN", format!("127.0.0.1:{}", gw.addr.port()))
        .env("REQUESTS_CA_BUNDLE", gw.dir.path().join("cert.pem"))
        .env("PASSGATE_ISSUER", "https://passgate.test/")
        .env("PASSGATE_AUDIENCE", "https://api.example.com")
        .env("PASSGATE_CLIENT_ID", "sdk-app")
        .env("PASSGATE_CLIENT_SECRET", "sdk-secret")
        .env("PASSGATE_USERNAME", "sdk-user")
        .env("PASSGATE_PASSWORD", "sdk password 1")
        .env("PASSGATE_REALM", "Username-Password-Authentication")
        .env("PASSGATE_DENIED_USERNAME", "contractor")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("auth0-python drove passgate successfully"),
        "{stdout}"
    );
}

/// What the SDK script imports, and the packages that provide it.
const IMPORTS: &str = "import auth0, jwt, requests, cryptography";
const PACKAGES: &[&str] = &["auth0-python", "pyjwt", "cryptography", "requests"];

fn imports_work(python: &std::path::Path) -> bool {
    Command::new(python)
        .args(["-c", IMPORTS])
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python interpreter that can import the SDK: the machine's, or one in a
/// virtual environment this test sets up once under the target directory.
fn python_with_sdk() -> PathBuf {
    let system = PathBuf::from("python3");
    if imports_work(&system) {
        return system;
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("auth0-sdk-venv");
    let python = venv.join("bin").join("python3");
    if !imports_work(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        let installed = made
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(PACKAGES)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            installed && imports_work(&python),
            "this test needs Auth0's Python SDK: run `python3 -m pip install {}` \
             (or install python3-venv and network access to PyPI so the test can set it up itself)",
            PACKAGES.join(" ")
        );
    }
    python
}
