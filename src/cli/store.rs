//! `passgate store copy`: move an embedded store into PostgreSQL, with a
//! progress bar (plain lines when stdout is not a terminal) and the counts
//! per table at the end. Part of the `passgate` binary; the copy itself is
//! `passgate::store::postgres::copy`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use passgate::config::{Config, PgSettings, StoreBackend};
use passgate::store::postgres::copy::{CopyOptions, CopyReport, Progress, copy_sqlite};

use super::ConfigArg;

#[derive(Subcommand)]
pub enum StoreAction {
    /// Copy an embedded (SQLite) store into a PostgreSQL database: every
    /// table, with a progress bar. Stop the passgate that uses the file
    /// first. Run again after an interruption: it resumes, and writes no
    /// row twice.
    Copy {
        /// The SQLite file (`[store] path` of the old config).
        #[arg(long)]
        from: PathBuf,
        /// The database, postgres://user@host:5432/db (`sslmode=require`
        /// encrypts). Without it: `[store] url` (or `url_env`) of the config,
        /// with its `tls_ca`.
        #[arg(long)]
        to: Option<String>,
        /// With --to: verify the server against this CA (verify-full).
        #[arg(long, requires = "to")]
        tls_ca: Option<PathBuf>,
        /// Copy even into a database that holds other data (rows whose keys
        /// exist on both sides keep the database's version).
        #[arg(long)]
        force: bool,
        /// Also move the signing keys of the config's `[issuer]
        /// signing_keys` folder into the database, sealed with the config's
        /// store key (the one every PostgreSQL instance must use), so tokens
        /// they signed stay valid and the newest keeps signing.
        #[arg(long)]
        with_signing_keys: bool,
    },
}

pub async fn store(action: StoreAction, arg: ConfigArg) -> Result<(), String> {
    match action {
        StoreAction::Copy {
            from,
            to,
            tls_ca,
            force,
            with_signing_keys,
        } => {
            let settings = target(to.as_deref(), tls_ca, &arg)?;
            let options = CopyOptions {
                force,
                ..CopyOptions::default()
            };
            line(format_args!(
                "copying {} into {}",
                from.display(),
                settings.redacted_url
            ));
            let mut progress = Shown::new();
            let report = copy_sqlite(&from, &settings, &options, &mut progress)
                .await
                .map_err(|e| format!("store copy: {}: {e}", settings.redacted_url))?;
            print_report(&report);
            match with_signing_keys {
                true => move_signing_keys(&arg, &settings).await,
                false => {
                    line(format_args!(
                        "signing keys are not in the SQLite file: add --with-signing-keys to move the [issuer] signing_keys folder too"
                    ));
                    Ok(())
                }
            }
        }
    }
}

/// Seal the keys of the config's `[issuer] signing_keys` folder with its
/// store key and add those the database lacks. Keys keep their `kid`,
/// creation and start times, so the newest signs on PostgreSQL as it did.
async fn move_signing_keys(arg: &ConfigArg, settings: &PgSettings) -> Result<(), String> {
    use std::sync::Arc;

    use passgate::tokens::folder::FolderKeys;
    use passgate::tokens::key_source::KeySource;
    use passgate::tokens::stored::StoreKeys;

    let config = Config::load(&arg.config)
        .map_err(|e| format!("--with-signing-keys: {}: {e}", arg.config.display()))?;
    let issuer = config.issuer.as_ref().ok_or_else(|| {
        format!(
            "--with-signing-keys: {} has no [issuer] section, so no signing keys",
            arg.config.display()
        )
    })?;
    let folder = FolderKeys::new(issuer.signing_keys.clone());
    let keys = folder
        .signing_keys()
        .await
        .map_err(|e| format!("--with-signing-keys: {}: {e}", folder.describe()))?;
    if keys.is_empty() {
        line(format_args!(
            "signing keys: {} holds none",
            folder.describe()
        ));
        return Ok(());
    }
    let seal = passgate::store::seal::StoreKey::load(&config.store.encryption_key)
        .map_err(|e| format!("--with-signing-keys: the store key: {e}"))?;
    let store = passgate::store::PgStore::connect(settings)
        .await
        .map_err(|e| format!("--with-signing-keys: {}: {e}", settings.redacted_url))?;
    let target = StoreKeys::new(Arc::new(store), Arc::new(seal));
    let held: Vec<String> = target
        .signing_keys()
        .await
        .map_err(|e| format!("--with-signing-keys: reading the database's keys: {e}"))?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    let (mut moved, mut there) = (0, 0);
    for key in keys {
        if held.contains(&key.kid) {
            there += 1;
            continue;
        }
        let kid = key.kid.clone();
        target
            .add_signing_key(key)
            .await
            .map_err(|e| format!("--with-signing-keys: key {kid}: {e}"))?;
        moved += 1;
    }
    line(format_args!(
        "signing keys: {moved} moved from {}, {there} already there",
        folder.describe()
    ));
    Ok(())
}

/// The database to copy into: `--to`, else the config's `[store] url`.
fn target(
    to: Option<&str>,
    tls_ca: Option<PathBuf>,
    arg: &ConfigArg,
) -> Result<PgSettings, String> {
    if let Some(url) = to {
        let settings = PgSettings::from_url(url).map_err(|e| format!("--to: {e}"))?;
        return match tls_ca {
            Some(ca) => settings.with_tls_ca(ca).map_err(|e| format!("--to: {e}")),
            None => Ok(settings),
        };
    }
    let config = Config::load(&arg.config).map_err(|e| {
        format!(
            "no --to, and the config cannot be read: {}: {e}",
            arg.config.display()
        )
    })?;
    match config.store.backend {
        StoreBackend::Postgres(settings) => Ok(*settings),
        StoreBackend::Sqlite { .. } => Err(format!(
            "no --to, and {} names no PostgreSQL database ([store] url or url_env); give --to postgres://...",
            arg.config.display()
        )),
    }
}

/// Print a line; a closed stdout (`| head`) must not stop the copy half-way.
fn line(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn print_report(report: &CopyReport) {
    if report.resumed {
        line(format_args!(
            "resumed an interrupted copy of {}",
            report.source
        ));
    }
    line(format_args!(
        "{:<20} {:>10} {:>10} {:>14}",
        "table", "rows", "copied", "already there"
    ));
    for t in &report.tables {
        line(format_args!(
            "{:<20} {:>10} {:>10} {:>14}",
            t.table, t.rows, t.copied, t.already_there
        ));
    }
    line(format_args!("copy complete"));
}

/// A bar on a terminal, a line per table otherwise.
enum Shown {
    Bar(ProgressBar),
    Lines { table: Option<String>, rows: u64 },
}

impl Shown {
    fn new() -> Self {
        if !std::io::stdout().is_terminal() {
            return Shown::Lines {
                table: None,
                rows: 0,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
        if let Ok(style) =
            ProgressStyle::with_template("{msg:<20} [{bar:40}] {pos}/{len} rows ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Shown::Bar(bar)
    }

    /// The line of the table just finished.
    fn end_table(&mut self) {
        if let Shown::Lines { table, rows } = self
            && let Some(name) = table.take()
        {
            line(format_args!("{name}: {rows} rows read"));
            *rows = 0;
        }
    }
}

impl Progress for Shown {
    fn start(&mut self, rows: u64) {
        match self {
            Shown::Bar(bar) => bar.set_length(rows),
            Shown::Lines { .. } => line(format_args!("{rows} rows to read")),
        }
    }

    fn table(&mut self, name: &str) {
        self.end_table();
        match self {
            Shown::Bar(bar) => bar.set_message(name.to_string()),
            Shown::Lines { table, .. } => *table = Some(name.to_string()),
        }
    }

    fn advance(&mut self, n: u64) {
        match self {
            Shown::Bar(bar) => bar.inc(n),
            Shown::Lines { rows, .. } => *rows += n,
        }
    }

    fn finish(&mut self) {
        self.end_table();
        if let Shown::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
