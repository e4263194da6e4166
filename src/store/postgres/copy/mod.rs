//! `passgate store copy`: move an embedded (SQLite) store into PostgreSQL.
//!
//! The SQLite file is read directly and read-only ([`source`]); it must be
//! at the newest schema version. The PostgreSQL schema is brought up to date
//! first (its migrations, under their lock). Then every table is copied in
//! foreign-key order ([`tables::TABLES`]), in batches, each batch one
//! transaction of `INSERT ... ON CONFLICT DO NOTHING` that also records how
//! far the table got ([`ledger`]). So an interrupted copy, run again,
//! resumes after its last committed batch, and a copy run twice writes no
//! row twice. Rows are copied as stored: password hashes, metadata, and the
//! sealed MFA secrets (the PostgreSQL instances need the same
//! `encryption_key_file`).
//!
//! A target holding rows that did not come from this source (no copy record
//! for it) is refused unless forced: rows whose keys exist on both sides
//! would keep the target's version. Every refusal happens before anything
//! is written.

mod error;
mod ledger;
mod source;
mod tables;

use std::path::Path;

use tokio_postgres::types::ToSql;

use super::{LockSpace, PgStore, lock};
use crate::config::PgSettings;
pub use error::CopyError;
use ledger::{Found, Record};
use source::Source;
use tables::{TABLES, Table};

/// One copy at a time per database: the session advisory lock a copy holds
/// while it runs ("pgcopy" in ASCII).
pub const COPY_LOCK: i64 = 0x7067_636f_7079;

/// Rows per batch unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 500;

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy into a database that already holds other data (`--force`).
    pub force: bool,
    /// Rows per batch (one transaction each).
    pub batch_rows: usize,
    /// For tests: stop with [`CopyError::Interrupted`] once this many rows
    /// were written in this run, as if the command had been killed.
    pub stop_after_rows: Option<u64>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            force: false,
            batch_rows: DEFAULT_BATCH_ROWS,
            stop_after_rows: None,
        }
    }
}

/// What the copy did with one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Its rows in the source.
    pub rows: u64,
    /// Rows this run wrote.
    pub copied: u64,
    /// Rows this run did not write: there already (an earlier run wrote
    /// them, or the target had a row with the same key).
    pub already_there: u64,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// The source, as the copy record names it (its absolute path).
    pub source: String,
    /// This run continued an interrupted one.
    pub resumed: bool,
    /// Per table, in copy order.
    pub tables: Vec<TableCount>,
}

/// Told how the copy advances (a progress bar, or lines).
pub trait Progress {
    /// The copy starts; `rows` is how many it will read in all.
    fn start(&mut self, rows: u64);
    /// Now copying `table`.
    fn table(&mut self, table: &str);
    /// `rows` more rows were read and written (or found there).
    fn advance(&mut self, rows: u64);
    /// The copy ended, done or not.
    fn finish(&mut self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: u64) {}
    fn table(&mut self, _: &str) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Copy the SQLite store at `from` into the PostgreSQL database of `to`.
/// Run it with every passgate that uses `from` stopped: rows changed in the
/// file after they were copied are not copied again.
pub async fn copy_sqlite(
    from: &Path,
    to: &PgSettings,
    options: &CopyOptions,
    progress: &mut dyn Progress,
) -> Result<CopyReport, CopyError> {
    let source = Source::open(from)?;
    let store = PgStore::open(to).map_err(CopyError::Target)?;
    let done = locked(&source, &store, options, progress).await;
    progress.finish();
    store.close();
    done
}

/// Take the copy lock (or refuse), copy, let go of it.
async fn locked(
    source: &Source,
    store: &PgStore,
    options: &CopyOptions,
    progress: &mut dyn Progress,
) -> Result<CopyReport, CopyError> {
    let mut client = store.client().await.map_err(CopyError::Target)?;
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&COPY_LOCK])
        .await
        .map_err(|e| CopyError::Target(super::pg(e)))?
        .get(0);
    if !got {
        return Err(CopyError::Busy);
    }
    // A batch may take longer than a request's statement.
    let done = match client
        .batch_execute("SET statement_timeout = 0")
        .await
        .map_err(|e| CopyError::Target(super::pg(e)))
    {
        Ok(()) => copy(source, store, &mut client, options, progress).await,
        Err(e) => Err(e),
    };
    // Closing the connection ends the lock too, should this fail.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&COPY_LOCK])
        .await;
    done
}

/// Refuse a target that is not ours to write, then copy table by table.
async fn copy(
    source: &Source,
    store: &PgStore,
    client: &mut deadpool_postgres::Client,
    options: &CopyOptions,
    progress: &mut dyn Progress,
) -> Result<CopyReport, CopyError> {
    let found = ledger::inspect(client, source.identity()).await?;
    check_target(&found, options.force)?;
    store.migrate().await.map_err(CopyError::Target)?;
    let resumed = found.record.as_ref().is_some_and(|r| !r.completed);
    let forced = found.record.is_none() && !found.rows.is_empty();
    let mut record = ledger::begin(client, source.identity(), forced, found.record).await?;

    let mut remaining = 0;
    for t in TABLES {
        let state = record.tables.get(t.name).cloned().unwrap_or_default();
        if !state.done {
            remaining += source.count_after(t, state.after)?;
        }
    }
    progress.start(remaining);
    let mut run = Run {
        source,
        options,
        written: 0,
    };
    let mut counts = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        progress.table(t.name);
        let rows = source.count_after(t, 0)?;
        let copied = run.table(client, t, &mut record, progress).await?;
        counts.push(TableCount {
            table: t.name,
            rows,
            copied,
            already_there: rows.saturating_sub(copied),
        });
    }
    ledger::complete(client, source.identity()).await?;
    Ok(CopyReport {
        source: source.identity().to_string(),
        resumed,
        tables: counts,
    })
}

/// Refuse a target whose data is not this source's (unless `force`), and
/// one whose tables are not passgate's (always).
fn check_target(found: &Found, force: bool) -> Result<(), CopyError> {
    if !found.passgate_schema && !found.tables.is_empty() {
        return Err(CopyError::NotPassgate(found.tables.join(", ")));
    }
    if found.record.is_none() && !found.rows.is_empty() && !force {
        return Err(CopyError::ForeignData(ledger::summary(found)));
    }
    Ok(())
}

/// One run's state across tables.
struct Run<'a> {
    source: &'a Source,
    options: &'a CopyOptions,
    /// Rows written by this run, for [`CopyOptions::stop_after_rows`].
    written: u64,
}

impl Run<'_> {
    /// Copy what is left of `t`; the rows written.
    async fn table(
        &mut self,
        client: &mut deadpool_postgres::Client,
        t: &'static Table,
        record: &mut Record,
        progress: &mut dyn Progress,
    ) -> Result<u64, CopyError> {
        let mut state = record.tables.get(t.name).cloned().unwrap_or_default();
        if state.done {
            return Ok(0);
        }
        let source_id = self.source.identity();
        if t.seq {
            state.offset = Some(self.order(client, t, state.offset).await?);
            record.tables.insert(t.name.to_string(), state.clone());
        }
        let offset = state.offset.unwrap_or(0);
        let limit = t.batch_rows(self.options.batch_rows);
        let mut copied = 0;
        loop {
            let rows = self.source.batch(t, state.after, limit)?;
            let Some(last) = rows.last().map(|r| r.rowid) else {
                break;
            };
            let seqs: Vec<i64> = rows.iter().map(|r| r.rowid + offset).collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            for (row, seq) in rows.iter().zip(&seqs) {
                for cell in &row.cells {
                    params.push(cell);
                }
                if t.seq {
                    params.push(seq);
                }
            }
            let tx = client.transaction().await.map_err(target)?;
            if t.name == "revocations" {
                // As every writer of the log does: `seq` order is commit order.
                lock(&tx, LockSpace::Revocations, "")
                    .await
                    .map_err(CopyError::Target)?;
            }
            let stmt = tx.prepare_cached(&t.insert_sql(rows.len())).await;
            let written = tx
                .execute(&stmt.map_err(target)?, &params)
                .await
                .map_err(|e| insert_error(t, e))?;
            state.after = last;
            record.tables.insert(t.name.to_string(), state.clone());
            ledger::save(&tx, source_id, record).await?;
            tx.commit().await.map_err(target)?;
            copied += written;
            self.written += rows.len() as u64;
            progress.advance(rows.len() as u64);
            if let Some(stop) = self.options.stop_after_rows
                && self.written >= stop
            {
                return Err(CopyError::Interrupted(self.written));
            }
        }
        state.done = true;
        record.tables.insert(t.name.to_string(), state);
        let tx = client.transaction().await.map_err(target)?;
        ledger::save(&tx, source_id, record).await?;
        tx.commit().await.map_err(target)?;
        Ok(copied)
    }

    /// The offset of an ordered table's `seq` (the one recorded, else the
    /// target's largest `seq` now: 0 for an empty table, so the source's
    /// order numbers carry over as they are), with the table's sequence
    /// moved past every `seq` the copy will write.
    async fn order(
        &self,
        client: &mut deadpool_postgres::Client,
        t: &Table,
        recorded: Option<i64>,
    ) -> Result<i64, CopyError> {
        let tx = client.transaction().await.map_err(target)?;
        if t.name == "revocations" {
            lock(&tx, LockSpace::Revocations, "")
                .await
                .map_err(CopyError::Target)?;
        }
        let offset = match recorded {
            Some(o) => o,
            None => ledger::max_seq(&tx, t.name).await?,
        };
        let last = offset.saturating_add(self.source.max_rowid(t)?);
        ledger::advance_sequence(&tx, t.name, last).await?;
        tx.commit().await.map_err(target)?;
        Ok(offset)
    }
}

fn target(e: tokio_postgres::Error) -> CopyError {
    CopyError::Target(super::pg(e))
}

/// An insert's error, naming the table (a foreign key the source broke
/// names the missing row).
fn insert_error(t: &Table, e: tokio_postgres::Error) -> CopyError {
    CopyError::Insert {
        table: t.name,
        source: super::pg(e),
    }
}
