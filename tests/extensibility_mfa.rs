//! A script's demand for a second factor, end to end over TLS: a rule that
//! sets `context.multifactor` for admins, or an action that calls
//! `api.multifactor.enable("any")` in a realm whose policy is `off`, turns
//! the password login into `mfa_required`; the OTP dance then yields the
//! tokens the scripts decided (their claim, `amr` `["mfa"]`), and the
//! metadata they wrote is stored only then, never after the 403.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::Method;
use passgate::clock::{Clock, ManualClock};
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::{MetadataUpdate, SqliteStore, Store};
use serde_json::{Value, json};

const REALM: &str = LOGIN_REALM;
const PASSWORD: &str = "correct horse battery";
const OTP: &str = "http://auth0.com/oauth/grant-type/mfa-otp";
const TIER: &str = "https://example.com/tier";

fn config(rules: &[&str], actions: &[&str]) -> String {
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
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "refresh_token", "{OTP}"]
realms = ["{REALM}"]
[[realms]]
name = "{REALM}"
mfa = "off"
[extensibility]
timeout = "2s"
workers = 1
"#
    );
    for r in rules {
        t.push_str(&format!(
            "[[rules]]\nname = \"{r}\"\nscript = \"{}\"\n",
            fixture(r)
        ));
    }
    for a in actions {
        t.push_str(&format!(
            "[[actions]]\nname = \"{a}\"\nscript = \"{}\"\n",
            fixture(a)
        ));
    }
    t
}

struct World {
    _gw: TestGateway,
    c: TestClient,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
}

impl World {
    async fn start(rules: &[&str], actions: &[&str]) -> World {
        let clock = ManualClock::starting_now();
        let gw = TestGateway::builder()
            .clock(clock.clone())
            .toml(&config(rules, actions))
            .start()
            .await;
        let store = Arc::new(SqliteStore::open(&gw.dir.path().join("passgate.db")).unwrap());
        let admin = Admin::new(
            store.clone(),
            Hasher::new(Default::default(), 1).unwrap(),
            clock.clone(),
        );
        for (name, app) in [
            ("root", json!({"roles": ["admin"]})),
            ("ann", json!({"roles": ["editor"]})),
        ] {
            let u = admin.add(REALM, name, None, PASSWORD).await.unwrap();
            store
                .update_metadata(&MetadataUpdate {
                    user_id: u.user_id,
                    app_metadata: Some(app),
                    user_metadata: None,
                    now: 0,
                })
                .await
                .unwrap();
        }
        let c = gw.client(Proto::H1);
        World {
            _gw: gw,
            c,
            clock,
            store,
        }
    }

    async fn token(&self, pairs: &[(&str, &str)]) -> Reply {
        let mut all = vec![("client_id", "app"), ("client_secret", "app-secret")];
        all.extend_from_slice(pairs);
        let req = self
            .c
            .req(Method::POST, "/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body(serde_urlencoded::to_string(&all).unwrap()))
            .unwrap();
        self.c.send(req).await
    }

    async fn login(&self, username: &str) -> Reply {
        self.token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("scope", "openid offline_access read:items"),
        ])
        .await
    }

    async fn app_metadata(&self, username: &str) -> Value {
        self.store
            .find_login(REALM, username)
            .await
            .unwrap()
            .unwrap()
            .app_metadata
    }

    /// The whole dance after a password login that must answer
    /// `mfa_required`: enrol TOTP, present its code. The `mfa-otp` reply and
    /// the grant's parameters.
    async fn second_factor(&self, username: &str) -> (Reply, [String; 2]) {
        let r = self.login(username).await;
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        assert_eq!(v["error"], "mfa_required");
        assert_eq!(v["mfa_requirements"], json!({"enroll": [{"type": "otp"}]}));
        let mfa_token = v["mfa_token"].as_str().unwrap().to_string();
        assert_eq!(
            self.app_metadata(username).await["logins_seen"],
            Value::Null,
            "metadata stored after the 403"
        );

        let req = self
            .c
            .req(Method::POST, "/mfa/associate")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {mfa_token}"))
            .body(body(json!({"authenticator_types": ["otp"]}).to_string()))
            .unwrap();
        let a = self.c.send(req).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let secret = a.json()["secret"].as_str().unwrap().to_string();
        let seed = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();
        let otp = passgate::mfa::totp::code_at(&seed, self.clock.now());
        assert_eq!(
            self.app_metadata(username).await["logins_seen"],
            Value::Null,
            "metadata stored by the enrolment"
        );
        let r = self
            .token(&[
                ("grant_type", OTP),
                ("mfa_token", &mfa_token),
                ("otp", &otp),
            ])
            .await;
        (r, [mfa_token, otp])
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The tokens of a finished MFA login carry the action's claim and `amr`
/// `["mfa"]`, and the action's metadata is stored now.
async fn assert_finished_with_mfa(w: &World, username: &str, r: &Reply) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let at = claims(v["access_token"].as_str().unwrap());
    assert_eq!(at[TIER], "gold");
    assert_eq!(at["amr"], json!(["mfa"]));
    assert!(v["refresh_token"].is_string());
    assert_eq!(w.app_metadata(username).await["logins_seen"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_mfa_demand_is_met_by_otp_and_the_scripts_decision_lands_then() {
    let w = World::start(
        &["rules/mfa-for-admins.js"],
        &["actions/claim-and-app-metadata.js"],
    )
    .await;

    // Not an admin: no second factor, the action's work lands at once.
    let r = w.login("ann").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(at[TIER], "gold");
    assert_eq!(at["amr"], Value::Null);
    assert_eq!(w.app_metadata("ann").await["logins_seen"], 1);

    // An admin: the rule demands MFA although the realm's policy is off.
    let (r, [mfa_token, otp]) = w.second_factor("root").await;
    assert_finished_with_mfa(&w, "root", &r).await;
    assert_eq!(w.app_metadata("root").await["roles"], json!(["admin"]));

    // The transaction is spent: a replay finishes nothing and stores nothing.
    let again = w
        .token(&[
            ("grant_type", OTP),
            ("mfa_token", &mfa_token),
            ("otp", &otp),
        ])
        .await;
    assert_eq!(
        again.status,
        403,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(again.json()["error"], "invalid_grant");
    assert_eq!(w.app_metadata("root").await["logins_seen"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actions_mfa_demand_in_a_realm_without_mfa_gets_the_same_dance() {
    let w = World::start(
        &[],
        &["actions/mfa-any.js", "actions/claim-and-app-metadata.js"],
    )
    .await;
    let (r, _) = w.second_factor("ann").await;
    assert_finished_with_mfa(&w, "ann", &r).await;

    // The refresh runs the scripts again; their demand is ignored there (no
    // one can prompt) and the session keeps `amr`.
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    w.clock.advance(30);
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(at["amr"], json!(["mfa"]));
    assert_eq!(at[TIER], "gold");
    assert_eq!(w.app_metadata("ann").await["logins_seen"], 2);
}
