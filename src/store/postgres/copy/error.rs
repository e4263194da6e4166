//! Why `passgate store copy` refused or stopped: each variant names the
//! file or the table, and keeps the database's or SQLite's error as its cause.

use crate::store::StoreError;

/// Why a copy was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source file is not there.
    #[error("{path}: no such file")]
    MissingSource {
        /// The file.
        path: String,
    },
    /// The source's path could not be resolved.
    #[error("{path}: {source}")]
    SourceIo {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The source is not a passgate store.
    #[error("{path} is not a passgate store: {why}")]
    NotAStore {
        /// The file.
        path: String,
        /// What gave it away.
        why: String,
    },
    /// Reading the source failed.
    #[error("{path}: {source}")]
    Source {
        /// The file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The source's schema is older than this passgate's.
    #[error(
        "{path} has schema version {found}, older than this passgate's ({known}); bring it up to date first: \
         `passgate migrate` with a config whose [store] path is this file"
    )]
    OldSource {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The source's schema is newer than this passgate knows.
    #[error(
        "{path} has schema version {found}, newer than this passgate knows ({known}); use the passgate that wrote it"
    )]
    NewerSource {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A source value does not fit its column.
    #[error("{table}: row {rowid}: {column}: {why}")]
    BadValue {
        /// The table.
        table: &'static str,
        /// The row's SQLite rowid.
        rowid: i64,
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The target failed, or cannot be reached (the store's text says which).
    #[error("{0}")]
    Target(#[source] StoreError),
    /// Writing a batch of a table failed.
    #[error("{table}: {source}")]
    Insert {
        /// The table.
        table: &'static str,
        /// The database's error.
        #[source]
        source: StoreError,
    },
    /// The target's tables are not passgate's.
    #[error(
        "the database has tables named like passgate's ({0}) but no passgate schema; use another database"
    )]
    NotPassgate(String),
    /// The target holds data that did not come from this source.
    #[error(
        "the database already holds data that did not come from this file ({0}); copying would merge the \
         two, and where a key exists on both sides the database's row stays. Use an empty database, or \
         --force to merge"
    )]
    ForeignData(String),
    /// Another copy into the same database is running.
    #[error("another `passgate store copy` is writing to this database; wait for it to end")]
    Busy,
    /// The copy record in the target cannot be read.
    #[error("the copy record (table passgate_copy) cannot be read: {why}")]
    Record {
        /// What is wrong.
        why: String,
    },
    /// Stopped by [`CopyOptions::stop_after_rows`].
    #[error("stopped after {0} rows, as asked")]
    Interrupted(u64),
}
