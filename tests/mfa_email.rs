//! The e-mail channel end to end: passgate sends codes over SMTP to a sink
//! this test runs on loopback, which captures them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine;
use common::*;
use http::Method;
use passgate::clock::ManualClock;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const REALM: &str = "Username-Password-Authentication";
const OOB: &str = "http://auth0.com/oauth/grant-type/mfa-oob";

/// A loopback SMTP server that accepts every message and keeps its text.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<String>>>);

impl Sink {
    async fn start() -> (Sink, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink::default();
        let kept = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 sink ready\r\n").await.unwrap();
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(text) = data.as_mut() {
                            if line == "." {
                                kept.0.lock().unwrap().push(data.take().unwrap());
                                w.write_all(b"250 queued\r\n").await.unwrap();
                            } else {
                                text.push_str(&line);
                                text.push('\n');
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let answer: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"250 ok\r\n",
                        };
                        w.write_all(answer).await.unwrap();
                    }
                });
            }
        });
        (sink, port)
    }

    /// The code of the last message.
    fn last_code(&self) -> String {
        let all = self.0.lock().unwrap();
        let text = all.last().expect("no e-mail arrived");
        let at = text.find("code is ").expect("a code in the e-mail") + "code is ".len();
        text[at..at + 6].to_string()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_enrol_and_challenge() {
    let (sink, port) = Sink::start().await;
    let clock = ManualClock::starting_now();
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
smtp_url = "smtp://127.0.0.1:{port}"
from = "passgate@example.com"
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
