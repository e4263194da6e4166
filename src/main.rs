//! The `passgate` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the proxy path allocates small, short-lived buffers on every
/// request, across worker threads; glibc malloc showed up in the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use passgate::config::{CONFIG_ENV, Config, DEFAULT_CONFIG_PATH};

#[derive(Parser)]
#[command(
    name = "passgate",
    version,
    about = "A TLS gateway with a built-in OAuth 2.0 password grant"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file (default: $PASSGATE_CONFIG, else config/passgate.toml).
    #[arg(long, global = true, env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate the config and print every problem with its key path.
    CheckConfig(ConfigArg),
    /// Manage the users of a realm.
    Users {
        #[command(subcommand)]
        action: UsersAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Login sessions: list them, or end them (their access tokens are refused at once).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lift brute-force blocks of an identifier (from one IP, or from all).
    Unblock {
        /// The username or e-mail that was blocked.
        #[arg(long)]
        identifier: String,
        /// Only the block from this IP (IPv6: its /64).
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(clap::Args)]
struct UserArg {
    /// The realm (user directory).
    #[arg(long)]
    realm: String,
    /// The user's login name (or e-mail).
    #[arg(long)]
    username: String,
}

#[derive(Subcommand)]
enum UsersAction {
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
    /// Import users from an Auth0 bulk-import JSON file.
    Import {
        /// The realm to import into.
        #[arg(long)]
        realm: String,
        /// The JSON file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
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

#[derive(Subcommand)]
enum KeysAction {
    /// Make a new signing key; older keys stay published until their tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(arg) => serve(arg),
        Command::CheckConfig(arg) => match Config::load(&arg.config) {
            Ok(_) => {
                println!("{}: ok", arg.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}: {e}", arg.config.display());
                ExitCode::from(1)
            }
        },
        Command::Keys {
            action: KeysAction::Rotate,
            config,
        } => keys_rotate(config),
        Command::Sessions { action, config } => match sessions(action, config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Unblock {
            identifier,
            ip,
            config,
        } => match unblock(&identifier, ip, config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Users { action, config } => match users(action, config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
    }
}

fn unblock(identifier: &str, ip: Option<std::net::IpAddr>, arg: ConfigArg) -> Result<(), String> {
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let store = passgate::store::SqliteStore::open(&config.store.path)
        .map_err(|e| format!("store.path {}: {e}", config.store.path.display()))?;
    let cleared = passgate::protect::unblock(&store, identifier, ip, "admin")
        .map_err(|e| format!("unblock: {e}"))?;
    let from = ip.map_or_else(|| "every IP".to_string(), |ip| ip.to_string());
    println!("unblocked {identifier} from {from} ({cleared} block or failure count(s) cleared)");
    Ok(())
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(&arg.config).map_err(|e| {
        eprint!("{}: {e}", arg.config.display());
        ExitCode::from(1)
    })
}

fn serve(arg: ConfigArg) -> ExitCode {
    let config = match load(&arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log_guard = passgate::telemetry::init(&config.log);
    // This runtime runs start-up and the background tasks (key refresh,
    // sweeps, the admin listener); requests are served by the gateway's own
    // worker threads (`server.workers`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listen = config.server.listen;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("server.listen: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        let admin = match config.server.admin_listen {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Some((addr, l)),
                Err(e) => {
                    eprintln!("server.admin_listen: cannot listen on {addr}: {e}");
                    return ExitCode::from(1);
                }
            },
            None => None,
        };
        let gateway = match passgate::Gateway::new(config).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("cannot start: {e:#}");
                return ExitCode::from(1);
            }
        };
        let (stop_admin, admin_stop) = tokio::sync::watch::channel(false);
        if let Some((addr, l)) = admin {
            tracing::info!(%addr, "admin endpoints on http://{addr} (/healthz, /readyz, /metrics)");
            tokio::spawn(gateway.admin(l, admin_stop));
        }
        tracing::info!(%listen, "passgate listening on https://{listen}");
        gateway.serve(listener, passgate::shutdown_signal()).await;
        let _ = stop_admin.send(true);
        ExitCode::SUCCESS
    })
}

fn keys_rotate(arg: ConfigArg) -> ExitCode {
    let config = match load(&arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(issuer) = config.issuer else {
        eprintln!(
            "{}: there is no [issuer] section, so no signing keys",
            arg.config.display()
        );
        return ExitCode::from(1);
    };
    passgate::server::tls::install_crypto_providers();
    match passgate::tokens::keys::generate_into(&issuer.signing_keys, issuer.algorithm) {
        Ok(key) => {
            println!(
                "new signing key {} in {}; restart passgate to sign with it",
                key.kid,
                key.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keys rotate: {e:#}");
            ExitCode::from(1)
        }
    }
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

fn users(action: UsersAction, arg: ConfigArg) -> Result<(), String> {
    use passgate::identity::users::Admin;
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let realm = match &action {
        UsersAction::Add { user, .. } | UsersAction::SetPassword { user, .. } => &user.realm,
        UsersAction::Remove(u) | UsersAction::Block(u) | UsersAction::Unblock(u) => &u.realm,
        UsersAction::List { realm, .. } | UsersAction::Import { realm, .. } => realm,
    };
    if !config.realms.iter().any(|r| &r.name == realm) {
        return Err(format!(
            "realm \"{realm}\" is not in the config; add it as a [[realms]] entry"
        ));
    }
    let store = passgate::store::SqliteStore::open(&config.store.path)
        .map_err(|e| format!("store.path {}: {e}", config.store.path.display()))?;
    let pw = &config.passwords;
    let params = passgate::identity::password::HashParams {
        memory_kib: pw.memory_kib,
        iterations: pw.iterations,
        parallelism: pw.parallelism,
    };
    let hasher = passgate::identity::password::Hasher::new(params, 1).map_err(|e| e.to_string())?;
    let store = std::sync::Arc::new(store);
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
                .map_err(|e| e.to_string())?;
            println!("added {} ({}) to {}", user.username, u.user_id, user.realm);
        }
        UsersAction::List { realm, json } => {
            let list = admin.list(&realm).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{:<32} {:<24} {:<32} {:<7} {:>6}",
                    "user_id", "username", "email", "blocked", "logins"
                );
                for u in list {
                    println!(
                        "{:<32} {:<24} {:<32} {:<7} {:>6}",
                        u.user_id,
                        u.username.as_deref().unwrap_or("-"),
                        u.email.as_deref().unwrap_or("-"),
                        if u.blocked { "yes" } else { "no" },
                        u.logins_count
                    );
                }
            }
        }
        UsersAction::Remove(u) => {
            admin
                .remove(&u.realm, &u.username)
                .map_err(|e| e.to_string())?;
            println!("removed {} from {}", u.username, u.realm);
        }
        UsersAction::Block(u) => {
            admin
                .set_blocked(&u.realm, &u.username, true)
                .map_err(|e| e.to_string())?;
            println!("blocked {} in {}", u.username, u.realm);
        }
        UsersAction::Unblock(u) => {
            admin
                .set_blocked(&u.realm, &u.username, false)
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
                .map_err(|e| e.to_string())?;
            println!("password of {} in {} changed", user.username, user.realm);
        }
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

fn sessions(action: SessionsAction, arg: ConfigArg) -> Result<(), String> {
    use passgate::store::Store;
    use passgate::store::sessions::SessionStore;
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let store = passgate::store::SqliteStore::open(&config.store.path)
        .map_err(|e| format!("store.path {}: {e}", config.store.path.display()))?;
    let user_arg = match &action {
        SessionsAction::List { user, .. } | SessionsAction::Revoke { user, .. } => UserArg {
            realm: user.realm.clone(),
            username: user.username.clone(),
        },
    };
    let user = store
        .find_login(&user_arg.realm, &user_arg.username)
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
                .map_err(|e| e.to_string())?;
            if json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|s| {
                        serde_json::json!({"sid": s.sid, "client_id": s.client_id, "audience": s.audience,
                            "scope": s.scope, "created_at": s.created_at, "expires_at": s.expires_at,
                            "revoked_at": s.revoked_at, "refresh_token": s.has_refresh})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "{:<34} {:<20} {:<8} {:<8} {:>12}",
                    "sid", "client", "refresh", "revoked", "expires_at"
                );
                for s in list {
                    println!(
                        "{:<34} {:<20} {:<8} {:<8} {:>12}",
                        s.sid,
                        s.client_id,
                        if s.has_refresh { "yes" } else { "no" },
                        if s.revoked_at.is_some() { "yes" } else { "no" },
                        s.expires_at
                    );
                }
            }
        }
        SessionsAction::Revoke { sid: Some(sid), .. } => {
            let owned = store
                .list_sessions(&user.user_id, now)
                .map_err(|e| e.to_string())?
                .iter()
                .any(|s| s.sid == sid);
            if !owned {
                return Err(format!("{} has no live session {sid}", user_arg.username));
            }
            store.revoke_session(&sid, now).map_err(|e| e.to_string())?;
            println!("revoked session {sid}");
        }
        SessionsAction::Revoke { sid: None, .. } => {
            let ended = store
                .revoke_user_sessions(&user.user_id, now)
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
