//! Refresh exchanges under races, made deterministic: a [`SessionStore`]
//! wrapper runs a hook (a revocation, a competing exchange) just before an
//! exchange reaches the store, i.e. after every check the gateway made before
//! it. Any `SessionStore` can be wrapped, so another backend runs the same
//! tests through [`stores`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passgate::clock::{Clock, ManualClock};
use passgate::config::{ClientConfig, RefreshPolicy};
use passgate::sessions::{ExchangeError, NewSession, Sessions, hash_token};
use passgate::store::SqliteStore;
use passgate::store::sessions::{Decide, Decision, RefreshRecord, Session, SessionStore};
use passgate::store::{MetadataUpdate, StoreError};

type Hook =
    Box<dyn FnOnce(Arc<dyn SessionStore>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A store whose next exchange first runs a hook against the inner store.
#[derive(Debug)]
struct Hooked {
    inner: Arc<dyn SessionStore>,
    before_exchange: Mutex<Option<HookBox>>,
}

struct HookBox(Hook);

impl std::fmt::Debug for HookBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookBox")
    }
}

impl Hooked {
    fn new(inner: Arc<dyn SessionStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            before_exchange: Mutex::new(None),
        })
    }

    /// Run `hook` once, just before the next exchange reaches the store.
    fn before_next_exchange<F, Fut>(&self, hook: F)
    where
        F: FnOnce(Arc<dyn SessionStore>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move |store| Box::pin(hook(store)));
        *self.before_exchange.lock().unwrap() = Some(HookBox(hook));
    }

    async fn fire(&self) {
        let hook = self.before_exchange.lock().unwrap().take();
        if let Some(HookBox(hook)) = hook {
            hook(Arc::clone(&self.inner)).await;
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for Hooked {
    async fn create_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner
            .create_session(session, refresh, max_families, now)
            .await
    }
    async fn create_login_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &passgate::store::MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner
            .create_login_session(session, refresh, max_families, now, metadata)
            .await
    }
    async fn find_refresh(
        &self,
        hash: &str,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.inner.find_refresh(hash).await
    }
    async fn exchange_refresh(
        &self,
        hash: &str,
        metadata: &MetadataUpdate,
        decide: Decide,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.fire().await;
        self.inner.exchange_refresh(hash, metadata, decide).await
    }
    async fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        self.inner.revoke_session(sid, now).await
    }
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.revoke_user_sessions(user_id, now).await
    }
    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(user_id, now).await
    }
    async fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.revoked_sessions(now).await
    }
    async fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.inner.sweep_sessions(now).await
    }
    async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.inner.revocations_since(seq).await
    }
}

/// Every backend the races run against, each fresh.
fn stores() -> Vec<(&'static str, Arc<dyn SessionStore>)> {
    vec![("sqlite", Arc::new(SqliteStore::in_memory().unwrap()))]
}

const USER: &str = "auth0|0123456789abcdef01234567";

fn client(id: &str, reuse_leeway: Duration) -> ClientConfig {
    ClientConfig {
        id: id.into(),
        name: id.into(),
        secret: None,
        grant_types: vec!["password".into(), "refresh_token".into()],
        realms: vec![],
        trust_forwarded_for: false,
        refresh: RefreshPolicy {
            reuse_leeway,
            ..RefreshPolicy::default()
        },
    }
}

struct Rig {
    sessions: Sessions,
    hooked: Arc<Hooked>,
    clock: Arc<ManualClock>,
}

async fn rig(store: Arc<dyn SessionStore>) -> Rig {
    let hooked = Hooked::new(store);
    let clock = ManualClock::new(1_700_000_000);
    let sessions = Sessions::load(hooked.clone(), "https://localhost/".into(), clock.clone())
        .await
        .unwrap();
    Rig {
        sessions,
        hooked,
        clock,
    }
}

impl Rig {
    /// A login of `client`: its session id and first refresh token.
    async fn login(&self, client: &ClientConfig) -> (String, String) {
        let sid = Sessions::new_sid();
        let token = self
            .sessions
            .persist(NewSession {
                sid: sid.clone(),
                user_id: USER.into(),
                client: client.clone(),
                realm: "r".into(),
                audience: "https://api.example.com".into(),
                scopes: vec!["offline_access".into()],
                access_expires_at: self.clock.now() + 3600,
                with_refresh: true,
                amr: vec!["pwd".into()],
            })
            .await
            .unwrap()
            .unwrap();
        (sid, token)
    }

    async fn exchange(&self, client: &ClientConfig, token: &str) -> Result<String, ExchangeError> {
        let exp = self.clock.now() + 3600;
        self.sessions
            .exchange(client, token, exp)
            .await
            .map(|x| x.refresh_token.unwrap())
    }

    async fn session(&self, sid: &str) -> Session {
        let store = self.sessions.store();
        let all = store.list_sessions(USER, 0).await.unwrap();
        all.into_iter().find(|s| s.sid == sid).unwrap()
    }
}

/// An exchange of `token` that another request wins, rotating it to `successor`.
fn competing_exchange(
    token: &str,
    successor: &str,
    now: i64,
    now_ms: i64,
) -> impl FnOnce(Arc<dyn SessionStore>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static
{
    let (hash, next) = (hash_token(token), hash_token(successor));
    move |store: Arc<dyn SessionStore>| -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let decide: Decide =
                Box::new(
                    move |record: &RefreshRecord, session: &Session| Decision::Rotate {
                        successor: RefreshRecord {
                            token_hash: next.clone(),
                            sid: session.sid.clone(),
                            client_id: record.client_id.clone(),
                            created_at: now,
                            last_used_at: now,
                            absolute_expires_at: record.absolute_expires_at,
                            retired_at_ms: None,
                        },
                        retired_at_ms: now_ms,
                        session_expires_at: now + 3600,
                    },
                );
            let found = store
                .exchange_refresh(&hash, &MetadataUpdate::default(), decide)
                .await
                .unwrap();
            assert!(found.is_some());
        })
    }
}

#[tokio::test]
async fn a_revoke_racing_a_rotation_wins() {
    for (name, store) in stores() {
        let r = rig(store).await;
        let app = client("app", Duration::ZERO);
        let (sid, token) = r.login(&app).await;
        let before = r.session(&sid).await.expires_at;
        // The revocation commits after the gateway's checks, before the rotation.
        let (s, now) = (sid.clone(), r.clock.now());
        r.hooked.before_next_exchange(move |store| async move {
            assert!(store.revoke_session(&s, now).await.unwrap());
        });
        r.clock.advance(10);
        assert_eq!(
            r.exchange(&app, &token).await,
            Err(ExchangeError::Revoked),
            "{name}"
        );
        // Nothing was minted, and the session did not outgrow its revocation.
        let session = r.session(&sid).await;
        assert!(session.revoked_at.is_some(), "{name}");
        assert_eq!(session.expires_at, before, "{name}");
        let logged = r.sessions.store().revocations_since(0).await.unwrap();
        assert_eq!(logged, vec![(logged[0].0, sid.clone(), before)], "{name}");
        assert_eq!(
            r.exchange(&app, &token).await,
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_lost_race_within_the_leeway_keeps_the_family() {
    for (name, store) in stores() {
        let r = rig(store).await;
        let lenient = client("lenient", Duration::from_secs(10));
        let (sid, token) = r.login(&lenient).await;
        let (now, now_ms) = (r.clock.now(), r.clock.now_millis());
        r.hooked
            .before_next_exchange(competing_exchange(&token, "winner", now, now_ms));
        assert_eq!(
            r.exchange(&lenient, &token).await,
            Err(ExchangeError::Race),
            "{name}"
        );
        assert!(r.session(&sid).await.revoked_at.is_none(), "{name}");
        assert!(r.exchange(&lenient, "winner").await.is_ok(), "{name}");
    }
}

#[tokio::test]
async fn a_lost_race_without_a_leeway_ends_the_family() {
    for (name, store) in stores() {
        let r = rig(store).await;
        let app = client("app", Duration::ZERO);
        let (sid, token) = r.login(&app).await;
        let (now, now_ms) = (r.clock.now(), r.clock.now_millis());
        r.hooked
            .before_next_exchange(competing_exchange(&token, "winner", now, now_ms));
        // Same millisecond: with a zero leeway a reuse is a reuse.
        assert_eq!(
            r.exchange(&app, &token).await,
            Err(ExchangeError::Reused),
            "{name}"
        );
        assert!(r.session(&sid).await.revoked_at.is_some(), "{name}");
        assert_eq!(
            r.exchange(&app, "winner").await,
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_leeway_is_counted_in_milliseconds() {
    for (name, store) in stores() {
        let r = rig(store).await;
        let lenient = client("lenient", Duration::from_secs(1));
        let (sid, first) = r.login(&lenient).await;
        let second = r.exchange(&lenient, &first).await.unwrap();
        r.clock.advance_millis(999);
        assert_eq!(
            r.exchange(&lenient, &first).await,
            Err(ExchangeError::Race),
            "{name}"
        );
        r.clock.advance_millis(1);
        assert_eq!(
            r.exchange(&lenient, &first).await,
            Err(ExchangeError::Reused),
            "{name}"
        );
        assert!(r.session(&sid).await.revoked_at.is_some(), "{name}");
        assert_eq!(
            r.exchange(&lenient, &second).await,
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}
