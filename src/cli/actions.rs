//! `passgate actions try`: run one rule or action against a real user with a
//! synthetic request and print what it would decide: the verdict, claims and
//! scopes. No token is issued and nothing is written (metadata changes are
//! shown, not stored). Part of the `passgate` binary.

use std::path::PathBuf;

use clap::Subcommand;
use passgate::config::Config;
use passgate::extensibility::facts::{self, Protocol, RequestFacts};
use passgate::extensibility::{LoginFacts, Refusal, Verdict, trial};
use serde_json::{Value, json};

use super::ConfigArg;

#[derive(Subcommand)]
pub enum ActionsAction {
    /// Run one rule or action (told apart by `exports.onExecutePostLogin`)
    /// against a user and print the decision, claims and scopes.
    Try {
        /// The script file; when it is a configured one, its
        /// `configuration` or `secrets` apply.
        #[arg(long)]
        script: PathBuf,
        /// The realm of the user.
        #[arg(long)]
        realm: String,
        /// The user's login name (or e-mail).
        #[arg(long)]
        username: String,
        /// The client the login would go through.
        #[arg(long)]
        client: String,
        /// An extra secret or configuration value, `KEY=VALUE` (repeatable).
        #[arg(long = "secret", value_parser = key_value)]
        secrets: Vec<(String, String)>,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{s}\" is not KEY=VALUE"))
}

/// Run `passgate actions ...`.
pub async fn actions(action: ActionsAction, arg: ConfigArg) -> Result<(), String> {
    let ActionsAction::Try {
        script,
        realm,
        username,
        client,
        secrets,
    } = action;
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let client = config
        .clients
        .iter()
        .find(|c| c.id == client)
        .ok_or_else(|| format!("--client: no [[clients]] entry has the id \"{client}\""))?;
    if !config.realms.iter().any(|r| r.name == realm) {
        return Err(format!("--realm: no [[realms]] entry is named \"{realm}\""));
    }
    let api = config
        .issuer
        .as_ref()
        .and_then(|i| i.default_audience.as_ref())
        .and_then(|a| config.apis.iter().find(|x| &x.audience == a))
        .or(config.apis.first())
        .ok_or("the config has no [[apis]] entry to issue a token for")?;
    let store = super::open_store(&config).await?;
    let user = store
        .find_login(&realm, &username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("realm \"{realm}\" has no user \"{username}\""))?;
    let scopes =
        passgate::oauth::scopes::resolve(None, api).map_err(|e| format!("scopes: {e:?}"))?;
    let source = trial::script_for(&config.extensibility, &script, &secrets)?;
    let now = passgate::clock::Clock::now(&passgate::clock::SystemClock);
    let facts = LoginFacts {
        user: facts::user_view(&user),
        client: facts::client_view(&client.id, &client.name),
        connection: facts::connection_view(&realm),
        request: RequestFacts {
            ip: "127.0.0.1".into(),
            user_agent: "passgate actions try".into(),
            hostname: "localhost".into(),
            body: [
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("client_id", client.id.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        },
        protocol: Protocol::Password,
        requested_scopes: Vec::new(),
        scopes,
        audience: api.audience.clone(),
        logins_count: user.logins_count,
        methods: facts::password_method(now),
    };
    let verdict = trial::run_once(&config.extensibility, source, &facts, &api.scopes)
        .map_err(|e| format!("the script failed (a login would get 500 server_error): {e}"))?;
    let out = report(verdict);
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn report(verdict: Verdict) -> Value {
    match verdict {
        Verdict::Continue(c) => json!({
            "decision": if c.mfa.is_some() { "mfa_required" } else { "allow" },
            "scope": c.scopes.join(" "),
            "access_token_claims": c.access_claims,
            "id_token_claims": c.id_claims,
            "app_metadata": c.app_metadata,
            "user_metadata": c.user_metadata,
            "mfa": c.mfa,
            "warnings": c.warnings,
            "logs": c.logs,
        }),
        Verdict::Refused(r) => {
            let (status, error, description) = match r {
                Refusal::Unauthorized(m) => (401, "unauthorized", m),
                Refusal::AccessDenied(m) => (403, "access_denied", m),
                Refusal::Redirect => (
                    400,
                    "interaction_required",
                    "Redirects are not supported in the password exchange.".to_string(),
                ),
            };
            json!({
                "decision": "deny",
                "status": status,
                "error": error,
                "error_description": description,
            })
        }
    }
}
