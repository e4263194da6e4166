//! `passgate users mfa list|reset` and the MFA column of `users list`,
//! against a running gateway's store: after a reset the next login in a
//! `required` realm enrols again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;
use http::Method;
use passgate::clock::{Clock, ManualClock};
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";

fn toml() -> String {
    format!(
        r#"
[issuer]
url = "https://localhost/"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "https://api.example.com"
default_realm = "{REALM}"
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items"]
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "{OTP}"]
[[realms]]
name = "{REALM}"
mfa = "required"
"#
    )
}

async fn post(c: &TestClient, path: &str, bearer: Option<&str>, ct: &str, text: String) -> Reply {
    let mut req = c.req(Method::POST, path).header("content-type", ct);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    c.send(req.body(body(text)).unwrap()).await
}

async fn login(c: &TestClient) -> Value {
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "correct horse battery"),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ])
    .unwrap();
    let r = post(
        c,
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        form,
    )
    .await;
    assert_eq!(r.status, 403);
    r.json()
}

fn passgate(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(["users"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_cli_makes_the_user_enrol_again() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let clock = ManualClock::starting_now();
    let builder = TestGateway::builder()
        .dir(dir.clone())
        .clock(clock.clone())
        .toml(&toml());
    let config = dir.path().join("passgate.toml");
    std::fs::write(&config, builder.config_text(dir.path().to_str().unwrap())).unwrap();
    let gw = builder.start().await;
    add_user(
        dir.path(),
        clock.clone(),
        REALM,
        "alice",
        Some("alice@example.com"),
        "correct horse battery",
    )
    .await;
    let c = gw.client(Proto::H1);

    let token = login(&c).await["mfa_token"].as_str().unwrap().to_string();
    let r = post(
        &c,
        "/mfa/associate",
        Some(&token),
        "application/json",
        json!({"authenticator_types": ["otp"]}).to_string(),
    )
    .await;
    let seed = totp_rs::Secret::Encoded(r.json()["secret"].as_str().unwrap().into())
        .to_bytes()
        .unwrap();
    let otp = passgate::mfa::totp::code_at(&seed, clock.now());
    let form = serde_urlencoded::to_string([
        ("grant_type", OTP),
        ("mfa_token", token.as_str()),
        ("otp", otp.as_str()),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ])
    .unwrap();
    let r = post(
        &c,
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        form,
    )
    .await;
    assert_eq!(r.status, 200);

    let user = ["--realm", REALM, "--username", "alice"];
    let (ok, out) = passgate(
        &config,
        &[&["mfa", "list", "--json"][..], &user[..]].concat(),
    );
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["active"].as_bool().unwrap()))
        .collect();
    assert_eq!(kinds, [("otp", true), ("recovery-code", true)]);
    let (ok, out) = passgate(&config, &["list", "--realm", REALM]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.contains("alice") && l.contains("yes")),
        "{out}"
    );
    assert!(out.lines().next().unwrap().contains("mfa"), "{out}");

    let (ok, out) = passgate(&config, &[&["mfa", "reset"][..], &user[..]].concat());
    assert!(ok && out.contains("removed 2 authenticator(s)"), "{out}");
    assert_eq!(
        login(&c).await["mfa_requirements"],
        json!({"enroll": [{"type": "otp"}]})
    );
    let (ok, out) = passgate(
        &config,
        &["mfa", "reset", "--realm", REALM, "--username", "nobody"],
    );
    assert!(!ok && out.contains("no user nobody"), "{out}");
    gw.shutdown().await;
}
