//! `passgate sessions ...`: list and end a user's login sessions. Part of the
//! `passgate` binary (`src/main.rs`), not of the library.

use clap::Subcommand;
use passgate::config::Config;

use super::{Column, ConfigArg, UserArg, print_listing, yes_no};

#[derive(Subcommand)]
pub enum SessionsAction {
    /// List a user's live sessions.
    List {
        #[command(flatten)]
        user: UserArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a user's sessions (all of them, or one with --sid).
    Revoke {
        #[command(flatten)]
        user: UserArg,
        /// Only this session.
        #[arg(long)]
        sid: Option<String>,
    },
}

pub async fn sessions(action: SessionsAction, arg: ConfigArg) -> Result<(), String> {
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let store = super::open_store(&config).await?;
    let user_arg = match &action {
        SessionsAction::List { user, .. } | SessionsAction::Revoke { user, .. } => UserArg {
            realm: user.realm.clone(),
            username: user.username.clone(),
        },
    };
    let user = store
        .find_login(&user_arg.realm, &user_arg.username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no user \"{}\" in realm \"{}\"",
                user_arg.username, user_arg.realm
            )
        })?;
    let now = passgate::clock::Clock::now(&passgate::clock::SystemClock);
    match action {
        SessionsAction::List { json, .. } => {
            let list = store
                .list_sessions(&user.user_id, now)
                .await
                .map_err(|e| e.to_string())?;
            let as_json: Vec<serde_json::Value> = list
                .iter()
                .map(|s| {
                    serde_json::json!({"sid": s.sid, "client_id": s.client_id, "audience": s.audience,
                        "scope": s.scope, "created_at": s.created_at, "expires_at": s.expires_at,
                        "revoked_at": s.revoked_at, "refresh_token": s.has_refresh})
                })
                .collect();
            let rows = list
                .iter()
                .map(|s| {
                    vec![
                        s.sid.clone(),
                        s.client_id.clone(),
                        yes_no(s.has_refresh),
                        yes_no(s.revoked_at.is_some()),
                        s.expires_at.to_string(),
                    ]
                })
                .collect();
            let columns = [
                Column("sid", 34),
                Column("client", 20),
                Column("refresh", 8),
                Column("revoked", 8),
                Column("expires_at", -12),
            ];
            print_listing(json, &as_json, &columns, rows)?;
        }
        SessionsAction::Revoke { sid: Some(sid), .. } => {
            let owned = store
                .list_sessions(&user.user_id, now)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .any(|s| s.sid == sid);
            if !owned {
                return Err(format!("{} has no live session {sid}", user_arg.username));
            }
            store
                .revoke_session(&sid, now)
                .await
                .map_err(|e| e.to_string())?;
            println!("revoked session {sid}");
        }
        SessionsAction::Revoke { sid: None, .. } => {
            let ended = store
                .revoke_user_sessions(&user.user_id, now)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "revoked {} session(s) of {}",
                ended.len(),
                user_arg.username
            );
        }
    }
    Ok(())
}
