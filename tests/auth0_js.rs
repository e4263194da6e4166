//! Auth0's JavaScript SDK (`@auth0/auth0-auth-js`, `AuthClient.mfa`) drives
//! passgate's MFA API: enrol TOTP, verify with a code the script computes
//! from the returned secret, list, challenge, verify with the recovery code
//! (tests/js/mfa.mjs). The SDK is installed with `npm ci` from
//! tests/js/package-lock.json into the target directory. Without node and
//! npm the test fails, naming what to install; it never passes without
//! running the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;

const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";
const RECOVERY: &str = "http://auth0.com/oauth/grant-type/mfa-recovery-code";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A directory with the SDK installed and the script beside it.
fn sdk_dir() -> PathBuf {
    let works = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        works("node") && works("npm"),
        "this test needs Node.js 20 or later with npm (e.g. `apt-get install nodejs npm`)"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("auth0-js");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::read(repo("tests/js/package-lock.json")).unwrap();
    let installed_lock = dir.join("installed-lock.json");
    let fresh = std::fs::read(&installed_lock).is_ok_and(|l| l == lock)
        && dir.join("node_modules/@auth0/auth0-auth-js").is_dir();
    if !fresh {
        std::fs::copy(repo("tests/js/package.json"), dir.join("package.json")).unwrap();
        std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`npm ci` in {} failed: this test needs the npm registry reachable (or run `npm ci` in tests/js)",
            dir.display()
        );
        std::fs::write(&installed_lock, &lock).unwrap();
    }
    std::fs::copy(repo("tests/js/mfa.mjs"), dir.join("mfa.mjs")).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_js_sdk_enrols_challenges_and_verifies() {
    let dir = sdk_dir();
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
scopes = ["read:items"]
[[clients]]
id = "js-app"
secret = "js-secret"
grant_types = ["password", "{OTP}", "{RECOVERY}"]
[[realms]]
name = "Username-Password-Authentication"
mfa = "required"
"#
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
        "js-user",
        Some("js@example.com"),
        "correct horse battery",
    )
    .await
    .unwrap();

    let out = tokio::process::Command::new("node")
        .arg("mfa.mjs")
        .current_dir(&dir)
        .env(
            "PASSGATE_URL",
            format!("https://localhost:{}", gw.addr.port()),
        )
        .env("PASSGATE_DOMAIN", "passgate.test")
        .env("NODE_EXTRA_CA_CERTS", gw.dir.path().join("cert.pem"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.shutdown().await;
}
