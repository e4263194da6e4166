//! Facts the store remembers once, for the life of the data: named integers
//! written by the first process that needs them and read by every later one.
//! The access-token type cut-over (`gate/typ.rs`) lives here, so a
//! restart can never open a new legacy window.

use rusqlite::{OptionalExtension, params};

use super::StoreError;
use super::sqlite::SqliteDb;

/// Schema of the settings table (migration 5).
pub const SCHEMA: &str = "CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );";

/// Named values written once.
#[async_trait::async_trait]
pub trait SettingsStore: Send + Sync + std::fmt::Debug {
    /// The value stored under `name`; when there is none yet, store `value`
    /// and return it. Concurrent first calls agree on one value.
    async fn remember_first(&self, name: &str, value: i64) -> Result<i64, StoreError>;
}

impl SqliteDb {
    pub(crate) fn remember_first(&self, name: &str, value: i64) -> Result<i64, StoreError> {
        self.in_tx(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
                params![name, value],
            )?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT value FROM settings WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(stored.unwrap_or(value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_stays() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.db");
        let s = SqliteDb::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.remember_first("a", 10).ok(), Some(10));
        assert_eq!(s.remember_first("a", 20).ok(), Some(10));
        assert_eq!(s.remember_first("b", 5).ok(), Some(5));
        drop(s);
        let s = SqliteDb::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.remember_first("a", 30).ok(),
            Some(10),
            "survives a reopen"
        );
    }
}
