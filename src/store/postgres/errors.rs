//! PostgreSQL's errors as [`StoreError`]s: a unique violation is a
//! `Conflict` (as in SQLite), a database that cannot be reached now is
//! `Unavailable` (the token endpoint answers 503 and the caller may retry),
//! anything else is `Postgres` with the server's message.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use super::super::StoreError;

/// Why the database cannot be reached now.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The connection failed, was lost or timed out, or the server is not
    /// taking work (shutting down, in recovery, read-only, out of resources).
    #[error("{}", describe(.0))]
    Database(#[source] tokio_postgres::Error),
    /// No pooled connection came free, or none could be opened, in time.
    #[error("{0}")]
    Pool(#[source] PoolError),
    /// A dedicated connection was not open within the connect timeout.
    #[error("no connection within {0:?}")]
    Timeout(std::time::Duration),
    /// A recent attempt found it down (this one was not tried).
    #[error("{0}")]
    Down(String),
}

impl Unreachable {
    /// Whether this says the database is down (rather than busy: every
    /// pooled connection in use), so calls should not wait on it for a while.
    pub(super) fn means_down(&self) -> bool {
        match self {
            Unreachable::Pool(PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => false,
            Unreachable::Down(_) => false,
            Unreachable::Database(_) | Unreachable::Pool(_) | Unreachable::Timeout(_) => true,
        }
    }
}

/// The error's text with its cause: tokio-postgres shows a server error
/// as just "db error", and the server's message is the cause.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// SQLSTATEs that mean "not now" rather than "not this".
fn unavailable_state(code: &SqlState) -> bool {
    let class = code.code().get(..2);
    // 08: connection exception; 53: insufficient resources (disk, memory,
    // connections); 57P0x: shutting down or starting up.
    matches!(class, Some("08" | "53"))
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            // A standby after a fail-over answers writes with this.
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code)
}

/// True when `e` means the database cannot be reached now.
pub(super) fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        return unavailable_state(code);
    }
    if e.is_closed() {
        return true;
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    // A connect timeout carries no cause; its kind is private, its text is not.
    let text = e.to_string();
    text.starts_with("timeout waiting for server") || text.starts_with("error connecting to server")
}

/// A tokio-postgres error as a store error.
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error()
        && *db.code() == SqlState::UNIQUE_VIOLATION
    {
        return StoreError::Conflict(db.message().to_string());
    }
    if is_unavailable(&e) {
        return StoreError::Unavailable(Unreachable::Database(e));
    }
    StoreError::Postgres(e)
}

/// A pool checkout's error as a store error.
pub(super) fn pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg(e),
        PoolError::Timeout(_) => StoreError::Unavailable(Unreachable::Pool(e)),
        PoolError::PostCreateHook(_) | PoolError::Closed | PoolError::NoRuntimeSpecified => {
            StoreError::Pool(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_now_is_told_from_not_this() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::QUERY_CANCELED,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ] {
            assert!(unavailable_state(&code), "{code:?}");
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_TABLE,
            SqlState::INVALID_PASSWORD,
            SqlState::T_R_DEADLOCK_DETECTED,
        ] {
            assert!(!unavailable_state(&code), "{code:?}");
        }
    }
}
