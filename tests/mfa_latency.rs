//! An OTP exchange end to end beside a password login, in the same run
//! (`cargo test --test mfa_latency -- --nocapture` prints p50/p99), and the
//! check that the exchange never reaches the password hashing pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use passgate::clock::{Clock, ManualClock};
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUNDS: usize = 100;
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";
const REALM_GRANT: &str = "http://auth0.com/oauth/grant-type/password-realm";

async fn post(c: &TestClient, pairs: &[(&str, &str)]) -> Reply {
    let req = c
        .req(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap();
    c.send(req).await
}

async fn login(c: &TestClient, realm: &str) -> Reply {
    post(
        c,
        &[
            ("grant_type", REALM_GRANT),
            ("realm", realm),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("client_id", "app"),
            ("client_secret", "app-secret"),
        ],
    )
    .await
}

/// `passgate_password_checks_total{outcome="run"}` from the admin listener.
async fn password_checks(gw: &TestGateway) -> u64 {
    let mut s = tokio::net::TcpStream::connect(gw.admin_addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("passgate_password_checks_total{outcome=\"run\"}"))
        .expect("the password-check counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.50), percentile(&v, 0.99));
    println!(
        "{what:<34} n={} p50={:.2} ms p99={:.2} ms",
        v.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    p50
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otp_exchange_beside_password_login() {
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
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items"]
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["{REALM_GRANT}", "{OTP}"]
realms = ["plain", "strong"]
[[realms]]
name = "plain"
[[realms]]
name = "strong"
mfa = "required"
[passwords]
verify_floor = "0s"
[attack_protection]
request_limit = 100000
user_ip_burst = 100000
user_ip_limit = 100000
"#
        ))
        .start()
        .await;
    let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
    let admin = Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        clock.clone(),
    );
    for realm in ["plain", "strong"] {
        admin
            .add(
                realm,
                "alice",
                Some("a@example.com"),
                "correct horse battery",
            )
            .await
            .unwrap();
    }
    let c = gw.client(Proto::H1);

    // Enrol once.
    let token = login(&c, "strong").await.json()["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let req = c
        .req(Method::POST, "/mfa/associate")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(body(r#"{"authenticator_types":["otp"]}"#))
        .unwrap();
    let secret = c.send(req).await.json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let seed = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();

    let mut password_logins = Vec::new();
    let mut otp_exchanges = Vec::new();
    let mut checks_during_otp = 0;
    for i in 0..=ROUNDS {
        let t = Instant::now();
        let r = login(&c, "plain").await;
        let password_time = t.elapsed();
        assert_eq!(r.status, 200);

        let token = login(&c, "strong").await.json()["mfa_token"]
            .as_str()
            .unwrap()
            .to_string();
        clock.advance(30); // a new TOTP step each round: no replay
        let otp = passgate::mfa::totp::code_at(&seed, clock.now());
        let before = password_checks(&gw).await;
        let t = Instant::now();
        let r = post(
            &c,
            &[
                ("grant_type", OTP),
                ("mfa_token", &token),
                ("otp", &otp),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
        )
        .await;
        let otp_time = t.elapsed();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        checks_during_otp += password_checks(&gw).await - before;
        if i > 0 {
            // Round 0 warms connections and caches.
            password_logins.push(password_time);
            otp_exchanges.push(otp_time);
        }
    }
    assert_eq!(checks_during_otp, 0, "an OTP exchange ran a password check");
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("({build} build of passgate; argon2 at opt-level 3, default cost)");
    let password = report("password login (mfa off)", password_logins);
    let otp = report("mfa-otp exchange", otp_exchanges);
    assert!(
        otp < password,
        "an OTP exchange ({otp:?}) should cost less than an argon2 login ({password:?})"
    );
    gw.shutdown().await;
}
