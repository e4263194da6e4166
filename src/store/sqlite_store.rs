//! The embedded store as the async traits see it: every call goes to the
//! store's threads (`sqlite_thread.rs`) and runs there on the synchronous
//! SQLite code (`SqliteDb`, in the table modules). Reads go to the reader
//! connections, writes to the writer: one writer keeps SQLite's one-writer
//! rule without a lock in front of every runtime's blocking pool.
//!
//! Arguments are copied into each call, since the threads outlive no borrow.

use std::path::Path;

use async_trait::async_trait;

use super::mfa::{
    Confirmed, FailureCount, MfaStore, MfaTransaction, MfaTransactionStore, OobChallenge,
    OtpConfirmation, StoredAuthenticator, UpdateFailures,
};
use super::protect::{AttemptState, ProtectStore};
use super::sessions::{Decide, RefreshRecord, Session, SessionStore};
use super::settings::SettingsStore;
use super::sqlite::SqliteDb;
use super::sqlite_thread::Lanes;
use super::status::{StatusCounts, StatusRules, StatusStore};
use super::{MetadataUpdate, Store, StoreError, User};

/// Reader connections of a file store.
const READERS: usize = 2;
/// Calls that may wait for each of the writer and the readers.
const QUEUE: usize = 1024;

/// The SQLite implementation of the store traits.
#[derive(Debug)]
pub struct SqliteStore {
    /// The store's threads (the table modules' trait impls call them too).
    pub(super) lanes: Lanes,
}

impl SqliteStore {
    /// Open (creating when missing) the store at `path`, bring its schema up
    /// to date, and start its writer and reader threads.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = SqliteDb::open(path)?;
        let readers = (0..READERS)
            .map(|_| SqliteDb::open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            lanes: Lanes::start(writer, readers, QUEUE)?,
        })
    }

    /// A private in-memory store (one connection: reads queue behind writes), for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            lanes: Lanes::start(SqliteDb::in_memory()?, Vec::new(), QUEUE)?,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.lanes.write(move |db| db.create_user(&user)).await
    }
    async fn find_login(&self, realm: &str, identifier: &str) -> Result<Option<User>, StoreError> {
        let (realm, identifier) = (realm.to_owned(), identifier.to_owned());
        self.lanes
            .read(move |db| db.find_login(&realm, &identifier))
            .await
    }
    async fn find_login_everywhere(&self, identifier: &str) -> Result<Vec<User>, StoreError> {
        let identifier = identifier.to_owned();
        self.lanes
            .read(move |db| db.find_login_everywhere(&identifier))
            .await
    }
    async fn bcrypt_costs(&self) -> Result<Vec<u32>, StoreError> {
        self.lanes.read(|db| db.bcrypt_costs()).await
    }
    async fn get_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes.read(move |db| db.get_user(&user_id)).await
    }
    async fn list_users(&self, realm: &str) -> Result<Vec<User>, StoreError> {
        let realm = realm.to_owned();
        self.lanes.read(move |db| db.list_users(&realm)).await
    }
    async fn remove_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes.write(move |db| db.remove_user(&user_id)).await
    }
    async fn set_blocked(
        &self,
        user_id: &str,
        blocked: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes
            .write(move |db| db.set_blocked(&user_id, blocked, now))
            .await
    }
    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (user_id, hash) = (user_id.to_owned(), hash.to_owned());
        self.lanes
            .write(move |db| db.set_password_hash(&user_id, &hash, now))
            .await
    }
    async fn record_login(
        &self,
        user_id: &str,
        now: i64,
        new_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let (user_id, new_hash) = (user_id.to_owned(), new_hash.map(str::to_owned));
        self.lanes
            .write(move |db| db.record_login(&user_id, now, new_hash.as_deref()))
            .await
    }
    async fn update_metadata(&self, update: &MetadataUpdate) -> Result<bool, StoreError> {
        let update = update.clone();
        self.lanes
            .write(move |db| db.update_metadata(&update))
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let (session, refresh) = (session.clone(), refresh.cloned());
        self.lanes
            .write(move |db| db.create_session(&session, refresh.as_ref(), max_families, now))
            .await
    }
    async fn create_login_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let (session, refresh, metadata) = (session.clone(), refresh.cloned(), metadata.clone());
        self.lanes
            .write(move |db| {
                db.create_login_session(&session, refresh.as_ref(), max_families, now, &metadata)
            })
            .await
    }
    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.lanes
            .read(move |db| db.find_refresh(&token_hash))
            .await
    }
    async fn exchange_refresh(
        &self,
        token_hash: &str,
        metadata: &MetadataUpdate,
        mut decide: Decide,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        let (token_hash, metadata) = (token_hash.to_owned(), metadata.clone());
        self.lanes
            .write(move |db| db.exchange_refresh(&token_hash, &metadata, &mut *decide))
            .await
    }
    async fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        let sid = sid.to_owned();
        self.lanes
            .write(move |db| db.revoke_session(&sid, now))
            .await
    }
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes
            .write(move |db| db.revoke_user_sessions(&user_id, now))
            .await
    }
    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes
            .read(move |db| db.list_sessions(&user_id, now))
            .await
    }
    async fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.lanes.read(move |db| db.revoked_sessions(now)).await
    }
    async fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.lanes.write(move |db| db.sweep_sessions(now)).await
    }
    async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.lanes.read(move |db| db.revocations_since(seq)).await
    }
}

#[async_trait]
impl ProtectStore for SqliteStore {
    async fn attempt_state(&self, identifier: &str, ip: &str) -> Result<AttemptState, StoreError> {
        let (identifier, ip) = (identifier.to_owned(), ip.to_owned());
        self.lanes
            .read(move |db| db.attempt_state(&identifier, &ip))
            .await
    }
    async fn add_login_failure(
        &self,
        identifier: &str,
        ip: &str,
        now: i64,
        streak_starts_after: i64,
    ) -> Result<u32, StoreError> {
        let (identifier, ip) = (identifier.to_owned(), ip.to_owned());
        self.lanes
            .write(move |db| db.add_login_failure(&identifier, &ip, now, streak_starts_after))
            .await
    }
    async fn clear_login_failures(
        &self,
        identifier: &str,
        ip: Option<&str>,
    ) -> Result<usize, StoreError> {
        let (identifier, ip) = (identifier.to_owned(), ip.map(str::to_owned));
        self.lanes
            .write(move |db| db.clear_login_failures(&identifier, ip.as_deref()))
            .await
    }
    async fn add_ip_failure(&self, ip: &str, now: i64, regain: i64) -> Result<i64, StoreError> {
        let ip = ip.to_owned();
        self.lanes
            .write(move |db| db.add_ip_failure(&ip, now, regain))
            .await
    }
    async fn clear_ip_failures(&self, ip: &str) -> Result<bool, StoreError> {
        let ip = ip.to_owned();
        self.lanes.write(move |db| db.clear_ip_failures(&ip)).await
    }
    async fn sweep_protect(&self, now: i64, streak_starts_after: i64) -> Result<usize, StoreError> {
        self.lanes
            .write(move |db| db.sweep_protect(now, streak_starts_after))
            .await
    }
}

#[async_trait]
impl MfaTransactionStore for SqliteStore {
    async fn create_transaction(&self, t: &MfaTransaction) -> Result<(), StoreError> {
        let t = t.clone();
        self.lanes.write(move |db| db.create_transaction(&t)).await
    }
    async fn find_transaction(
        &self,
        token_hash: &str,
    ) -> Result<Option<MfaTransaction>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.lanes
            .read(move |db| db.find_transaction(&token_hash))
            .await
    }
    async fn finish_transaction(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        self.lanes
            .write(move |db| db.finish_transaction(&token_hash, now))
            .await
    }
    async fn set_oob(&self, token_hash: &str, oob: &OobChallenge) -> Result<(), StoreError> {
        let (token_hash, oob) = (token_hash.to_owned(), oob.clone());
        self.lanes
            .write(move |db| db.set_oob(&token_hash, &oob))
            .await
    }
    async fn sweep_transactions(&self, now: i64) -> Result<usize, StoreError> {
        self.lanes.write(move |db| db.sweep_transactions(now)).await
    }
    async fn update_failures(
        &self,
        user_id: &str,
        mut update: UpdateFailures,
    ) -> Result<Option<FailureCount>, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes
            .write(move |db| db.update_failures(&user_id, &mut *update))
            .await
    }
}

#[async_trait]
impl MfaStore for SqliteStore {
    async fn authenticators(&self, user_id: &str) -> Result<Vec<StoredAuthenticator>, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes.read(move |db| db.authenticators(&user_id)).await
    }
    async fn add_authenticators(&self, list: &[StoredAuthenticator]) -> Result<(), StoreError> {
        let list = list.to_vec();
        self.lanes
            .write(move |db| db.add_authenticators(&list))
            .await
    }
    async fn accept_step(&self, id: &str, step: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.lanes.write(move |db| db.accept_step(&id, step)).await
    }
    async fn confirm_otp(&self, c: &OtpConfirmation<'_>) -> Result<Confirmed, StoreError> {
        let (user_id, authenticator_id, token_hash) = (
            c.user_id.to_owned(),
            c.authenticator_id.to_owned(),
            c.token_hash.to_owned(),
        );
        let (step, now) = (c.step, c.now);
        self.lanes
            .write(move |db| {
                db.confirm_otp(&OtpConfirmation {
                    user_id: &user_id,
                    authenticator_id: &authenticator_id,
                    step,
                    token_hash: &token_hash,
                    now,
                })
            })
            .await
    }
    async fn activate(&self, user_id: &str, ids: &[String]) -> Result<(), StoreError> {
        let (user_id, ids) = (user_id.to_owned(), ids.to_vec());
        self.lanes
            .write(move |db| db.activate(&user_id, &ids))
            .await
    }
    async fn replace_recovery_code(
        &self,
        user_id: &str,
        used_hash: &[u8],
        successor: &StoredAuthenticator,
    ) -> Result<bool, StoreError> {
        let (user_id, used_hash, successor) =
            (user_id.to_owned(), used_hash.to_vec(), successor.clone());
        self.lanes
            .write(move |db| db.replace_recovery_code(&user_id, &used_hash, &successor))
            .await
    }
    async fn remove_authenticator(
        &self,
        user_id: &str,
        id: &str,
        inactive_only: bool,
    ) -> Result<bool, StoreError> {
        let (user_id, id) = (user_id.to_owned(), id.to_owned());
        self.lanes
            .write(move |db| db.remove_authenticator(&user_id, &id, inactive_only))
            .await
    }
    async fn reset_authenticators(&self, user_id: &str) -> Result<usize, StoreError> {
        let user_id = user_id.to_owned();
        self.lanes
            .write(move |db| db.reset_authenticators(&user_id))
            .await
    }
    async fn enrolled_users(&self) -> Result<Vec<String>, StoreError> {
        self.lanes.read(|db| db.enrolled_users()).await
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn remember_first(&self, name: &str, value: i64) -> Result<i64, StoreError> {
        let name = name.to_owned();
        self.lanes
            .write(move |db| db.remember_first(&name, value))
            .await
    }
}

#[async_trait]
impl StatusStore for SqliteStore {
    async fn status_counts(
        &self,
        now: i64,
        rules: StatusRules,
    ) -> Result<StatusCounts, StoreError> {
        self.lanes
            .read(move |db| db.status_counts(now, rules))
            .await
    }
}
