//! The `users`, `sessions`, `actions`, `keys` and `store` commands of the `passgate` binary; `src/main.rs`
//! holds the command tree and the other commands.

pub mod actions;
pub mod keys;
pub mod mfa;
pub mod reload;
pub mod sessions;
pub mod store;
pub mod users;

/// The user a command acts on.
#[derive(clap::Args)]
pub struct UserArg {
    /// The realm (user directory).
    #[arg(long)]
    pub realm: String,
    /// The user's login name (or e-mail).
    #[arg(long)]
    pub username: String,
}

pub(crate) use super::ConfigArg;

/// Run a command's async body on a runtime of its own (commands are short;
/// one thread does).
pub fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(work)
}

/// Open the store the config names, for a command.
pub async fn open_store(
    config: &passgate::config::Config,
) -> Result<std::sync::Arc<dyn passgate::store::Backend>, String> {
    passgate::store::open(&config.store)
        .await
        .map_err(|e| format!("{}: {e}", config.store.backend.describe()))
}

/// One column of a text listing: header and width (negative: right-aligned).
pub struct Column(pub &'static str, pub isize);

/// Print a listing: `as_json` as pretty JSON when `json`, else a table of
/// `rows` (one text cell per column) under the `columns` headers.
pub fn print_listing<T: serde::Serialize + ?Sized>(
    json: bool,
    as_json: &T,
    columns: &[Column],
    rows: Vec<Vec<String>>,
) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(as_json).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    let line = |texts: Vec<String>| {
        let padded: Vec<String> = columns
            .iter()
            .zip(texts)
            .map(|(Column(_, width), text)| {
                let w = width.unsigned_abs();
                if *width < 0 {
                    format!("{text:>w$}")
                } else {
                    format!("{text:<w$}")
                }
            })
            .collect();
        padded.join(" ")
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.0.to_string()).collect())
    );
    for row in rows {
        println!("{}", line(row));
    }
    Ok(())
}

/// `yes` or `no`, as listings show a flag.
pub fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}
