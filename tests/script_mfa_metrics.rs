//! The script and MFA metric families, scraped from the admin listener after
//! known traffic: each rule's and action's runs and failures (denied, error,
//! timeout, memory), the MFA events of one enrolment (enrolled, challenged,
//! failed, verified), and the script pool's queue depth and runtime memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use http::Method;
use passgate::clock::{Clock, SystemClock};
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::{MetadataUpdate, SqliteStore, Store};
use serde_json::json;

const REALM: &str = LOGIN_REALM;
const PASSWORD: &str = "correct horse battery";
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";

fn config() -> String {
    let mut t = format!(
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
name = "Demo App"
secret = "app-secret"
grant_types = ["password", "{OTP}"]
realms = ["{REALM}"]
[[realms]]
name = "{REALM}"
[extensibility]
timeout = "300ms"
memory_limit = "16MiB"
workers = 1
[[rules]]
name = "mfa-for-admins"
script = "{}"
"#,
        fixture("rules/mfa-for-admins.js")
    );
    for a in [
        "deny-contractors",
        "throws-for-eve",
        "loop-for-mallory",
        "bomb-for-oscar",
    ] {
        t.push_str(&format!(
            "[[actions]]\nname = \"{a}\"\nscript = \"{}\"\n",
            fixture(&format!("actions/{a}.js"))
        ));
    }
    t
}

async fn form(c: &TestClient, path: &str, pairs: &[(&str, &str)]) -> Reply {
    let req = c
        .req(Method::POST, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

async fn login(c: &TestClient, username: &str) -> Reply {
    form(
        c,
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await
}

async fn otp_grant(c: &TestClient, mfa_token: &str, otp: &str) -> Reply {
    form(
        c,
        "/oauth/token",
        &[
            ("grant_type", OTP),
            ("mfa_token", mfa_token),
            ("otp", otp),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_and_mfa_families_count_what_happened() {
    let gw = TestGateway::builder().toml(&config()).start().await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store.clone(),
        Hasher::new(Default::default(), 1).unwrap(),
        Arc::new(SystemClock),
    );
    for (name, email) in [
        ("root", "root@example.com"),
        ("bob", "bob@contractor.example"),
        ("eve", "eve@example.com"),
        ("mallory", "mallory@example.com"),
        ("oscar", "oscar@example.com"),
        ("ann", "ann@example.com"),
    ] {
        let u = admin.add(REALM, name, Some(email), PASSWORD).await.unwrap();
        if name == "root" {
            store
                .update_metadata(&MetadataUpdate {
                    user_id: u.user_id,
                    app_metadata: Some(json!({"roles": ["admin"]})),
                    user_metadata: None,
                    now: 0,
                })
                .await
                .unwrap();
        }
    }
    let c = gw.client(Proto::H1);

    // One login each: passes, denied, threw, ran out of time, out of memory.
    for (user, status) in [
        ("ann", 200),
        ("bob", 403),
        ("eve", 403),
        ("mallory", 500),
        ("oscar", 500),
    ] {
        let r = login(&c, user).await;
        assert_eq!(
            r.status,
            status,
            "{user}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    // root: the rule demands MFA; enrol, challenge, a wrong code, the right one.
    let r = login(&c, "root").await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let mfa_token = r.json()["mfa_token"].as_str().unwrap().to_string();
    let req = c
        .req(Method::POST, "/mfa/associate")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {mfa_token}"))
        .body(body(json!({"authenticator_types": ["otp"]}).to_string()))
        .unwrap();
    let a = c.send(req).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let secret = a.json()["secret"].as_str().unwrap().to_string();
    let seed = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();
    let r = form(
        &c,
        "/mfa/challenge",
        &[
            ("client_id", "app"),
            ("mfa_token", &mfa_token),
            ("challenge_type", "otp"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let now = SystemClock.now();
    // Ten steps ahead: outside the one-step window either way.
    let wrong = passgate::mfa::totp::code_at(&seed, now + 300);
    let r = otp_grant(&c, &mfa_token, &wrong).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let right = passgate::mfa::totp::code_at(&seed, now);
    let r = otp_grant(&c, &mfa_token, &right).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let (code, text) = admin_text(gw.admin_addr, "/metrics").await;
    assert_eq!(code, 200);
    let failures = |script: &str, reason: &str| {
        metric_value(
            &text,
            &format!(
                "passgate_script_failures_total{{kind=\"action\",script=\"{script}\",reason=\"{reason}\"}}"
            ),
        )
    };
    let runs = |kind: &str, script: &str| {
        metric_value(
            &text,
            &format!(
                "passgate_script_duration_seconds_count{{kind=\"{kind}\",script=\"{script}\"}}"
            ),
        )
    };
    let mfa = |outcome: &str| {
        metric_value(
            &text,
            &format!("passgate_mfa_events_total{{factor=\"otp\",outcome=\"{outcome}\"}}"),
        )
    };
    // Six logins ran the rule; each refusal or failure stops the chain there.
    assert_eq!(runs("rule", "mfa-for-admins"), 6.0, "{text}");
    assert_eq!(runs("action", "deny-contractors"), 6.0, "{text}");
    assert_eq!(runs("action", "throws-for-eve"), 5.0, "{text}");
    assert_eq!(runs("action", "loop-for-mallory"), 4.0, "{text}");
    assert_eq!(runs("action", "bomb-for-oscar"), 3.0, "{text}");
    assert_eq!(failures("deny-contractors", "denied"), 1.0, "{text}");
    assert_eq!(failures("deny-contractors", "error"), 0.0, "{text}");
    assert_eq!(failures("throws-for-eve", "error"), 1.0, "{text}");
    assert_eq!(failures("throws-for-eve", "denied"), 0.0, "{text}");
    assert_eq!(failures("loop-for-mallory", "timeout"), 1.0, "{text}");
    assert_eq!(failures("bomb-for-oscar", "memory"), 1.0, "{text}");
    assert_eq!(
        metric_value(
            &text,
            "passgate_script_failures_total{kind=\"rule\",script=\"mfa-for-admins\",reason=\"error\"}"
        ),
        0.0
    );
    for (outcome, n) in [
        ("enrolled", 1.0),
        ("challenged", 1.0),
        ("failed", 1.0),
        ("verified", 1.0),
        ("locked", 0.0),
    ] {
        assert_eq!(mfa(outcome), n, "{outcome} in\n{text}");
    }
    assert!(text.contains("passgate_script_queue_depth 0\n"), "{text}");
    let bytes = metric_value(&text, "passgate_script_runtime_bytes{worker=\"0\"}");
    assert!(
        bytes > 0.0 && bytes < 16.0 * 1024.0 * 1024.0,
        "{bytes} in\n{text}"
    );
    gw.shutdown().await;
}
