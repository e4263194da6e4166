//! MFA on the password grant, end to end over TLS: `mfa_required`, enrolment
//! (`/mfa/associate`), the `mfa-otp`, `mfa-recovery-code` and `mfa-oob`
//! grants, replays, the wrong-code block, expired and foreign `mfa_token`s,
//! the realm policies, refresh keeping `amr`, and the gateway's step-up check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use common::*;
use http::Method;
use passgate::clock::ManualClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use serde_json::{Value, json};

const REALM: &str = "Username-Password-Authentication";
const OPTIONAL: &str = "optional-realm";
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";
const RECOVERY: &str = "http://auth0.com/oauth/grant-type/mfa-recovery-code";
const OOB: &str = "http://auth0.com/oauth/grant-type/mfa-oob";
const REALM_GRANT: &str = "http://auth0.com/oauth/grant-type/password-realm";

fn toml(upstream: &str, extra: &str) -> String {
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
scopes = ["read:items", "write:items"]
token_lifetime = "1h"
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "{REALM_GRANT}", "refresh_token", "{OTP}", "{RECOVERY}", "{OOB}"]
realms = ["{REALM}", "{OPTIONAL}"]
[[clients]]
id = "other"
secret = "other-secret"
grant_types = ["password", "{OTP}"]
[[realms]]
name = "{REALM}"
mfa = "required"
[[realms]]
name = "{OPTIONAL}"
mfa = "optional"
[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "https://api.example.com"
require_mfa = ["POST", "DELETE"]
{extra}
"#
    )
}

struct World {
    gw: TestGateway,
    c: TestClient,
    clock: Arc<ManualClock>,
    _upstream: Upstream,
}

async fn world(extra: &str) -> World {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = TestGateway::builder()
        .clock(clock.clone())
        .toml(&toml(&upstream.url, extra))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        clock.clone(),
    );
    for realm in [REALM, OPTIONAL] {
        admin
            .add(
                realm,
                "alice",
                Some("alice@example.com"),
                "correct horse battery",
            )
            .await
            .unwrap();
    }
    let c = gw.client(Proto::H1);
    World {
        gw,
        c,
        clock,
        _upstream: upstream,
    }
}

async fn post(c: &TestClient, path: &str, pairs: &[(&str, &str)]) -> Reply {
    let req = c
        .req(Method::POST, path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

async fn send_json(c: &TestClient, method: Method, path: &str, bearer: &str, v: Value) -> Reply {
    let req = c
        .req(method, path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {bearer}"))
        .body(body(v.to_string()))
        .unwrap();
    c.send(req).await
}

/// A password login as alice in `realm`; the reply as is.
async fn password(w: &World, realm: &str, client: (&str, &str)) -> Reply {
    post(
        &w.c,
        "/oauth/token",
        &[
            ("grant_type", REALM_GRANT),
            ("realm", realm),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("client_id", client.0),
            ("client_secret", client.1),
            ("scope", "openid offline_access read:items write:items"),
        ],
    )
    .await
}

async fn mfa_token(w: &World, realm: &str) -> String {
    let r = password(w, realm, ("app", "app-secret")).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["error"], "mfa_required");
    assert_eq!(
        v["error_description"],
        "Multifactor authentication required"
    );
    v["mfa_token"].as_str().unwrap().to_string()
}

/// Enrol TOTP with an mfa_token: the seed and the recovery code.
async fn associate(w: &World, token: &str) -> (Vec<u8>, String) {
    let r = send_json(
        &w.c,
        Method::POST,
        "/mfa/associate",
        token,
        json!({"authenticator_types": ["otp"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["authenticator_type"], "otp");
    assert!(
        v["barcode_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/localhost:")
    );
    let secret = v["secret"].as_str().unwrap();
    let seed = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .unwrap();
    (seed, v["recovery_codes"][0].as_str().unwrap().to_string())
}

fn code(w: &World, seed: &[u8]) -> String {
    passgate::mfa::totp::code_at(seed, passgate::clock::Clock::now(w.clock.as_ref()))
}

async fn otp_grant(w: &World, token: &str, otp: &str, client: (&str, &str)) -> Reply {
    post(
        &w.c,
        "/oauth/token",
        &[
            ("grant_type", OTP),
            ("mfa_token", token),
            ("otp", otp),
            ("client_id", client.0),
            ("client_secret", client.1),
        ],
    )
    .await
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn error_of(r: &Reply) -> (u16, String, String) {
    let v = r.json();
    (
        r.status.as_u16(),
        v["error"].as_str().unwrap_or("").to_string(),
        v["error_description"].as_str().unwrap_or("").to_string(),
    )
}

/// Enrol alice in `realm` and finish one login: her seed and recovery code.
async fn enrolled(w: &World, realm: &str) -> (Vec<u8>, String) {
    let token = mfa_token(w, realm).await;
    let (seed, recovery) = associate(w, &token).await;
    let r = otp_grant(w, &token, &code(w, &seed), ("app", "app-secret")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    w.clock.advance(30);
    (seed, recovery)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_forces_enrolment_then_otp_yields_amr_mfa() {
    let w = world("").await;
    let token = mfa_token(&w, REALM).await;
    let r = password(&w, REALM, ("app", "app-secret")).await;
    assert_eq!(
        r.json()["mfa_requirements"],
        json!({"enroll": [{"type": "otp"}]})
    );

    let (seed, _) = associate(&w, &token).await;
    let list = send_json(&w.c, Method::GET, "/mfa/authenticators", &token, json!({})).await;
    assert_eq!(list.status, 200);
    let kinds: Vec<(String, bool)> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["authenticator_type"].as_str().unwrap().to_string(),
                a["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("otp".into(), false), ("recovery-code".into(), false)]
    );

    let r = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let access = claims(v["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["mfa"]));
    assert_eq!(
        access["scope"],
        "openid offline_access read:items write:items"
    );
    assert!(v["id_token"].is_string());
    let refresh_token = v["refresh_token"].as_str().unwrap().to_string();

    // The mfa_token is spent; the same code again is refused too.
    let again = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(
        error_of(&again),
        (403, "invalid_grant".into(), "Malformed mfa_token".into())
    );

    // Enrolled now: the next login is challenged, and a replayed code refused.
    let token = mfa_token(&w, REALM).await;
    let r = password(&w, REALM, ("app", "app-secret")).await;
    assert_eq!(
        r.json()["mfa_requirements"],
        json!({"challenge": [{"type": "otp"}]})
    );
    let replay = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(
        error_of(&replay),
        (403, "invalid_grant".into(), "Invalid otp_code.".into())
    );
    w.clock.advance(30);
    let ch = post(
        &w.c,
        "/mfa/challenge",
        &[
            ("client_id", "app"),
            ("mfa_token", &token),
            ("challenge_type", "otp"),
        ],
    )
    .await;
    assert_eq!(ch.json(), json!({"challenge_type": "otp"}));
    let ok = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(ok.status, 200);

    // A refreshed token keeps amr.
    let r = post(
        &w.c,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        claims(r.json()["access_token"].as_str().unwrap())["amr"],
        json!(["mfa"])
    );

    // Already enrolled: a second associate is refused.
    let token = mfa_token(&w, REALM).await;
    let r = send_json(
        &w.c,
        Method::POST,
        "/mfa/associate",
        &token,
        json!({"authenticator_types": ["otp"]}),
    )
    .await;
    assert_eq!(
        error_of(&r),
        (
            400,
            "invalid_request".into(),
            "User is already enrolled.".into()
        )
    );
    w.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_code_is_spent_and_replaced() {
    let w = world("").await;
    let (_, recovery) = enrolled(&w, REALM).await;
    let token = mfa_token(&w, REALM).await;
    let use_code = |token: String, code: String| {
        let c = w.c.clone();
        async move {
            post(
                &c,
                "/oauth/token",
                &[
                    ("grant_type", RECOVERY),
                    ("mfa_token", &token),
                    ("recovery_code", &code),
                    ("client_id", "app"),
                    ("client_secret", "app-secret"),
                ],
            )
            .await
        }
    };
    let r = use_code(token, recovery.to_lowercase()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        claims(v["access_token"].as_str().unwrap())["amr"],
        json!(["mfa"])
    );
    let fresh = v["recovery_code"].as_str().unwrap().to_string();
    assert_ne!(fresh, recovery);

    let token = mfa_token(&w, REALM).await;
    let dead = use_code(token.clone(), recovery).await;
    assert_eq!(
        error_of(&dead),
        (403, "invalid_grant".into(), "Invalid recovery_code.".into())
    );
    let r = use_code(token, fresh).await;
    assert_eq!(r.status, 200);
    w.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_block_then_refill_and_tokens_are_bound() {
    let w = world("").await;
    let (seed, _) = enrolled(&w, REALM).await;
    let token = mfa_token(&w, REALM).await;
    let right = code(&w, &seed);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);

    // Foreign client and garbage tokens: refused, and nothing is spent.
    let r = otp_grant(&w, &token, &right, ("other", "other-secret")).await;
    assert_eq!(
        error_of(&r),
        (403, "invalid_grant".into(), "Malformed mfa_token".into())
    );
    let r = otp_grant(&w, "not-a-token", &right, ("app", "app-secret")).await;
    assert_eq!(
        error_of(&r),
        (403, "invalid_grant".into(), "Malformed mfa_token".into())
    );

    for _ in 0..10 {
        let r = otp_grant(&w, &token, &wrong, ("app", "app-secret")).await;
        assert_eq!(error_of(&r).2, "Invalid otp_code.");
    }
    // Blocked: even the right code is not checked; a new mfa_token does not help.
    let r = otp_grant(&w, &token, &right, ("app", "app-secret")).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(error_of(&r).1, "too_many_attempts");
    // The password step is not blocked.
    let fresh = mfa_token(&w, REALM).await;
    let r = otp_grant(&w, &fresh, &right, ("app", "app-secret")).await;
    assert_eq!(r.status, 429);
    // One attempt comes back after the refill (6 minutes; the first token expires past 10).
    w.clock.advance(360);
    let r = otp_grant(&w, &fresh, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let old = mfa_token(&w, REALM).await;
    w.clock.advance(601);
    let r = otp_grant(&w, &old, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(
        error_of(&r),
        (403, "expired_token".into(), "mfa_token is expired".into())
    );
    w.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_asks_only_the_enrolled_and_step_up_guards_writes() {
    let w = world("").await;
    // Not enrolled under "optional": tokens straight away, without amr.
    let r = password(&w, OPTIONAL, ("app", "app-secret")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let plain = r.json()["access_token"].as_str().unwrap().to_string();
    assert!(claims(&plain).get("amr").is_none());

    // The step-up route: reads pass, writes need amr mfa (RFC 9470).
    let get =
        w.c.get_with(
            "/api/items",
            &[("authorization", &format!("Bearer {plain}"))],
        )
        .await;
    assert_eq!(get.status, 200);
    let req =
        w.c.req(Method::POST, "/api/items")
            .header("authorization", format!("Bearer {plain}"))
            .body(empty())
            .unwrap();
    let r = w.c.send(req).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        "Bearer realm=\"passgate\", error=\"insufficient_user_authentication\", error_description=\"A second factor is required for this request\""
    );

    // A login that did MFA (the required realm's alice) may write.
    let (seed, _) = enrolled(&w, REALM).await;
    let token = mfa_token(&w, REALM).await;
    let r = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    let strong = r.json()["access_token"].as_str().unwrap().to_string();
    let req =
        w.c.req(Method::POST, "/api/items")
            .header("authorization", format!("Bearer {strong}"))
            .body(empty())
            .unwrap();
    assert_eq!(w.c.send(req).await.status, 200);

    // A confirmed factor is not removed with an mfa_token, only with a token that did MFA.
    let token = mfa_token(&w, REALM).await;
    let list = send_json(&w.c, Method::GET, "/mfa/authenticators", &token, json!({}))
        .await
        .json();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let path = format!("/mfa/authenticators/{}", id.replace('|', "%7C"));
    let r = send_json(&w.c, Method::DELETE, &path, &token, json!({})).await;
    assert_eq!(r.status, 404);
    let r = send_json(&w.c, Method::DELETE, &path, &plain, json!({})).await;
    assert_eq!(r.status, 401);
    let r = send_json(&w.c, Method::DELETE, &path, &strong, json!({})).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = password(&w, REALM, ("app", "app-secret")).await;
    assert_eq!(
        r.json()["mfa_requirements"],
        json!({"enroll": [{"type": "otp"}]}),
        "unenrolled again"
    );
    w.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_grant_skips_mfa_where_required() {
    let w = world("").await;
    // password and password-realm answer mfa_required, never tokens.
    for grant in [
        vec![("grant_type", "password")],
        vec![("grant_type", REALM_GRANT), ("realm", REALM)],
    ] {
        let mut pairs = grant.clone();
        pairs.extend([
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ]);
        let r = post(&w.c, "/oauth/token", &pairs).await;
        assert_eq!(error_of(&r).1, "mfa_required");
    }
    let (seed, recovery) = enrolled(&w, REALM).await;
    let token = mfa_token(&w, REALM).await;
    // Every mfa grant with a foreign, bogus or used token: no token.
    for (grant, field, value) in [
        (OTP, "otp", code(&w, &seed)),
        (RECOVERY, "recovery_code", recovery.clone()),
        (OOB, "oob_code", "x".into()),
    ] {
        for bad in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "short"] {
            let r = post(
                &w.c,
                "/oauth/token",
                &[
                    ("grant_type", grant),
                    ("mfa_token", bad),
                    (field, &value),
                    ("binding_code", "000000"),
                    ("client_id", "app"),
                    ("client_secret", "app-secret"),
                ],
            )
            .await;
            assert_eq!(r.status, 403, "{grant} {bad}");
            assert!(r.json().get("access_token").is_none());
        }
    }
    let r = otp_grant(&w, &token, &code(&w, &seed), ("app", "app-secret")).await;
    assert_eq!(r.status, 200);
    let r = post(
        &w.c,
        "/oauth/token",
        &[
            ("grant_type", RECOVERY),
            ("mfa_token", &token),
            ("recovery_code", &recovery),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(
        error_of(&r),
        (403, "invalid_grant".into(), "Malformed mfa_token".into()),
        "a used token"
    );
    w.gw.shutdown().await;
}
