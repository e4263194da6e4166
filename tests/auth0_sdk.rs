//! Auth0's official Python SDK drives passgate's token endpoint (see
//! tests/sdk/auth0_python.py). CI installs the SDK; elsewhere the test is
//! skipped with a message when `auth0-python` is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_python_sdk_logs_in() {
    let has_sdk = Command::new("python3")
        .args(["-c", "import auth0, jwt, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_sdk {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install auth0-python (see .ci/run)"
        );
        eprintln!("skipped: pip install auth0-python pyjwt cryptography requests");
        return;
    }
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
[[routes]]
prefix = "/api/"
upstream = "{}"
audience = "https://api.example.com"
"#,
            upstream.url
        ))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        passgate::clock::system(),
    )
    .add(
        "Username-Password-Authentication",
        "sdk-user",
        Some("sdk@example.com"),
        "sdk password 1",
    )
    .unwrap();

    let out = Command::new("python3")
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
