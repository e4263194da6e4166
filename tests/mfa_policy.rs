//! Realm policies across restarts on the same store: an enrolled user in an
//! `optional` realm is challenged; a session made while the realm was `off`
//! keeps refreshing (without `amr`) after the policy tightens to `required`,
//! as docs/mfa.md says, until it is revoked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use common::*;
use http::Method;
use passgate::clock::{Clock, ManualClock};
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";

fn toml(policy: &str) -> String {
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
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "refresh_token", "{OTP}"]
[[realms]]
name = "{REALM}"
mfa = "{policy}"
"#
    )
}

async fn start(
    dir: &Arc<tempfile::TempDir>,
    clock: &Arc<ManualClock>,
    policy: &str,
) -> TestGateway {
    TestGateway::builder()
        .dir(dir.clone())
        .clock(clock.clone())
        .toml(&toml(policy))
        .start()
        .await
}

async fn post(c: &TestClient, path: &str, bearer: Option<&str>, ct: &str, text: String) -> Reply {
    let mut req = c.req(Method::POST, path).header("content-type", ct);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    c.send(req.body(body(text)).unwrap()).await
}

async fn token(c: &TestClient, pairs: &[(&str, &str)]) -> Reply {
    let mut all = pairs.to_vec();
    all.extend([("client_id", "app"), ("client_secret", "app-secret")]);
    let form = serde_urlencoded::to_string(&all).unwrap();
    post(
        c,
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        form,
    )
    .await
}

async fn login(c: &TestClient) -> Reply {
    token(
        c,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("scope", "offline_access"),
        ],
    )
    .await
}

fn amr(r: &Reply) -> Value {
    let jwt = r.json()["access_token"].as_str().unwrap().to_string();
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["amr"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_over_restarts() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let clock = ManualClock::starting_now();

    // Off: a plain session with a refresh token.
    let gw = start(&dir, &clock, "off").await;
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
    let r = login(&c).await;
    assert_eq!(r.status, 200);
    assert_eq!(amr(&r), Value::Null);
    let mut refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    gw.shutdown().await;

    // Required: the old session still refreshes, without amr; a login enrols.
    let gw = start(&dir, &clock, "required").await;
    let c = gw.client(Proto::H1);
    let r = token(
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        amr(&r),
        Value::Null,
        "a session made without MFA stays without it"
    );
    refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    let v = login(&c).await.json();
    assert_eq!(v["error"], "mfa_required");
    let mfa_token = v["mfa_token"].as_str().unwrap().to_string();
    let r = post(
        &c,
        "/mfa/associate",
        Some(&mfa_token),
        "application/json",
        json!({"authenticator_types": ["otp"]}).to_string(),
    )
    .await;
    let seed = totp_rs::Secret::Encoded(r.json()["secret"].as_str().unwrap().into())
        .to_bytes()
        .unwrap();
    let otp = passgate::mfa::totp::code_at(&seed, clock.now());
    let r = token(
        &c,
        &[
            ("grant_type", OTP),
            ("mfa_token", &mfa_token),
            ("otp", &otp),
        ],
    )
    .await;
    assert_eq!(amr(&r), json!(["mfa"]));
    gw.shutdown().await;

    // Optional: the enrolled user is challenged; the old session still refreshes.
    clock.advance(30);
    let gw = start(&dir, &clock, "optional").await;
    let c = gw.client(Proto::H1);
    let v = login(&c).await.json();
    assert_eq!(
        v["mfa_requirements"],
        json!({"challenge": [{"type": "otp"}]})
    );
    let otp = passgate::mfa::totp::code_at(&seed, clock.now());
    let r = token(
        &c,
        &[
            ("grant_type", OTP),
            ("mfa_token", v["mfa_token"].as_str().unwrap()),
            ("otp", &otp),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = token(
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(r.status, 200);
    gw.shutdown().await;
}
