//! `passgate users mfa list|reset --realm R --username U`: a user's second
//! factors, and removing them all (the administrator's way back in for a user
//! who lost their device). Reset also clears the wrong-code count.

use clap::Subcommand;

use super::{Column, UserArg, print_listing, yes_no};

#[derive(Subcommand)]
pub enum MfaAction {
    /// List a user's authenticators.
    List {
        #[command(flatten)]
        user: UserArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove every authenticator of a user; their next login enrols again
    /// when the realm requires MFA.
    Reset(UserArg),
}

impl MfaAction {
    /// The realm the action is about.
    pub fn realm(&self) -> &str {
        match self {
            MfaAction::List { user, .. } | MfaAction::Reset(user) => &user.realm,
        }
    }
}

/// One authenticator, as listed.
#[derive(serde::Serialize)]
struct Row {
    id: String,
    kind: String,
    active: bool,
    created_at: i64,
}

pub async fn run(action: MfaAction, store: &dyn passgate::store::Backend) -> Result<(), String> {
    match action {
        MfaAction::List { user, json } => {
            let found = find(store, &user).await?;
            let list: Vec<Row> = store
                .authenticators(&found.user_id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|a| Row {
                    id: a.id,
                    kind: a.kind,
                    active: a.active,
                    created_at: a.created_at,
                })
                .collect();
            let rows = list
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.kind.clone(),
                        yes_no(r.active),
                        r.created_at.to_string(),
                    ]
                })
                .collect();
            let columns = [
                Column("id", 32),
                Column("kind", 14),
                Column("active", 6),
                Column("created_at", -12),
            ];
            print_listing(json, &list, &columns, rows)
        }
        MfaAction::Reset(user) => {
            let found = find(store, &user).await?;
            let n = store
                .reset_authenticators(&found.user_id)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "removed {n} authenticator(s) of {} in {}",
                user.username, user.realm
            );
            Ok(())
        }
    }
}

async fn find(
    store: &dyn passgate::store::Backend,
    u: &UserArg,
) -> Result<passgate::store::User, String> {
    store
        .find_login(&u.realm, &u.username)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user {} in {}", u.username, u.realm))
}
