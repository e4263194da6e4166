//! The SQLite side of a copy: the file opened read-only, checked to be a
//! passgate store at the newest schema version, and read table by table in
//! `rowid` order, a batch at a time, inside one read transaction (one
//! consistent snapshot for the whole run, even if something still writes).
//!
//! Reads are short and synchronous; the copy is a one-off command, so they
//! run on the command's thread between its PostgreSQL round trips.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use super::CopyError;
use super::tables::{Cell, TABLES, Table};
use crate::store::migrations::MIGRATIONS;

/// One source row: its `rowid` and its cells in [`Table::columns`] order.
pub(super) struct Row {
    pub rowid: i64,
    pub cells: Vec<Cell>,
}

/// An open, checked SQLite store.
pub(super) struct Source {
    conn: Connection,
    path: PathBuf,
    identity: String,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("path", &self.path).finish()
    }
}

impl Source {
    /// Open `path` read-only and check that it is a passgate store at the
    /// newest schema version; nothing is written to it.
    pub fn open(path: &Path) -> Result<Source, CopyError> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(CopyError::MissingSource { path: shown });
        }
        let identity = std::fs::canonicalize(path)
            .map_err(|source| CopyError::SourceIo {
                path: shown.clone(),
                source,
            })?
            .display()
            .to_string();
        let sqlite = |source| CopyError::Source {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        let version: i64 = match conn.pragma_query_value(None, "user_version", |r| r.get(0)) {
            Ok(v) => v,
            Err(e) if is_not_a_database(&e) => {
                return Err(CopyError::NotAStore {
                    path: shown,
                    why: "it is not an SQLite database".into(),
                });
            }
            Err(e) => return Err(sqlite(e)),
        };
        let known = MIGRATIONS.len() as i64;
        let tables = table_names(&conn).map_err(sqlite)?;
        if version == 0 || !tables.iter().any(|t| t == "users") {
            return Err(CopyError::NotAStore {
                path: shown,
                why: "it has no passgate schema".into(),
            });
        }
        if version < known {
            return Err(CopyError::OldSource {
                path: shown,
                found: version,
                known,
            });
        }
        if version > known {
            return Err(CopyError::NewerSource {
                path: shown,
                found: version,
                known,
            });
        }
        let unknown: Vec<&str> = tables
            .iter()
            .map(String::as_str)
            .filter(|t| !TABLES.iter().any(|k| k.name == *t))
            .collect();
        if !unknown.is_empty() {
            return Err(CopyError::NotAStore {
                path: shown,
                why: format!(
                    "it has tables this passgate does not know: {}",
                    unknown.join(", ")
                ),
            });
        }
        // One snapshot for every read of this run.
        conn.execute_batch("BEGIN DEFERRED").map_err(sqlite)?;
        Ok(Source {
            conn,
            path: path.to_path_buf(),
            identity,
        })
    }

    /// What names this source in the target's copy record: its absolute path.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn error(&self, source: rusqlite::Error) -> CopyError {
        CopyError::Source {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Rows of `table` with a `rowid` above `after`.
    pub fn count_after(&self, table: &Table, after: i64) -> Result<u64, CopyError> {
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) FROM {} WHERE rowid > ?1", table.name),
                params![after],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The largest `rowid` of `table` (0 when empty).
    pub fn max_rowid(&self, table: &Table) -> Result<i64, CopyError> {
        self.conn
            .query_row(
                &format!("SELECT COALESCE(MAX(rowid), 0) FROM {}", table.name),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))
    }

    /// Up to `limit` rows of `table` after `rowid` `after`, in `rowid` order.
    pub fn batch(&self, table: &Table, after: i64, limit: usize) -> Result<Vec<Row>, CopyError> {
        let cols: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            cols.join(", "),
            table.name
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let mut rows = stmt
            .query(params![after, limit as i64])
            .map_err(|e| self.error(e))?;
        let mut out = Vec::with_capacity(limit);
        while let Some(r) = rows.next().map_err(|e| self.error(e))? {
            let rowid: i64 = r.get(0).map_err(|e| self.error(e))?;
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, (column, kind)) in table.columns.iter().enumerate() {
                let value: rusqlite::types::Value = r.get(i + 1).map_err(|e| self.error(e))?;
                let cell = Cell::from_sqlite(*kind, value).map_err(|why| CopyError::BadValue {
                    table: table.name,
                    rowid,
                    column,
                    why,
                })?;
                cells.push(cell);
            }
            out.push(Row { rowid, cells });
        }
        Ok(out)
    }
}

/// The tables of the file (SQLite's own excluded).
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy names every table and column of the newest SQLite schema,
    /// so a new migration that forgets the copy fails here.
    #[test]
    fn every_table_and_column_of_the_newest_schema_is_copied() {
        let db = crate::store::SqliteDb::in_memory().unwrap_or_else(|e| panic!("{e}"));
        let conn = db.conn.lock().unwrap_or_else(|e| panic!("{e}"));
        let tables = table_names(&conn).unwrap_or_else(|e| panic!("{e}"));
        let mut copied: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        copied.sort_unstable();
        assert_eq!(tables, copied);
        for t in TABLES {
            let mut stmt = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{}')", t.name))
                .unwrap_or_else(|e| panic!("{e}"));
            let mut columns: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .unwrap_or_else(|e| panic!("{e}"));
            columns.sort_unstable();
            let mut named: Vec<String> = t.columns.iter().map(|(c, _)| c.to_string()).collect();
            if t.name == "revocations" {
                // Its INTEGER PRIMARY KEY is the rowid, copied as `seq`.
                named.push("seq".into());
            }
            named.sort_unstable();
            assert_eq!(columns, named, "{}", t.name);
        }
    }
}
