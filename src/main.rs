//! The `passgate` command: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate the config and print every problem with its key path.
    CheckConfig(ConfigArg),
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        config: ConfigArg,
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
    }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        let gateway = match passgate::Gateway::new(config).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("cannot start: {e:#}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(%listen, "passgate listening on https://{listen}");
        gateway.serve(listener, passgate::shutdown_signal()).await;
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
