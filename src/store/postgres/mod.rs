//! The PostgreSQL store: the same state as the SQLite file, shared by every
//! passgate instance that points at one database.
//!
//! Every read-then-write that SQLite makes atomic with its single writer is
//! atomic here through the database: a conditional `UPDATE ... RETURNING`,
//! an `INSERT ... ON CONFLICT DO UPDATE` for counters, or a transaction that
//! locks the rows (or, when the row may not exist yet, a transaction-scoped
//! advisory lock on the key) before it reads them. So two instances racing
//! on one refresh token, MFA code or recovery code cannot both win.
//!
//! Connections come from a bounded pool (deadpool): a checkout waits at most
//! `connect_timeout`, so a database that is down gives
//! [`StoreError::Unavailable`] at once-ish instead of a hanging request.
//! The tables live beside this file by concept: `users.rs`, `sessions.rs`
//! (and `refresh.rs`), `protect.rs` (with the settings and status counts),
//! `mfa.rs`; the schema and its versions are `migrations.rs`.

#[cfg(test)]
mod availability_tests;
mod connect;
pub mod copy;
mod errors;
mod health;
mod keys;
pub mod listen;
mod mfa;
#[cfg(test)]
mod mfa_tests;
mod mfa_transactions;
mod migrations;
mod protect;
#[cfg(test)]
mod race_tests;
mod refresh;
mod sessions;
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
mod tls;
mod users;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::config::PgSettings;

use super::{Migrated, StoreError};
pub use connect::{Connector, PgConnection};
pub use errors::{Unreachable, describe};
use errors::{pg, pool};
pub use migrations::MIGRATION_LOCK;
pub use tls::TlsSetupError;

/// The PostgreSQL implementation of the store's traits.
pub struct PgStore {
    pool: Pool,
    connector: Connector,
    health: health::Health,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("connector", &self.connector)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Open a pool towards the database of `settings` and bring its schema up
    /// to date (under the migration lock, so instances starting together
    /// apply each step once). The pool's connections are driven by the
    /// current runtime, which must outlive the store.
    pub async fn connect(settings: &PgSettings) -> Result<Self, StoreError> {
        let store = Self::open(settings)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Open the pool without touching the schema (`passgate migrate` and
    /// tests that build an old schema by hand). No connection is made yet.
    pub fn open(settings: &PgSettings) -> Result<Self, StoreError> {
        let connector = Connector::new(settings)?;
        let manager = Manager::from_connect(
            connector.config().clone(),
            connector.clone(),
            ManagerConfig {
                // A closed connection is dropped at checkout; a lost one
                // fails its statement and is dropped then.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(settings.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| match e {
                deadpool_postgres::BuildError::NoRuntimeSpecified => {
                    StoreError::Pool(deadpool_postgres::PoolError::NoRuntimeSpecified)
                }
            })?;
        Ok(Self {
            pool,
            connector,
            health: health::Health::default(),
        })
    }

    /// Apply the migrations this database lacks; `Schema` when the database
    /// is newer than this passgate.
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        let mut client = self.client().await?;
        migrations::migrate(&mut client).await
    }

    /// Opens more connections like the pool's: for a `LISTEN`ing task, which
    /// needs one of its own, or for tools.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Close the pool: checked-out connections close when returned.
    pub fn close(&self) {
        self.pool.close();
    }

    /// `None` while the database is reachable; else since when and why not.
    pub fn unavailable(&self) -> Option<String> {
        self.health.unavailable()
    }

    /// A pooled connection, within the connect timeout; at once
    /// `Unavailable` while the database is known to be down.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.health.admit()?;
        let mut got = self.pool.get().await.map_err(pool);
        // While the database is known to be down, a connection handed out by
        // the pool may have outlived it by a moment (fast recycling does not
        // ask the database): only the database's answer ends an outage.
        if self.health.is_down()
            && let Ok(client) = &got
            && let Err(e) = client.simple_query("").await
        {
            got = Err(pg(e));
        }
        self.health.record(&got);
        got
    }
}

/// Begin a transaction on `client`; it rolls back unless committed (also
/// when the call is dropped half-way).
async fn begin(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client.transaction().await.map_err(pg)
}

/// Commit `tx`.
async fn commit(tx: deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.commit().await.map_err(pg)
}

/// What a transaction-scoped advisory lock guards, where the rows to lock
/// may not exist yet: the first int of the lock's two.
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
enum LockSpace {
    /// The login names of a realm (a new user is checked against them).
    RealmNames = 0x7067_0001,
    /// The refresh families of a user with a client (`max_families`).
    Families = 0x7067_0002,
    /// The wrong-code count of a user (read, decided, rewritten).
    MfaFailures = 0x7067_0003,
    /// The revocation log: one writer at a time, so `seq` order is commit
    /// order and a reader that saw `seq` n never later finds a smaller one.
    Revocations = 0x7067_0004,
    /// The first signing key of an empty database.
    SigningKeys = 0x7067_0005,
}

/// Hold the lock of `key` in `space` until `tx` ends.
async fn lock(
    tx: &deadpool_postgres::Transaction<'_>,
    space: LockSpace,
    key: &str,
) -> Result<(), StoreError> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let key = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&(space as i32), &key],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// A count from the database as the unsigned type the traits use.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
