//! The target side's bookkeeping: what the PostgreSQL database holds before
//! a copy (so a database with other data is refused), and the copy record,
//! table `passgate_copy`, one row per source: how far each table got, the
//! `seq` offset each ordered table was given, whether the copy completed.
//! The record is updated in the same transaction as each batch, so a rerun
//! after an interruption resumes exactly after the last committed batch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::errors::pg;
use super::CopyError;
use super::tables::TABLES;

/// The copy record's table; made by the copy, not by the migrations: it
/// only matters to `passgate store copy`.
const RECORD_TABLE: &str = "CREATE TABLE IF NOT EXISTS passgate_copy (
        source TEXT PRIMARY KEY,
        forced BOOLEAN NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        completed_at TIMESTAMPTZ,
        progress JSONB NOT NULL DEFAULT '{}'
    )";

/// How far one table got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TableState {
    /// The last source `rowid` written (rows are read in `rowid` order).
    pub after: i64,
    /// Every row of the table was written.
    pub done: bool,
    /// Added to the source `rowid` to make the target's `seq` (ordered
    /// tables only; fixed the first time the table is copied, so a rerun
    /// writes the same `seq`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The record of one source's copy.
#[derive(Debug, Clone, Default)]
pub(super) struct Record {
    /// Per table.
    pub tables: BTreeMap<String, TableState>,
    /// Whether an earlier run completed.
    pub completed: bool,
}

/// What the target held before this run.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// `passgate_schema` exists.
    pub passgate_schema: bool,
    /// The copied tables that exist.
    pub tables: Vec<&'static str>,
    /// Rows per copied table that exists and is not empty.
    pub rows: Vec<(&'static str, i64)>,
    /// The record of this source, if any.
    pub record: Option<Record>,
    /// Other sources copied into this database.
    pub other_sources: Vec<String>,
}

async fn exists(client: &tokio_postgres::Client, name: &str) -> Result<bool, CopyError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(target)?;
    Ok(row.get(0))
}

fn target(e: tokio_postgres::Error) -> CopyError {
    CopyError::Target(pg(e))
}

/// Read what the target holds; writes nothing.
pub(super) async fn inspect(
    client: &tokio_postgres::Client,
    source: &str,
) -> Result<Found, CopyError> {
    let mut found = Found {
        passgate_schema: exists(client, "passgate_schema").await?,
        ..Found::default()
    };
    for t in TABLES {
        if exists(client, t.name).await? {
            found.tables.push(t.name);
            let sql = format!("SELECT COUNT(*) FROM {}", t.name);
            let n: i64 = client.query_one(&sql, &[]).await.map_err(target)?.get(0);
            if n > 0 {
                found.rows.push((t.name, n));
            }
        }
    }
    if exists(client, "passgate_copy").await? {
        for row in client
            .query(
                "SELECT source, progress, completed_at IS NOT NULL FROM passgate_copy ORDER BY source",
                &[],
            )
            .await
            .map_err(target)?
        {
            let name: String = row.get(0);
            if name != source {
                found.other_sources.push(name);
                continue;
            }
            let progress: serde_json::Value = row.get(1);
            let tables = serde_json::from_value(progress).map_err(|e| CopyError::Record {
                why: e.to_string(),
            })?;
            found.record = Some(Record {
                tables,
                completed: row.get(2),
            });
        }
    }
    Ok(found)
}

/// Make the record table and this source's row (a new pass when an earlier
/// one completed: the tables start over, their offsets stay).
pub(super) async fn begin(
    client: &tokio_postgres::Client,
    source: &str,
    forced: bool,
    record: Option<Record>,
) -> Result<Record, CopyError> {
    client.batch_execute(RECORD_TABLE).await.map_err(target)?;
    let mut record = record.unwrap_or_default();
    if record.completed {
        for state in record.tables.values_mut() {
            state.after = 0;
            state.done = false;
        }
        record.completed = false;
    }
    let progress = progress_json(&record)?;
    client
        .execute(
            "INSERT INTO passgate_copy (source, forced, progress) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET progress = EXCLUDED.progress, completed_at = NULL",
            &[&source, &forced, &progress],
        )
        .await
        .map_err(target)?;
    Ok(record)
}

fn progress_json(record: &Record) -> Result<serde_json::Value, CopyError> {
    serde_json::to_value(&record.tables).map_err(|e| CopyError::Record { why: e.to_string() })
}

/// Write `record`'s progress, inside the caller's transaction.
pub(super) async fn save(
    tx: &deadpool_postgres::Transaction<'_>,
    source: &str,
    record: &Record,
) -> Result<(), CopyError> {
    let progress = progress_json(record)?;
    tx.execute(
        "UPDATE passgate_copy SET progress = $2 WHERE source = $1",
        &[&source, &progress],
    )
    .await
    .map_err(target)?;
    Ok(())
}

/// Mark the copy of `source` complete.
pub(super) async fn complete(
    client: &tokio_postgres::Client,
    source: &str,
) -> Result<(), CopyError> {
    client
        .execute(
            "UPDATE passgate_copy SET completed_at = now() WHERE source = $1",
            &[&source],
        )
        .await
        .map_err(target)?;
    Ok(())
}

/// The largest `seq` of `table` in the target (0 when empty): the offset
/// its copied rows get, so they sort after rows already there.
pub(super) async fn max_seq(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<i64, CopyError> {
    let sql = format!("SELECT COALESCE(MAX(seq), 0) FROM {table}");
    Ok(tx.query_one(&sql, &[]).await.map_err(target)?.get(0))
}

/// Move `table`'s `seq` sequence to at least `at`, so the next row an
/// instance writes sorts after every copied one and never takes a copied
/// row's `seq`. Never moves it back.
pub(super) async fn advance_sequence(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    at: i64,
) -> Result<(), CopyError> {
    tx.execute(
        "SELECT setval(s, GREATEST($2::bigint, COALESCE(pg_sequence_last_value(s), 0), 1)) \
         FROM (SELECT pg_get_serial_sequence($1, 'seq')::regclass AS s) q",
        &[&table, &at],
    )
    .await
    .map_err(target)?;
    Ok(())
}

/// The foreign data `found` shows, as the refusal names it: `users 3, settings 2`.
pub(super) fn summary(found: &Found) -> String {
    let rows: Vec<String> = found.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let mut text = rows.join(", ");
    if !found.other_sources.is_empty() {
        text.push_str(&format!(
            "; copied earlier from {}",
            found.other_sources.join(", ")
        ));
    }
    text
}
