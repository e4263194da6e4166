//! The PostgreSQL schema and its versions, tracked in `passgate_schema`.
//!
//! Version 1 is the SQLite schema at its latest version (migration 8 there),
//! in PostgreSQL's types: epoch seconds and milliseconds as `BIGINT`, flags
//! as `BOOLEAN`, metadata as `JSONB`, secrets as `BYTEA`. Login names carry
//! their lookup keys ([`crate::store::login_key()`]) as in SQLite, so no
//! collation extension is needed. Rows that SQLite orders by `rowid` have a
//! `seq` column for that.
//!
//! All pending steps are applied in one transaction that first takes
//! `pg_advisory_xact_lock(MIGRATION_LOCK)`: instances starting together
//! wait for each other, and each step is applied once.

use super::super::{Migrated, StoreError};
use super::errors::pg;

/// The advisory lock held while the schema is brought up to date ("passgate"
/// in ASCII). Work that must happen once per database at start (the first
/// signing key) may take it too.
pub const MIGRATION_LOCK: i64 = 0x7061_7373_6761_7465;

/// Schema versions, applied in order; never edit a released one, add another.
const MIGRATIONS: &[&str] = &[USERS, SESSIONS, PROTECT, MFA, ANNOUNCE, KEYS, ANNOUNCE_KEYS];

/// Every revocation is announced on [`super::listen::CHANNEL`] when its
/// transaction commits, whoever wrote it (an instance, or the CLI), so the
/// other instances read the log at once instead of at their next poll.
const ANNOUNCE: &str = "CREATE FUNCTION passgate_announce_revocation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('passgate_events', 'revocation:' || NEW.seq);
            RETURN NULL;
        END $$;
    CREATE TRIGGER revocations_announced AFTER INSERT ON revocations
        FOR EACH ROW EXECUTE FUNCTION passgate_announce_revocation();";

/// Every new signing key is announced on [`super::listen::CHANNEL`] at commit.
const ANNOUNCE_KEYS: &str = "CREATE FUNCTION passgate_announce_key() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('passgate_events', 'keys:' || NEW.kid);
            RETURN NULL;
        END $$;
    CREATE TRIGGER signing_keys_announced AFTER INSERT ON signing_keys
        FOR EACH ROW EXECUTE FUNCTION passgate_announce_key();";

/// passgate's own signing keys, sealed with the store key (`store/keys.rs`).
const KEYS: &str = "CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_sealed BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        signs_from BIGINT NOT NULL
    );";

const USERS: &str = "CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        realm TEXT NOT NULL,
        username TEXT,
        email TEXT,
        email_verified BOOLEAN NOT NULL DEFAULT false,
        name TEXT,
        password_hash TEXT,
        blocked BOOLEAN NOT NULL DEFAULT false,
        app_metadata JSONB NOT NULL DEFAULT '{}',
        user_metadata JSONB NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_login BIGINT,
        logins_count BIGINT NOT NULL DEFAULT 0,
        username_key TEXT,
        email_key TEXT,
        login_clash BOOLEAN NOT NULL DEFAULT false
    );
    CREATE UNIQUE INDEX users_realm_username_key ON users(realm, username_key)
        WHERE username_key IS NOT NULL AND NOT login_clash;
    CREATE UNIQUE INDEX users_realm_email_key ON users(realm, email_key)
        WHERE email_key IS NOT NULL AND NOT login_clash;
    CREATE INDEX users_username_key ON users(username_key, realm);
    CREATE INDEX users_email_key ON users(email_key, realm);
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );";

const SESSIONS: &str = "CREATE TABLE sessions (
        sid TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        realm TEXT NOT NULL,
        audience TEXT NOT NULL,
        scope TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
        has_refresh BOOLEAN NOT NULL DEFAULT false,
        amr TEXT NOT NULL DEFAULT '',
        seq BIGSERIAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id, client_id);
    CREATE INDEX sessions_expiry ON sessions(expires_at);
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        sid TEXT NOT NULL REFERENCES sessions(sid) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT NOT NULL,
        absolute_expires_at BIGINT NOT NULL,
        retired_at_ms BIGINT
    );
    CREATE INDEX refresh_tokens_sid ON refresh_tokens(sid);
    CREATE TABLE revocations (
        seq BIGSERIAL PRIMARY KEY,
        sid TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX revocations_expiry ON revocations(expires_at);";

const PROTECT: &str = "CREATE TABLE login_failures (
        identifier TEXT NOT NULL,
        ip TEXT NOT NULL,
        failures BIGINT NOT NULL,
        last_failure BIGINT NOT NULL,
        PRIMARY KEY (identifier, ip)
    );
    CREATE INDEX login_failures_last ON login_failures(last_failure);
    CREATE TABLE ip_failures (
        ip TEXT PRIMARY KEY,
        tat BIGINT NOT NULL
    );
    CREATE INDEX ip_failures_tat ON ip_failures(tat);";

const MFA: &str = "CREATE TABLE mfa_authenticators (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        secret BYTEA NOT NULL,
        active BOOLEAN NOT NULL DEFAULT false,
        last_step BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        seq BIGSERIAL NOT NULL
    );
    CREATE INDEX mfa_authenticators_user ON mfa_authenticators(user_id);
    CREATE TABLE mfa_transactions (
        token_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        realm TEXT NOT NULL,
        audience TEXT NOT NULL,
        decision TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT,
        oob_authenticator TEXT,
        oob_code_hash TEXT,
        binding_hash TEXT,
        oob_expires_at BIGINT
    );
    CREATE INDEX mfa_transactions_expiry ON mfa_transactions(expires_at);
    CREATE INDEX mfa_transactions_user ON mfa_transactions(user_id);
    CREATE TABLE mfa_failures (
        user_id TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
        failures BIGINT NOT NULL,
        since BIGINT NOT NULL
    );";

/// The newest schema version this build knows.
pub fn known_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database of `client` up to date, in one transaction under the
/// migration lock.
pub(super) async fn migrate(
    client: &mut deadpool_postgres::Client,
) -> Result<Migrated, StoreError> {
    let tx = client.transaction().await.map_err(pg)?;
    // A large table's index may take longer than a request's statement;
    // "already exists, skipping" notices are not news.
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL client_min_messages = warning")
        .await
        .map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS passgate_schema (
            version BIGINT PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(pg)?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM passgate_schema", &[])
        .await
        .map_err(pg)?
        .get(0);
    let known = known_version();
    if found > known {
        return Err(StoreError::Schema { found, known });
    }
    let done = usize::try_from(found).unwrap_or(0);
    for (version, step) in (1_i64..).zip(MIGRATIONS).skip(done) {
        tx.batch_execute(step).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO passgate_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(Migrated {
        from: found,
        to: known,
    })
}
