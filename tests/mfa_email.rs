//! The e-mail channel end to end: passgate sends codes over SMTP to a sink
//! this test runs on loopback (`mfa_email/sink.rs`), which captures them:
//! in plain text, over `smtps://` and over STARTTLS with a login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "mfa_email/sink.rs"]
mod sink;

use std::sync::{Arc, Mutex};

use base64::Engine;
use common::*;
use http::Method;
use passgate::clock::ManualClock;
use serde_json::{Value, json};
use sink::{Mode, Sink};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const REALM: &str = "Username-Password-Authentication";
const OOB: &str = "http://auth0.com/oauth/grant-type/mfa-oob";

async fn post(c: &TestClient, pairs: &[(&str, &str)]) -> Reply {
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

async fn send_json(c: &TestClient, path: &str, bearer: Option<&str>, v: Value) -> Reply {
    let mut req = c
        .req(Method::POST, path)
        .header("content-type", "application/json");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    c.send(req.body(body(v.to_string())).unwrap()).await
}

async fn mfa_token(c: &TestClient) -> Value {
    let r = post(
        c,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn oob_grant(c: &TestClient, token: &str, oob_code: &str, binding: &str) -> Reply {
    post(
        c,
        &[
            ("grant_type", OOB),
            ("mfa_token", token),
            ("oob_code", oob_code),
            ("binding_code", binding),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await
}

fn amr(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["amr"].clone()
}

/// A gateway whose realm requires MFA, sending e-mail codes as `email`
/// (the body of `[mfa.email]`, without `from`) says, with alice enrolled in
/// nothing yet.
async fn gateway(clock: &Arc<ManualClock>, email: &str) -> TestGateway {
    let gw = TestGateway::builder()
        .clock(clock.clone())
        .toml(&format!(
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
grant_types = ["password", "{OOB}"]
[[realms]]
name = "{REALM}"
mfa = "required"
[mfa.email]
from = "passgate@example.com"
{email}
"#
        ))
        .start()
        .await;
    add_user(
        gw.dir.path(),
        clock.clone(),
        REALM,
        "alice",
        Some("alice@example.com"),
        "correct horse battery",
    )
    .await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_enrol_and_challenge() {
    let (sink, port) = Sink::start().await;
    let clock = ManualClock::starting_now();
    let gw = gateway(&clock, &format!("smtp_url = \"smtp://127.0.0.1:{port}\"")).await;
    let c = gw.client(Proto::H2);

    let v = mfa_token(&c).await;
    assert_eq!(
        v["mfa_requirements"],
        json!({"enroll": [{"type": "otp"}, {"type": "email"}]})
    );
    let token = v["mfa_token"].as_str().unwrap().to_string();
    let r = send_json(
        &c,
        "/mfa/associate",
        Some(&token),
        json!({"authenticator_types": ["oob"], "oob_channels": ["email"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let enrol = r.json();
    assert_eq!(enrol["oob_channel"], "email");
    assert_eq!(enrol["binding_method"], "prompt");
    assert_eq!(sink.count(), 1);
    let code = sink.last_code();
    let oob_code = enrol["oob_code"].as_str().unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = oob_grant(&c, &token, oob_code, &wrong).await;
    assert_eq!(r.json()["error_description"], "Invalid binding_code.");
    let r = oob_grant(&c, &token, oob_code, &code).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        amr(r.json()["access_token"].as_str().unwrap()),
        json!(["mfa"])
    );

    // Enrolled: the next login is challenged by e-mail.
    let v = mfa_token(&c).await;
    assert_eq!(
        v["mfa_requirements"],
        json!({"challenge": [{"type": "email"}]})
    );
    let token = v["mfa_token"].as_str().unwrap().to_string();
    let list = c
        .get_with(
            "/mfa/authenticators",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
        .json();
    assert_eq!(list[0]["name"], "a***@example.com");
    assert_eq!(list[0]["active"], true);
    let r = send_json(
        &c,
        "/mfa/challenge",
        None,
        json!({"client_id": "app", "mfa_token": token, "challenge_type": "oob"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ch = r.json();
    assert_eq!(ch["challenge_type"], "oob");
    assert_eq!(sink.count(), 2);
    let r = oob_grant(
        &c,
        &token,
        ch["oob_code"].as_str().unwrap(),
        &sink.last_code(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    gw.shutdown().await;
}

/// A certificate for `localhost` (its own root), written to `dir/relay.pem`,
/// and a TLS acceptor serving it.
fn relay_certificate(dir: &std::path::Path) -> (std::path::PathBuf, TlsAcceptor) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let path = dir.join("relay.pem");
    std::fs::write(&path, generated.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
    (path, TlsAcceptor::from(Arc::new(config)))
}

/// Enrol alice's e-mail: the `/mfa/associate` reply.
async fn associate_email(gw: &TestGateway) -> Reply {
    let c = gw.client(Proto::H1);
    let token = mfa_token(&c).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    send_json(
        &c,
        "/mfa/associate",
        Some(&token),
        json!({"authenticator_types": ["oob"], "oob_channels": ["email"]}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_go_to_the_relay_over_tls_with_its_login() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, acceptor) = relay_certificate(certs.path());
    let clock = ManualClock::starting_now();
    let login = "username = \"passgate\"\npassword = \"relay-secret\"";

    // smtps:// (TLS from the first byte) and STARTTLS, each with a login:
    // the code arrives encrypted, after the login.
    for (mode, url, starttls) in [
        (Mode::Implicit, "smtps", ""),
        (Mode::StartTls, "smtp", "starttls = \"required\""),
    ] {
        let (sink, port) = Sink::start_with(mode, Some(acceptor.clone())).await;
        let email = format!(
            "smtp_url = \"{url}://localhost:{port}\"\n{starttls}\n{login}\nca_file = \"{}\"",
            ca.display()
        );
        let gw = gateway(&clock, &email).await;
        let r = associate_email(&gw).await;
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let got = sink.received();
        assert_eq!(got.len(), 1, "{url}");
        assert!(got[0].tls, "{url}: the code went out in plain text");
        assert_eq!(
            got[0].login.as_deref(),
            Some("passgate:relay-secret"),
            "{url}"
        );
        assert!(got[0].text.contains("code is "), "{url}");
        gw.shutdown().await;
    }

    // Nothing goes out when the encryption asked for cannot be had: a relay
    // that offers no STARTTLS, or whose certificate no root vouches for.
    let (plain, plain_port) = Sink::start_with(Mode::Plain, None).await;
    let (untrusted, untrusted_port) = Sink::start_with(Mode::Implicit, Some(acceptor)).await;
    for email in [
        format!("smtp_url = \"smtp://localhost:{plain_port}\"\nstarttls = \"required\""),
        format!("smtp_url = \"smtps://localhost:{untrusted_port}\""),
    ] {
        let gw = gateway(&clock, &email).await;
        let r = associate_email(&gw).await;
        assert_eq!(
            r.status,
            503,
            "{email}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"], "temporarily_unavailable", "{email}");
        gw.shutdown().await;
    }
    assert!(plain.received().is_empty(), "sent without STARTTLS");
    assert!(
        untrusted.received().is_empty(),
        "sent to an unverified relay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_relay_is_given_up_on_after_the_timeout() {
    // Accepts connections, and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            holding.lock().unwrap().push(tcp);
        }
    });
    let clock = ManualClock::starting_now();
    let email = format!("smtp_url = \"smtp://127.0.0.1:{port}\"\ntimeout = \"300ms\"");
    let gw = gateway(&clock, &email).await;
    // The relay would wait forever; passgate gives up after 300 ms.
    let r = tokio::time::timeout(std::time::Duration::from_secs(20), associate_email(&gw))
        .await
        .expect("passgate kept waiting for the silent relay");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert!(!held.lock().unwrap().is_empty(), "passgate never connected");
    gw.shutdown().await;
}
