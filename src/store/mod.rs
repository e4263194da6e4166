//! The embedded store: users now; sessions, refresh tokens and attack-protection
//! state as they arrive. Everything goes through the [`Store`] trait, so a
//! PostgreSQL implementation can replace SQLite without touching the grants.
//!
//! The traits are async. SQLite's synchronous code runs on the store's own
//! threads (`sqlite_store.rs`, `sqlite_thread.rs`): one writer, a few
//! readers, bounded queues. Writes are committed before a call returns:
//! durable before acknowledged.

pub mod keys;
pub mod login_key;
mod login_migration;
pub mod mfa;
#[cfg(test)]
mod mfa_fixtures;
pub mod mfa_transactions;
mod migrations;
pub mod postgres;
pub mod protect;
mod refresh_exchange;
pub mod seal;
pub mod sessions;
pub mod settings;
mod sqlite;
mod sqlite_store;
mod sqlite_thread;
mod sqlite_users;
pub mod status;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use login_key::login_key;

pub use postgres::PgStore;
pub(crate) use sqlite::SqliteDb;
pub use sqlite_store::SqliteStore;

/// A user of one realm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    /// `auth0|<id>`: stable for the user's life; imported users keep theirs.
    pub user_id: String,
    /// The realm (Auth0 connection) the user belongs to.
    pub realm: String,
    /// Login name as given; unique in the realm by its lookup key
    /// ([`login_key()`]: Unicode NFKC and full case folding).
    pub username: Option<String>,
    /// E-mail as given, unique in the realm by its lookup key (also among
    /// usernames); also accepted as login name.
    pub email: Option<String>,
    /// Whether the e-mail was verified.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// PHC string (argon2id), or a bcrypt hash kept from an import.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Blocked by an administrator.
    pub blocked: bool,
    /// Application data, set by administrators.
    pub app_metadata: Value,
    /// User data.
    pub user_metadata: Value,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
    /// Seconds since the epoch.
    pub last_login: Option<i64>,
    /// Successful logins.
    pub logins_count: i64,
}

impl User {
    /// The name shown to people: `name`, else username, else e-mail.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.username.as_deref())
            .or(self.email.as_deref())
            .unwrap_or("")
    }
}

/// New metadata for a user, decided by the login's Rules and Actions and
/// written when the login succeeds (`None`: that one is left as it is).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataUpdate {
    /// The user.
    pub user_id: String,
    /// The whole new `app_metadata`.
    pub app_metadata: Option<Value>,
    /// The whole new `user_metadata`.
    pub user_metadata: Option<Value>,
    /// Seconds since the epoch (`updated_at`).
    pub now: i64,
}

impl MetadataUpdate {
    /// Whether there is anything to write.
    pub fn is_empty(&self) -> bool {
        self.app_metadata.is_none() && self.user_metadata.is_none()
    }
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (username or e-mail in the realm, or the user id).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database failed. The text says how, so `to_string()` (the CLI)
    /// stays useful; the error itself is the source, for the log's chain.
    #[error("store: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// Creating the store's folder failed.
    #[error("store: {context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Opening the database file failed.
    #[error("store: opening {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store's schema is newer than this passgate knows.
    #[error(
        "store: the store has schema version {found}, newer than this passgate knows ({known}); upgrade passgate"
    )]
    Schema {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A thread panicked while holding the store's lock.
    #[error("store: the lock was poisoned by a panic")]
    Poisoned,
    /// The blocking task running a store call panicked or was cancelled.
    #[error("store: a call did not finish")]
    Task(#[source] crate::tasks::Unfinished),
    /// The store's thread stopped, or the call panicked on it.
    #[error("store: the call did not finish on the store's thread")]
    Stopped,
    /// PostgreSQL refused a statement, or a statement failed in the client
    /// (the text says how; the error is the source).
    #[error("store: {}", postgres::describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
    /// PostgreSQL cannot be reached now: the connection was refused, timed
    /// out or lost, no pooled connection came free in time, the server is
    /// shutting down or in recovery, or a statement ran past
    /// `statement_timeout`. Trying again later may work.
    #[error("store: the database is unavailable: {0}")]
    Unavailable(#[source] postgres::Unreachable),
    /// The PostgreSQL connection pool failed otherwise (closed at shutdown).
    #[error("store: the connection pool: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The PostgreSQL store was opened outside a tokio runtime (it drives
    /// its connections on the runtime that opens it).
    #[error("store: PostgreSQL needs a tokio runtime: {0}")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// TLS towards PostgreSQL could not be set up (`[store] tls_ca`).
    #[error("store: {0}")]
    PgTls(#[source] postgres::TlsSetupError),
    /// A guarded write changed another number of rows than the one it must
    /// (a decision that broke its own guard); nothing was written.
    #[error("store: {what}: {changed} rows changed where exactly one must")]
    RowCount {
        /// The write.
        what: &'static str,
        /// Rows it changed.
        changed: u64,
    },
}

/// Persistence for passgate's state.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Add a user; `Conflict`, with a message naming the clash, when the id is
    /// taken or a login name has the lookup key of a username or e-mail
    /// already in the realm.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// The user of `realm` a login as `identifier` means: matched by lookup
    /// key ([`login_key()`]), collisions of an older store by
    /// [`login_key::resolve`].
    async fn find_login(&self, realm: &str, identifier: &str) -> Result<Option<User>, StoreError>;
    /// [`Store::find_login`] in every realm (for commands that take no realm,
    /// like `passgate unblock`): at most one user per realm.
    async fn find_login_everywhere(&self, identifier: &str) -> Result<Vec<User>, StoreError>;
    /// The distinct bcrypt costs among the stored hashes (imported users not
    /// yet re-hashed), so password checks can be timed to the slowest.
    async fn bcrypt_costs(&self) -> Result<Vec<u32>, StoreError>;
    /// A user by id.
    async fn get_user(&self, user_id: &str) -> Result<Option<User>, StoreError>;
    /// Every user of a realm, by username.
    async fn list_users(&self, realm: &str) -> Result<Vec<User>, StoreError>;
    /// Remove a user; false when there was none.
    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError>;
    /// Block or unblock a user; false when there was none.
    async fn set_blocked(&self, user_id: &str, blocked: bool, now: i64)
    -> Result<bool, StoreError>;
    /// Replace a password hash.
    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// A successful login: `last_login`, `logins_count`, and a new hash when the old one was rehashed.
    async fn record_login(
        &self,
        user_id: &str,
        now: i64,
        new_hash: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Replace a user's metadata as a login's scripts decided; false when
    /// there was no such user.
    async fn update_metadata(&self, update: &MetadataUpdate) -> Result<bool, StoreError>;
}

/// Everything passgate keeps, in one store: what the gateway opens, and
/// what each part sees through its own trait.
pub trait Backend:
    Store
    + Reachability
    + keys::KeyStore
    + sessions::SessionStore
    + protect::ProtectStore
    + mfa::MfaStore
    + settings::SettingsStore
    + status::StatusStore
{
}

impl<T> Backend for T where
    T: Store
        + Reachability
        + keys::KeyStore
        + sessions::SessionStore
        + protect::ProtectStore
        + mfa::MfaStore
        + settings::SettingsStore
        + status::StatusStore
{
}

/// Whether the store can be reached now (`/readyz`, the status page).
pub trait Reachability: Send + Sync + std::fmt::Debug {
    /// `None` while it can; else since when and why not.
    fn unavailable(&self) -> Option<String>;
}

impl Reachability for SqliteStore {
    fn unavailable(&self) -> Option<String> {
        None
    }
}

impl Reachability for PgStore {
    fn unavailable(&self) -> Option<String> {
        PgStore::unavailable(self)
    }
}

impl StoreError {
    /// The store cannot be reached now; trying again later may work
    /// (the token endpoint answers 503 with `Retry-After`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Open the store `config` names (bringing its schema up to date): what
/// the gateway and every command that reads or changes state use.
pub async fn open(config: &crate::config::StoreConfig) -> Result<Arc<dyn Backend>, StoreError> {
    match &config.backend {
        crate::config::StoreBackend::Sqlite { path } => Ok(Arc::new(SqliteStore::open(path)?)),
        crate::config::StoreBackend::Postgres(settings) => {
            Ok(Arc::new(PgStore::connect(settings).await?))
        }
    }
}

/// What `passgate migrate` did: the schema version found and the version now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0: a new store).
    pub from: i64,
    /// The version now, the newest this build knows.
    pub to: i64,
}

/// Bring the schema of the store `config` names up to date, and nothing
/// else (`passgate migrate`; `open` does it too).
pub async fn migrate(config: &crate::config::StoreConfig) -> Result<Migrated, StoreError> {
    match &config.backend {
        crate::config::StoreBackend::Sqlite { path } => migrations::migrate_file(path),
        crate::config::StoreBackend::Postgres(settings) => {
            let store = PgStore::open(settings)?;
            let migrated = store.migrate().await;
            store.close();
            migrated
        }
    }
}

/// A fresh Auth0-style user id: `auth0|` and 24 hex digits.
pub fn new_user_id() -> String {
    let bytes: [u8; 12] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("auth0|{hex}")
}
