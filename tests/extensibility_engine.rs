//! The script engine on its own: real-world and hostile fixtures run through
//! the pool (`passgate::extensibility`), without a gateway. The end-to-end
//! cases through `/oauth/token` are in `tests/extensibility.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use passgate::config::{ExtensibilityConfig, ScriptConfig};
use passgate::extensibility::{
    self, Failure, LoginFacts, Protocol, Refusal, RequestFacts, ScriptError, Scripts, Verdict,
};
use serde_json::json;

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn script(key: &str, path: &str, values: &[(&str, &str)]) -> ScriptConfig {
    ScriptConfig {
        name: path.to_string(),
        script: fixture(path),
        key: key.to_string(),
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn config(rules: &[&str], actions: &[&str]) -> ExtensibilityConfig {
    ExtensibilityConfig {
        timeout: Duration::from_secs(2),
        memory_limit: 16 << 20,
        workers: 1,
        queue: 8,
        rules: rules
            .iter()
            .enumerate()
            .map(|(i, p)| {
                script(
                    &format!("rules[{i}]"),
                    p,
                    &[("ROLES_NAMESPACE", "https://example.com/")],
                )
            })
            .collect(),
        actions: actions
            .iter()
            .enumerate()
            .map(|(i, p)| script(&format!("actions[{i}]"), p, &[("API_KEY", "sk_live_123")]))
            .collect(),
    }
}

fn facts(email: &str, app_metadata: serde_json::Value) -> LoginFacts {
    LoginFacts {
        user: json!({
            "user_id": "auth0|abc", "email": email, "username": "ann",
            "app_metadata": app_metadata, "user_metadata": {},
        }),
        client: json!({"client_id": "demo-app", "name": "Demo", "metadata": {}}),
        connection: json!({"name": "Username-Password-Authentication", "strategy": "auth0"}),
        request: RequestFacts {
            ip: "127.0.0.1".into(),
            ..RequestFacts::default()
        },
        protocol: Protocol::Password,
        requested_scopes: vec![],
        scopes: vec![
            "openid".into(),
            "offline_access".into(),
            "read:items".into(),
            "write:items".into(),
        ],
        audience: "https://api.example.com".into(),
        logins_count: 3,
        methods: vec![json!({"name": "pwd"})],
    }
}

fn api_scopes() -> Vec<String> {
    vec!["read:items".into(), "write:items".into()]
}

async fn run(rules: &[&str], actions: &[&str], f: &LoginFacts) -> Result<Verdict, ScriptError> {
    let scripts = Scripts::start(&config(rules, actions))
        .map_err(|e| panic!("start: {e:?}"))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no scripts"));
    scripts.run(f, &api_scopes()).await
}

fn changes(v: Result<Verdict, ScriptError>) -> extensibility::Changes {
    match v {
        Ok(Verdict::Continue(c)) => c,
        other => panic!("expected the login to go on, got {other:?}"),
    }
}

#[tokio::test]
async fn roles_configuration_and_async_action_become_claims() {
    let c = changes(
        run(
            &["rules/add-roles.js"],
            &["actions/plan-claim.js"],
            &facts(
                "ann@example.com",
                json!({"roles": ["editor"], "plan": "gold"}),
            ),
        )
        .await,
    );
    assert_eq!(
        c.access_claims["https://example.com/roles"],
        json!(["editor"])
    );
    assert_eq!(c.id_claims["https://example.com/roles"], json!(["editor"]));
    assert_eq!(c.access_claims["https://example.com/plan"], json!("gold"));
    assert_eq!(
        c.access_claims["https://example.com/key_prefix"],
        json!("sk_")
    );
    assert_eq!(
        c.access_claims["https://example.com/protocol"],
        json!("oauth2-password")
    );
}

#[tokio::test]
async fn denials_carry_auth0s_codes() {
    let contractor = facts("bob@contractor.example", json!({}));
    assert_eq!(
        run(&["rules/deny-domain.js"], &[], &contractor).await,
        Ok(Verdict::Refused(Refusal::Unauthorized(
            "Access denied for contractor.example accounts.".into()
        )))
    );
    assert_eq!(
        run(&[], &["actions/deny-contractors.js"], &contractor).await,
        Ok(Verdict::Refused(Refusal::AccessDenied(
            "Contractors may not use Demo.".into()
        )))
    );
    let ann = facts("ann@example.com", json!({}));
    assert_eq!(
        run(&["rules/error-callback.js"], &[], &ann).await,
        Ok(Verdict::Refused(Refusal::AccessDenied(
            "Your account is under review.".into()
        )))
    );
    assert_eq!(
        run(&["rules/string-callback.js"], &[], &ann).await,
        Ok(Verdict::Refused(Refusal::AccessDenied(
            "no logins on Sundays".into()
        )))
    );
    assert_eq!(
        run(&[], &["actions/throws.js"], &ann).await,
        Ok(Verdict::Refused(Refusal::AccessDenied(
            "lookup failed: upstream said 500".into()
        )))
    );
    assert!(matches!(
        run(&[], &["actions/require-inside.js"], &ann).await,
        Ok(Verdict::Refused(Refusal::AccessDenied(m))) if m.contains("require('fs') is not supported")
    ));
    for redirect in [
        run(&["rules/redirect.js"], &[], &ann).await,
        run(&[], &["actions/redirect.js"], &ann).await,
    ] {
        assert_eq!(redirect, Ok(Verdict::Refused(Refusal::Redirect)));
    }
    // A denying rule stops the chain: the action after it never runs.
    assert!(matches!(
        run(
            &["rules/deny-domain.js"],
            &["actions/throws.js"],
            &contractor
        )
        .await,
        Ok(Verdict::Refused(Refusal::Unauthorized(_)))
    ));
}

#[tokio::test]
async fn metadata_scopes_mfa_and_restricted_claims() {
    let c = changes(
        run(
            &["rules/login-counter.js", "rules/mfa-for-admins.js"],
            &[
                "actions/narrow-scopes.js",
                "actions/fake-mfa-marker.js",
                "actions/metadata-and-cache.js",
            ],
            &facts(
                "ann@example.com",
                json!({"roles": ["admin"], "password_logins": 4}),
            ),
        )
        .await,
    );
    assert_eq!(
        c.app_metadata,
        Some(json!({"roles": ["admin"], "password_logins": 5}))
    );
    assert_eq!(
        c.user_metadata,
        Some(json!({"last_protocol": "oauth2-password"}))
    );
    assert_eq!(c.id_claims["https://example.com/password_logins"], json!(5));
    assert_eq!(c.mfa.as_deref(), Some("any"));
    assert_eq!(c.scopes, ["openid", "read:items"]);
    assert!(!c.access_claims.contains_key("amr"));
    assert!(!c.access_claims.contains_key("sid"));
    assert!(!c.id_claims.contains_key("amr"));
    assert_eq!(c.access_claims["https://example.com/checked"], json!(true));
    assert!(
        c.warnings.iter().any(|w| w.contains("admin:everything")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn the_sandbox_has_no_process_timers_or_network() {
    let c = changes(
        run(
            &[],
            &["actions/sandbox-probe.js"],
            &facts("a@example.com", json!({})),
        )
        .await,
    );
    assert_eq!(
        c.access_claims["https://example.com/reach"],
        json!({"process": "undefined", "setTimeout": "undefined", "fetch": "undefined", "XMLHttpRequest": "undefined"})
    );
}

#[tokio::test]
async fn runaway_scripts_fail_their_login_and_the_pool_stays_whole() {
    let f = facts("a@example.com", json!({}));
    // Only the endless loop needs the clock; the others end on their own
    // (memory limit, empty job queue), so a loaded machine cannot fake a pass.
    let budget = |hostile: &str| {
        let mut c = config(&[], &[hostile]);
        if hostile.contains("loop") {
            c.timeout = Duration::from_millis(300);
        }
        c
    };
    for (hostile, check) in [
        ("actions/endless-loop.js", "timeout"),
        ("actions/allocation-bomb.js", "resources"),
        ("actions/never-settles.js", "never"),
    ] {
        let scripts = Scripts::start(&budget(hostile))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no scripts"));
        let started = Instant::now();
        let got = scripts.run(&f, &api_scopes()).await;
        let ok = match (&got, check) {
            (Err(ScriptError::Failed(Failure::Timeout { script })), "timeout") => script == hostile,
            (Err(ScriptError::Failed(Failure::Resources { script, .. })), "resources") => {
                script == hostile
            }
            (Err(ScriptError::Failed(Failure::NeverSettled { script })), "never") => {
                script == hostile
            }
            _ => false,
        };
        assert!(ok, "{hostile}: {got:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{hostile} took {:?}",
            started.elapsed()
        );
    }
    // One pool, twenty endless loops, then the same runtimes still answer.
    let mut c = config(&[], &["actions/loop-for-mallory.js"]);
    c.timeout = Duration::from_millis(100);
    c.workers = 2;
    let scripts = Scripts::start(&c)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no scripts"));
    let mut mallory = facts("m@example.com", json!({}));
    mallory.user["username"] = json!("mallory");
    for _ in 0..20 {
        assert!(matches!(
            scripts.run(&mallory, &api_scopes()).await,
            Err(ScriptError::Failed(Failure::Timeout { .. }))
        ));
    }
    // Each runaway runtime was rebuilt (a worker may still be finishing its
    // last rebuild).
    let rebuilt = || {
        scripts
            .stats()
            .rebuilt
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let until = Instant::now() + Duration::from_secs(5);
    while rebuilt() < 20 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rebuilt(), 20);
    // The rebuilt runtimes answer. A login queued behind a worker's last
    // rebuild waits out of its own 100 ms, which on a busy machine can be all
    // of it: such a timeout is tried again, anything else fails the test.
    let until = Instant::now() + Duration::from_secs(10);
    let mut answered = 0;
    while answered < 4 {
        match scripts.run(&f, &api_scopes()).await {
            Err(ScriptError::Failed(Failure::Timeout { .. })) if Instant::now() < until => {}
            other => {
                let c = changes(other);
                assert_eq!(c.access_claims["https://example.com/trivial"], json!(true));
                answered += 1;
            }
        }
    }
    // Each worker's runtime stays small: the runaways' memory went with them.
    for m in &scripts.stats().memory {
        let bytes = m.load(std::sync::atomic::Ordering::Relaxed);
        assert!(bytes > 0 && bytes < 4 << 20, "runtime holds {bytes} bytes");
    }
    assert_eq!(
        scripts
            .stats()
            .ran
            .load(std::sync::atomic::Ordering::Relaxed),
        24
    );
}

#[tokio::test]
async fn global_is_kept_between_runs_of_a_rule() {
    let scripts = Scripts::start(&config(&["rules/global-counter.js"], &[]))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no scripts"));
    let f = facts("a@example.com", json!({}));
    let first = changes(scripts.run(&f, &api_scopes()).await);
    let second = changes(scripts.run(&f, &api_scopes()).await);
    assert_eq!(first.access_claims["https://example.com/runs"], json!(1));
    assert_eq!(second.access_claims["https://example.com/runs"], json!(2));
}

#[test]
fn compile_errors_name_the_key_file_line_and_column() {
    let problems = extensibility::check(&config(
        &["rules/add-roles.js", "rules/syntax-error.js"],
        &["actions/require-top.js"],
    ));
    assert_eq!(problems.len(), 2, "{problems:?}");
    let syntax = &problems[0];
    let file = fixture("rules/syntax-error.js").display().to_string();
    assert!(
        syntax.starts_with(&format!("rules[1].script: {file}:2:")),
        "{syntax}"
    );
    assert!(syntax.contains("SyntaxError"), "{syntax}");
    assert!(
        problems[1].starts_with("actions[0].script: ")
            && problems[1].contains("require('axios') is not supported"),
        "{}",
        problems[1]
    );
}
