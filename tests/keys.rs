//! Signing-key rotation on a running gateway (docs/architecture.md,
//! "Signing keys"): `passgate keys rotate` (the binary) while the gateway
//! serves over TLS. The new key is in the JWKS within seconds, without a
//! restart; it signs once the JWKS cache lifetime has passed (the gateway's
//! clock is moved, not waited for), or at once with `--now`; the gate
//! accepts tokens of the old and the new key, and stops accepting a key
//! removed from the folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::Method;
use passgate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use passgate::tokens::key_source::rotation_delay;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// A gateway that issues tokens (ES256 keys in `{dir}/signing`) and guards
/// `/api/` with them; user `alice`.
async fn start(clock: SharedClock) -> (TestGateway, Upstream) {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .clock(Arc::clone(&clock))
        .toml(&login_toml())
        .toml(&format!(
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"{}\"\naudience = \"https://api.example.com\"\n",
            upstream.url
        ))
        .start()
        .await;
    add_user(gw.dir.path(), clock, LOGIN_REALM, "alice", None, PASSWORD).await;
    (gw, upstream)
}

async fn token(c: &TestClient) -> String {
    let form = serde_urlencoded::to_string([
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
        ("client_id", "app"),
        ("client_secret", "app-secret"),
    ])
    .unwrap();
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(form))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn jwks_kids(c: &TestClient) -> Vec<String> {
    let r = c.get("/.well-known/jwks.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn api_status(c: &TestClient, token: &str) -> u16 {
    c.get_with(
        "/api/items",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .status
    .as_u16()
}

/// `passgate keys rotate [--now]` on the gateway's config; the new kid and what it said.
async fn rotate(gw: &TestGateway, now: bool) -> (String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_passgate"));
    cmd.args(["keys", "rotate", "--config"])
        .arg(gw.dir.path().join("passgate.toml"));
    if now {
        cmd.arg("--now");
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kid = stdout
        .strip_prefix("new signing key ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no kid in: {stdout}"))
        .to_string();
    (kid, stdout)
}

/// Poll the JWKS (no fixed sleep) until `kid` is in it; the gateway reads
/// its keys every 5 s, so this ends within seconds or the test fails.
async fn until_published(c: &TestClient, kid: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kids = jwks_kids(c).await;
        if kids.iter().any(|k| k == kid) {
            return kids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kid} never published: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_published_at_once_and_signs_after_the_cache_lifetime() {
    let clock = ManualClock::starting_now();
    let (gw, _up) = start(clock.clone()).await;
    let c = gw.client(Proto::H2);
    let old_token = token(&c).await;
    let old = kid(&old_token);
    assert_eq!(jwks_kids(&c).await, vec![old.clone()]);

    let (new, said) = rotate(&gw, false).await;
    assert!(said.contains("starts signing at"), "{said}");
    assert!(said.contains("in 305 s"), "{said}");
    // Published by the running gateway's own refresh: no reload, no restart.
    let kids = until_published(&c, &new).await;
    assert_eq!(kids, [old.clone(), new.clone()]);
    let discovery = c.get("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery.json()["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );

    // Published, not signing: verifiers may still hold a JWKS without it.
    let still_old = token(&c).await;
    assert_eq!(kid(&still_old), old);

    // Once the cache lifetime (and one refresh) has passed, the new key signs.
    let wait = i64::try_from(rotation_delay().as_secs()).unwrap();
    clock.set(SystemClock.now() + wait + 1);
    let fresh = token(&c).await;
    assert_eq!(kid(&fresh), new);
    for t in [&old_token, &still_old, &fresh] {
        assert_eq!(api_status(&c, t).await, 200, "the gate takes both keys");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_rotation_signs_at_once_and_a_removed_key_is_withdrawn() {
    let (gw, _up) = start(passgate::clock::system()).await;
    let c = gw.client(Proto::H1);
    let old_token = token(&c).await;
    let old = kid(&old_token);

    let (new, said) = rotate(&gw, true).await;
    assert!(said.contains("at once"), "{said}");
    assert!(said.contains("Emergency"), "{said}");
    // `passgate reload` reads the keys now, rather than at the next refresh.
    gw.reloader.reload().await.unwrap();
    assert_eq!(jwks_kids(&c).await, [old.clone(), new.clone()]);
    let fresh = token(&c).await;
    assert_eq!(kid(&fresh), new, "the next token is signed by the new key");
    assert_eq!(api_status(&c, &old_token).await, 200);
    assert_eq!(api_status(&c, &fresh).await, 200);

    // Withdraw the old key (a leak): remove its file and reload. It is no
    // longer published, and its tokens are refused.
    let signing = gw.dir.path().join("signing");
    let files: Vec<_> = std::fs::read_dir(&signing)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    assert_eq!(files.len(), 2);
    let oldest = files.iter().min().unwrap();
    std::fs::remove_file(oldest).unwrap();
    gw.reloader.reload().await.unwrap();
    assert_eq!(jwks_kids(&c).await, vec![new.clone()]);
    assert_eq!(api_status(&c, &old_token).await, 401);
    assert_eq!(api_status(&c, &fresh).await, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_load_refuses_the_reload_and_the_keys_held_keep_serving() {
    let (gw, _up) = start(passgate::clock::system()).await;
    let c = gw.client(Proto::H2);
    let before = token(&c).await;
    std::fs::write(gw.dir.path().join("signing/broken.pem"), "not a key").unwrap();
    let refused = gw.reloader.reload().await.unwrap_err();
    let text = format!("{refused:#}");
    assert!(text.contains("broken.pem"), "{text}");
    assert_eq!(jwks_kids(&c).await, [kid(&before)]);
    assert_eq!(kid(&token(&c).await), kid(&before));
    assert_eq!(api_status(&c, &before).await, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_removed_without_a_reload_is_withdrawn_at_the_next_refresh() {
    let (gw, _up) = start(passgate::clock::system()).await;
    let c = gw.client(Proto::H1);
    let old_token = token(&c).await;
    let old = kid(&old_token);
    let (new, _) = rotate(&gw, true).await;
    until_published(&c, &new).await;
    // Checked once: the old key's token is now in the verified-token cache.
    assert_eq!(api_status(&c, &old_token).await, 200);
    assert_eq!(api_status(&c, &old_token).await, 200);

    // Remove the old key's file and wait for the gateway's own refresh (no
    // reload, which would start a fresh cache): the cached token is refused.
    let signing = gw.dir.path().join("signing");
    let old_file = std::fs::read_dir(&signing)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .min()
        .unwrap();
    std::fs::remove_file(old_file).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while jwks_kids(&c).await.contains(&old) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{old} never withdrawn"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api_status(&c, &old_token).await, 401);
    let fresh = token(&c).await;
    assert_eq!(kid(&fresh), new);
    assert_eq!(api_status(&c, &fresh).await, 200);
    gw.shutdown().await;
}
