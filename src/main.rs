//! The `passgate` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the proxy path allocates small, short-lived buffers on every
/// request, across worker threads; glibc malloc showed up in the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use passgate::config::{CONFIG_ENV, Config, DEFAULT_CONFIG_PATH};
use passgate::telemetry::ErrorChain;

mod cli;
use cli::actions::{ActionsAction, actions};
use cli::keys::{KeysAction, keys};
use cli::sessions::{SessionsAction, sessions};
use cli::store::{StoreAction, store};
use cli::users::{UsersAction, users};

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
    /// Make the running `passgate serve` (the pid in `[server] pid_file`)
    /// re-read its config and TLS certificate, like `SIGHUP`.
    Reload(ConfigArg),
    /// Validate the config and print every problem with its key path.
    CheckConfig(ConfigArg),
    /// Bring the store's schema up to date and print its version; nothing
    /// else (`serve` does it too, at start).
    Migrate(ConfigArg),
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
        /// The username or e-mail that was blocked. Without it, `--ip` names an
        /// IP whose suspicious-IP throttle is lifted.
        #[arg(long, required_unless_present = "ip")]
        identifier: Option<String>,
        /// With --identifier: only the block from this IP (IPv6: its /64).
        /// Alone: lift this IP's suspicious-IP throttle.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Rules and Actions: try one against a user without issuing anything.
    Actions {
        #[command(subcommand)]
        action: ActionsAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The store itself: copy an embedded store into PostgreSQL.
    Store {
        #[command(subcommand)]
        action: StoreAction,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(arg) => serve(arg),
        Command::Reload(arg) => match cli::reload::reload(arg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::CheckConfig(arg) => match Config::load(&arg.config) {
            // The config is valid; now every script must compile.
            Ok(config) => match passgate::extensibility::check(&config.extensibility) {
                problems if problems.is_empty() => {
                    println!("{}: ok", arg.config.display());
                    ExitCode::SUCCESS
                }
                problems => {
                    eprint!(
                        "{}: {}",
                        arg.config.display(),
                        passgate::config::ConfigErrors(problems)
                    );
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprint!("{}: {e}", arg.config.display());
                ExitCode::from(1)
            }
        },
        Command::Migrate(arg) => match cli::block_on(migrate(arg)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Actions { action, config } => match cli::block_on(actions(action, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Keys { action, config } => match cli::block_on(keys(action, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Sessions { action, config } => match cli::block_on(sessions(action, config)) {
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
        } => match cli::block_on(unblock(identifier.as_deref(), ip, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Store { action, config } => match cli::block_on(store(action, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
        Command::Users { action, config } => match cli::block_on(users(action, config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(1)
            }
        },
    }
}

async fn migrate(arg: ConfigArg) -> Result<(), String> {
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let store = config.store.backend.describe();
    let done = passgate::store::migrate(&config.store)
        .await
        .map_err(|e| format!("{store}: {e}"))?;
    match done.from == done.to {
        true => println!("{store}: schema version {} (up to date)", done.to),
        false => println!("{store}: schema version {} (was {})", done.to, done.from),
    }
    Ok(())
}

async fn unblock(
    identifier: Option<&str>,
    ip: Option<std::net::IpAddr>,
    arg: ConfigArg,
) -> Result<(), String> {
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let store = cli::open_store(&config).await?;
    let Some(identifier) = identifier else {
        let ip = ip.ok_or("give --identifier, --ip, or both")?;
        let lifted = passgate::protect::unblock_ip(store.as_ref(), ip, "admin")
            .await
            .map_err(|e| format!("unblock: {e}"))?;
        match lifted {
            true => println!("lifted the suspicious-IP throttle of {ip}"),
            false => println!("{ip} was not throttled"),
        }
        return Ok(());
    };
    let cleared = passgate::protect::unblock(store.as_ref(), identifier, ip, "admin")
        .await
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
    let (_log_guard, log_drops) = passgate::telemetry::init_counted(&config.log);
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
        // SO_REUSEPORT where the system has it: each worker then accepts on a
        // socket of its own (server/listen.rs).
        let listener = match passgate::server::listen::bind(listen).await {
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
                eprintln!("cannot start: {}", ErrorChain(e.as_ref()));
                return ExitCode::from(1);
            }
        };
        gateway.app().metrics.set_log_drops(log_drops);
        // SIGHUP is ours before the pid file tells anyone where to send it.
        let (stop_reload, reload_stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.reloader(arg.config.clone()).on_sighup(async move {
            let _ = reload_stop.await;
        }));
        let _pid_file = match &gateway.config().server.pid_file {
            Some(path) => match cli::reload::PidFile::write(path) {
                Ok(f) => Some(f),
                Err(msg) => {
                    eprintln!("{msg}");
                    return ExitCode::from(1);
                }
            },
            None => None,
        };
        let (stop_admin, admin_stop) = tokio::sync::watch::channel(false);
        if let Some((addr, l)) = admin {
            let addr = l.local_addr().unwrap_or(addr);
            tracing::info!(%addr, "admin endpoints on http://{addr} (/, /status, /healthz, /readyz, /metrics)");
            tokio::spawn(gateway.admin(l, admin_stop));
        }
        // The bound address: with port 0 in the config, the one the system chose.
        let listen = listener.local_addr().unwrap_or(listen);
        tracing::info!(%listen, "passgate listening on https://{listen}");
        let served = gateway.serve(listener, passgate::shutdown_signal()).await;
        let _ = stop_admin.send(true);
        let _ = stop_reload.send(());
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot serve: {}", ErrorChain(e.as_ref()));
                ExitCode::from(1)
            }
        }
    })
}
