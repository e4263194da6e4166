//! `passgate users ...`: user administration from the command line. Part of
//! the `passgate` binary (`src/main.rs`), not of the library; the work itself
//! is `passgate::identity::users::Admin`.

use clap::Subcommand;
use passgate::config::Config;
use std::path::PathBuf;

use super::{Column, ConfigArg, UserArg, print_listing, yes_no};

#[derive(Subcommand)]
pub enum UsersAction {
    /// Add a user; asks for the password when stdin is a terminal.
    Add {
        #[command(flatten)]
        user: UserArg,
        /// The user's e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users of a realm.
    List {
        /// The realm.
        #[arg(long)]
        realm: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove(UserArg),
    /// Block a user: logins answer 401 `user is blocked`.
    Block(UserArg),
    /// Unblock a user.
    Unblock(UserArg),
    /// Set a user's password.
    SetPassword {
        #[command(flatten)]
        user: UserArg,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// A user's second factors: `mfa list`, `mfa reset`.
    Mfa {
        #[command(subcommand)]
        action: super::mfa::MfaAction,
    },
    /// Import users from an Auth0 bulk-import JSON file.
    Import {
        /// The realm to import into.
        #[arg(long)]
        realm: String,
        /// The JSON file.
        file: PathBuf,
    },
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "stdin is not a terminal: pass --password-stdin and write the password to stdin".into(),
        );
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
    if first != again {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

pub async fn users(action: UsersAction, arg: ConfigArg) -> Result<(), String> {
    use passgate::identity::users::Admin;
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let realm = match &action {
        UsersAction::Add { user, .. } | UsersAction::SetPassword { user, .. } => &user.realm,
        UsersAction::Remove(u) | UsersAction::Block(u) | UsersAction::Unblock(u) => &u.realm,
        UsersAction::List { realm, .. } | UsersAction::Import { realm, .. } => realm,
        UsersAction::Mfa { action } => action.realm(),
    };
    if !config.realms.iter().any(|r| r.name == realm) {
        return Err(format!(
            "realm \"{realm}\" is not in the config; add it as a [[realms]] entry"
        ));
    }
    let store = super::open_store(&config).await?;
    let pw = &config.passwords;
    let params = passgate::identity::password::HashParams {
        memory_kib: pw.memory_kib,
        iterations: pw.iterations,
        parallelism: pw.parallelism,
    };
    let hasher = passgate::identity::password::Hasher::new(params, 1).map_err(|e| e.to_string())?;
    let enrolled: std::collections::HashSet<String> = store
        .enrolled_users()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let backend = store.clone();
    let admin = Admin::new(store.clone(), hasher, passgate::clock::system())
        .with_protect(store.clone())
        .with_sessions(store);
    match action {
        UsersAction::Add {
            user,
            email,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let u = admin
                .add(&user.realm, &user.username, email.as_deref(), &password)
                .await
                .map_err(|e| e.to_string())?;
            println!("added {} ({}) to {}", user.username, u.user_id, user.realm);
        }
        UsersAction::List { realm, json } => {
            let list = admin.list(&realm).await.map_err(|e| e.to_string())?;
            let rows = list
                .iter()
                .map(|u| {
                    vec![
                        u.user_id.clone(),
                        u.username.clone().unwrap_or_else(|| "-".into()),
                        u.email.clone().unwrap_or_else(|| "-".into()),
                        yes_no(u.blocked),
                        yes_no(enrolled.contains(&u.user_id)),
                        u.logins_count.to_string(),
                    ]
                })
                .collect();
            let columns = [
                Column("user_id", 32),
                Column("username", 24),
                Column("email", 32),
                Column("blocked", 7),
                Column("mfa", 3),
                Column("logins", -6),
            ];
            print_listing(json, &list, &columns, rows)?;
        }
        UsersAction::Remove(u) => {
            admin
                .remove(&u.realm, &u.username)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed {} from {}", u.username, u.realm);
        }
        UsersAction::Block(u) => {
            admin
                .set_blocked(&u.realm, &u.username, true)
                .await
                .map_err(|e| e.to_string())?;
            println!("blocked {} in {}", u.username, u.realm);
        }
        UsersAction::Unblock(u) => {
            admin
                .set_blocked(&u.realm, &u.username, false)
                .await
                .map_err(|e| e.to_string())?;
            println!("unblocked {} in {}", u.username, u.realm);
        }
        UsersAction::SetPassword {
            user,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            admin
                .set_password(&user.realm, &user.username, &password)
                .await
                .map_err(|e| e.to_string())?;
            println!("password of {} in {} changed", user.username, user.realm);
        }
        UsersAction::Mfa { action } => super::mfa::run(action, backend.as_ref()).await?,
        UsersAction::Import { realm, file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let records = passgate::identity::import::parse(&text)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let bar = indicatif::ProgressBar::new(records.len() as u64);
            let now = admin.clock().now();
            let report = passgate::identity::import::import(
                admin.store().as_ref(),
                &realm,
                records,
                now,
                |n| bar.set_position(n as u64),
            )
            .await
            .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            for (index, why) in &report.skipped {
                eprintln!("record {index}: skipped: {why}");
            }
            println!(
                "imported {} user(s) into {realm}; skipped {}",
                report.imported,
                report.skipped.len()
            );
            if !report.skipped.is_empty() {
                return Err(format!(
                    "{} record(s) were not imported (listed above)",
                    report.skipped.len()
                ));
            }
        }
    }
    Ok(())
}
