//! Rules and Actions end to end: real-world and hostile scripts from
//! `tests/fixtures/`, driven through `/oauth/token` over TLS and checked on
//! the issued tokens and in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::Method;
use passgate::clock::SystemClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::{MetadataUpdate, SqliteStore, Store};
use serde_json::{Value, json};

const REALM: &str = LOGIN_REALM;
const PASSWORD: &str = "correct horse battery";

/// The scripts' config: `rules` then `actions`, with the extensibility budget.
fn scripts_toml(rules: &[&str], actions: &[&str], timeout: &str) -> String {
    let mut t = format!(
        "[extensibility]\ntimeout = \"{timeout}\"\nmemory_limit = \"16MiB\"\nworkers = 2\n"
    );
    for r in rules {
        t.push_str(&format!(
            "[[rules]]\nname = \"{r}\"\nscript = \"{}\"\n[rules.configuration]\nROLES_NAMESPACE = \"https://example.com/\"\n",
            fixture(r)
        ));
    }
    for a in actions {
        t.push_str(&format!(
            "[[actions]]\nname = \"{a}\"\nscript = \"{}\"\nsecrets = {{ API_KEY = \"sk_live_123\" }}\n",
            fixture(a)
        ));
    }
    t
}

const BASE: &str = r#"
[issuer]
url = "https://localhost/"
signing_keys = "{dir}/signing"
algorithm = "ES256"
default_audience = "https://api.example.com"
default_realm = "Username-Password-Authentication"
[store]
path = "{dir}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items", "write:items"]
allow_offline_access = true
[[clients]]
id = "app"
name = "Demo App"
secret = "app-secret"
grant_types = ["password", "http://auth0.com/oauth/grant-type/password-realm", "refresh_token"]
realms = ["Username-Password-Authentication"]
[[realms]]
name = "Username-Password-Authentication"
"#;

struct World {
    gw: TestGateway,
    store: Arc<SqliteStore>,
    upstream: Upstream,
}

impl World {
    async fn start(rules: &[&str], actions: &[&str], timeout: &str) -> World {
        let upstream = Upstream::start().await;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let gw = TestGateway::builder()
            .dir(dir.clone())
            .toml(BASE)
            .toml(&scripts_toml(rules, actions, timeout))
            .public_route("/public/", &upstream.url)
            .start()
            .await;
        let store = Arc::new(SqliteStore::open(&dir.path().join("passgate.db")).unwrap());
        let admin = Admin::new(
            store.clone(),
            Hasher::new(Default::default(), 1).unwrap(),
            Arc::new(SystemClock),
        );
        for (name, email, app) in [
            (
                "ann",
                "ann@example.com",
                json!({"roles": ["editor"], "plan": "gold"}),
            ),
            ("bob", "bob@contractor.example", json!({})),
            ("root", "root@example.com", json!({"roles": ["admin"]})),
            ("mallory", "mallory@example.com", json!({})),
        ] {
            let u = admin.add(REALM, name, Some(email), PASSWORD).await.unwrap();
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
        World {
            gw,
            store,
            upstream,
        }
    }

    async fn token(&self, pairs: &[(&str, &str)]) -> Reply {
        let c = self.gw.client(Proto::H1);
        let mut all = vec![("client_id", "app"), ("client_secret", "app-secret")];
        all.extend_from_slice(pairs);
        let req = c
            .req(Method::POST, "/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "extensibility-test/1")
            .body(body(serde_urlencoded::to_string(&all).unwrap()))
            .unwrap();
        c.send(req).await
    }

    async fn login(&self, username: &str, scope: &str) -> Reply {
        self.token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("scope", scope),
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
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn error_of(r: &Reply) -> (u16, String) {
    (
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

#[tokio::test]
async fn real_world_rules_and_actions_shape_the_tokens() {
    let w = World::start(
        &[
            "rules/add-roles.js",
            "rules/login-counter.js",
            "rules/mfa-for-admins.js",
        ],
        &[
            "actions/plan-claim.js",
            "actions/narrow-scopes.js",
            "actions/fake-mfa-marker.js",
        ],
        "2s",
    )
    .await;

    let r = w.login("ann", "openid offline_access").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    let at = claims(j["access_token"].as_str().unwrap());
    assert_eq!(at["https://example.com/roles"], json!(["editor"]));
    assert_eq!(at["https://example.com/plan"], "gold");
    assert_eq!(at["https://example.com/key_prefix"], "sk_");
    assert_eq!(at["https://example.com/password_logins"], 1);
    assert_eq!(at["https://example.com/checked"], true);
    // No script can fake the MFA marker or the session.
    assert!(at.get("amr").is_none(), "{at}");
    assert_ne!(at["sid"], "forged");
    // An editor keeps write access; an undefined scope is never added.
    assert_eq!(j["scope"], "openid offline_access read:items write:items");
    assert_eq!(at["scope"], j["scope"]);
    assert!(j["refresh_token"].is_string());
    let id = claims(j["id_token"].as_str().unwrap());
    assert_eq!(id["https://example.com/roles"], json!(["editor"]));
    assert_eq!(id["https://example.com/password_logins"], 1);
    assert!(id.get("amr").is_none());
    // The counter went to the store with the session, and counts on.
    assert_eq!(w.app_metadata("ann").await["password_logins"], 1);
    assert_eq!(w.app_metadata("ann").await["plan"], "gold");
    let again = w.login("ann", "openid").await.json();
    assert_eq!(
        claims(again["access_token"].as_str().unwrap())["https://example.com/password_logins"],
        2
    );
    assert_eq!(w.app_metadata("ann").await["password_logins"], 2);

    // Without the editor role: write access and offline access removed.
    let bob = w.login("bob", "openid offline_access").await;
    assert_eq!(bob.status, 200);
    let bj = bob.json();
    assert_eq!(bj["scope"], "openid read:items");
    assert!(bj.get("refresh_token").is_none());
    assert_eq!(
        claims(bj["access_token"].as_str().unwrap())["https://example.com/plan"],
        "free"
    );

    // MFA demanded for an admin: the MFA gate asks for a second factor (the
    // admin has none yet, so enrolment), and nothing the scripts decided (the
    // counter) is stored before the MFA grant succeeds.
    let root = w.login("root", "").await;
    assert_eq!(root.status, 403);
    let rj = root.json();
    assert_eq!(rj["error"], "mfa_required");
    assert_eq!(
        rj["error_description"],
        "Multifactor authentication required"
    );
    assert!(rj["mfa_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(rj["mfa_requirements"], json!({"enroll": [{"type": "otp"}]}));
    assert!(
        w.app_metadata("root")
            .await
            .get("password_logins")
            .is_none()
    );

    // Refresh runs the scripts again with protocol oauth2-refresh-token.
    let rt = j["refresh_token"].as_str().unwrap();
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(at["https://example.com/roles"], json!(["editor"]));
    assert_eq!(at["gty"], "refresh_token");
    // The counter rule counts password logins only.
    assert!(at.get("https://example.com/password_logins").is_none());
    assert_eq!(w.app_metadata("ann").await["password_logins"], 2);
    w.gw.shutdown().await;
}

#[tokio::test]
async fn denials_use_auth0s_codes_and_texts() {
    let w = World::start(&["rules/deny-domain.js"], &[], "2s").await;
    assert_eq!(
        error_of(&w.login("bob", "").await),
        (
            401,
            r#"{"error":"unauthorized","error_description":"Access denied for contractor.example accounts."}"#.into()
        )
    );
    assert_eq!(w.login("ann", "").await.status, 200);
    w.gw.shutdown().await;

    let w = World::start(&[], &["actions/deny-contractors.js"], "2s").await;
    assert_eq!(
        error_of(&w.login("bob", "").await),
        (
            403,
            r#"{"error":"access_denied","error_description":"Contractors may not use Demo App."}"#
                .into()
        )
    );
    w.gw.shutdown().await;

    let w = World::start(&["rules/redirect.js"], &[], "2s").await;
    assert_eq!(
        error_of(&w.login("ann", "").await),
        (
            400,
            r#"{"error":"interaction_required","error_description":"Redirects are not supported in the password exchange."}"#.into()
        )
    );
    w.gw.shutdown().await;

    for (action, text) in [
        ("actions/throws.js", "lookup failed: upstream said 500"),
        (
            "actions/require-inside.js",
            "require('fs') is not supported: passgate scripts cannot load modules",
        ),
    ] {
        let w = World::start(&[], &[action], "2s").await;
        assert_eq!(
            error_of(&w.login("ann", "").await),
            (
                403,
                format!(r#"{{"error":"access_denied","error_description":"{text}"}}"#)
            ),
            "{action}"
        );
        w.gw.shutdown().await;
    }
}

#[tokio::test]
async fn a_refused_refresh_does_not_retire_its_token() {
    let w = World::start(&["rules/deny-suspended-refresh.js"], &[], "2s").await;
    let j = w.login("ann", "offline_access").await.json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    let ann = w.store.find_login(REALM, "ann").await.unwrap().unwrap();
    let suspend = |on: bool| MetadataUpdate {
        user_id: ann.user_id.clone(),
        app_metadata: Some(json!({"suspended": on})),
        user_metadata: None,
        now: 0,
    };
    w.store.update_metadata(&suspend(true)).await.unwrap();
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await;
    assert_eq!(
        error_of(&r),
        (
            401,
            r#"{"error":"unauthorized","error_description":"Your account is suspended."}"#.into()
        )
    );
    w.store.update_metadata(&suspend(false)).await.unwrap();
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    w.gw.shutdown().await;
}

/// On refresh, what the scripts write is stored in the rotating transaction:
/// a write that fails answers 500 and leaves the old token usable.
#[tokio::test]
async fn a_failed_metadata_write_on_refresh_leaves_the_token_usable() {
    let w = World::start(&[], &["actions/metadata-and-cache.js"], "2s").await;
    let j = w.login("ann", "offline_access").await.json();
    let rt = j["refresh_token"].as_str().unwrap().to_string();
    let protocol = || async {
        w.store
            .find_login(REALM, "ann")
            .await
            .unwrap()
            .unwrap()
            .user_metadata["last_protocol"]
            .clone()
    };
    assert_eq!(protocol().await, "oauth2-password");
    let db = rusqlite::Connection::open(w.gw.dir.path().join("passgate.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_metadata BEFORE UPDATE OF user_metadata ON users \
         BEGIN SELECT RAISE(ABORT, 'metadata writes refused'); END",
    )
    .unwrap();
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await;
    assert_eq!(error_of(&r), (500, GENERIC_500.into()));
    assert_eq!(protocol().await, "oauth2-password");

    // The token was not retired: once writes work, it is exchanged as if
    // the failed attempt had never happened (no reuse detection fires).
    db.execute_batch("DROP TRIGGER refuse_metadata").unwrap();
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let next = r.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, rt);
    assert_eq!(protocol().await, "oauth2-refresh-token");
    let r = w
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &next)])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    w.gw.shutdown().await;
}

const GENERIC_500: &str = r#"{"error":"server_error","error_description":"internal error"}"#;

#[tokio::test]
async fn hostile_scripts_fail_their_own_login_only() {
    for action in [
        "actions/endless-loop.js",
        "actions/allocation-bomb.js",
        "actions/never-settles.js",
    ] {
        // Only the endless loop needs the clock; the others end on their own
        // (memory limit, empty job queue).
        let budget = if action.contains("loop") {
            "300ms"
        } else {
            "5s"
        };
        let w = World::start(&[], &[action], budget).await;
        let started = Instant::now();
        assert_eq!(
            error_of(&w.login("ann", "").await),
            (500, GENERIC_500.into()),
            "{action}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{action}");
        assert_eq!(w.gw.client(Proto::H2).get("/public/x").await.status, 200);
        w.gw.shutdown().await;
    }

    // Twenty endless-loop logins, with proxied traffic alongside; then the
    // pool still answers everyone else at once.
    let w = World::start(&[], &["actions/loop-for-mallory.js"], "200ms").await;
    let proxy = {
        let c = w.gw.client(Proto::H2);
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for _ in 0..40 {
                let t = Instant::now();
                assert_eq!(c.get("/public/during").await.status, 200);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            worst
        })
    };
    let mut logins = Vec::new();
    for _ in 0..20 {
        logins.push(w.login("mallory", ""));
    }
    for r in futures_util::future::join_all(logins).await {
        assert_eq!(error_of(&r), (500, GENERIC_500.into()));
    }
    let worst = proxy.await.unwrap();
    assert!(
        worst < Duration::from_secs(1),
        "proxied request took {worst:?}"
    );
    for _ in 0..5 {
        let r = w.login("ann", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            claims(r.json()["access_token"].as_str().unwrap())["https://example.com/trivial"],
            true
        );
    }
    assert!(!w.upstream.requests().is_empty());
    w.gw.shutdown().await;
}

#[tokio::test]
async fn a_script_that_does_not_compile_stops_the_start() {
    for (rules, actions, want) in [
        (vec!["rules/syntax-error.js"], vec![], "rules[0].script: "),
        (
            vec![],
            vec!["actions/require-top.js"],
            "actions[0].script: ",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = TestGateway::builder()
            .toml(BASE)
            .toml(&scripts_toml(&rules, &actions, "1s"))
            .config_text(dir.path().to_str().unwrap());
        let config = passgate::config::Config::from_toml(&text).unwrap();
        let err = match passgate::Gateway::new(config).await {
            Ok(_) => panic!("a broken script must stop the start"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(want), "{err}");
        let file = fixture(rules.first().or(actions.first()).unwrap());
        assert!(err.contains(&file), "{err}");
        if rules.is_empty() {
            assert!(err.contains("require('axios') is not supported"), "{err}");
        } else {
            assert!(err.contains(&format!("{file}:2:")), "{err}");
        }
    }
}

#[tokio::test]
async fn scripts_see_the_request_without_secrets_and_rules_may_replace_scopes() {
    let w = World::start(
        &["rules/replace-scope.js"],
        &["actions/echo-request.js"],
        "2s",
    )
    .await;
    let r = w
        .token(&[
            (
                "grant_type",
                "http://auth0.com/oauth/grant-type/password-realm",
            ),
            ("username", "ann"),
            ("password", PASSWORD),
            ("realm", REALM),
            ("scope", "openid read:items write:items"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["scope"], "openid read:items");
    let seen = &claims(j["access_token"].as_str().unwrap())["https://example.com/seen"];
    assert_eq!(seen["ip"], "127.0.0.1");
    assert_eq!(seen["user_agent"], "extensibility-test/1");
    // The test client sends Host: 127.0.0.1:<port>; the port is not part of hostname.
    assert_eq!(seen["hostname"], "127.0.0.1");
    assert_eq!(
        seen["body_keys"],
        json!(["client_id", "grant_type", "realm", "scope", "username"])
    );
    assert_eq!(seen["protocol"], "oauth2-password");
    assert_eq!(
        seen["requested_scopes"],
        json!(["openid", "read:items", "write:items"])
    );
    assert_eq!(seen["audience"], "https://api.example.com");
    assert_eq!(
        seen["connection"],
        json!({"name": REALM, "strategy": "auth0"})
    );
    assert_eq!(seen["client_id"], "app");
    assert_eq!(seen["methods"], json!(["pwd"]));
    assert_eq!(seen["user_id_prefix"], "auth0");
    assert_eq!(seen["email"], "ann@example.com");
    w.gw.shutdown().await;
}
