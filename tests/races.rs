//! Refresh exchanges under races, made deterministic: a [`SessionStore`]
//! wrapper runs a hook (a revocation, a competing exchange) just before an
//! exchange reaches the store, i.e. after every check the gateway made before
//! it. Any `SessionStore` can be wrapped, so another backend runs the same
//! tests through [`stores`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use passgate::clock::{Clock, ManualClock};
use passgate::config::{ClientConfig, RefreshPolicy};
use passgate::sessions::{ExchangeError, NewSession, Sessions, hash_token};
use passgate::store::SqliteStore;
use passgate::store::sessions::{Decision, RefreshRecord, Session, SessionStore};
use passgate::store::{MetadataUpdate, StoreError};

type Hook = Box<dyn FnOnce(&dyn SessionStore) + Send>;

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
    fn before_next_exchange(&self, hook: impl FnOnce(&dyn SessionStore) + Send + 'static) {
        *self.before_exchange.lock().unwrap() = Some(HookBox(Box::new(hook)));
    }

    fn fire(&self) {
        let hook = self.before_exchange.lock().unwrap().take();
        if let Some(HookBox(hook)) = hook {
            hook(self.inner.as_ref());
        }
    }
}

impl SessionStore for Hooked {
    fn create_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner
            .create_session(session, refresh, max_families, now)
    }
    fn create_login_session(
        &self,
        session: &Session,
        refresh: Option<&RefreshRecord>,
        max_families: usize,
        now: i64,
        metadata: &passgate::store::MetadataUpdate,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner
            .create_login_session(session, refresh, max_families, now, metadata)
    }
    fn find_refresh(&self, hash: &str) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.inner.find_refresh(hash)
    }
    fn exchange_refresh(
        &self,
        hash: &str,
        metadata: &MetadataUpdate,
        decide: &mut dyn FnMut(&RefreshRecord, &Session) -> Decision,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        self.fire();
        self.inner.exchange_refresh(hash, metadata, decide)
    }
    fn revoke_session(&self, sid: &str, now: i64) -> Result<bool, StoreError> {
        self.inner.revoke_session(sid, now)
    }
    fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.revoke_user_sessions(user_id, now)
    }
    fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(user_id, now)
    }
    fn revoked_sessions(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.revoked_sessions(now)
    }
    fn sweep_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.inner.sweep_sessions(now)
    }
    fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.inner.revocations_since(seq)
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

fn rig(store: Arc<dyn SessionStore>) -> Rig {
    let hooked = Hooked::new(store);
    let clock = ManualClock::new(1_700_000_000);
    let sessions =
        Sessions::load(hooked.clone(), "https://localhost/".into(), clock.clone()).unwrap();
    Rig {
        sessions,
        hooked,
        clock,
    }
}

impl Rig {
    /// A login of `client`: its session id and first refresh token.
    fn login(&self, client: &ClientConfig) -> (String, String) {
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
            .unwrap()
            .unwrap();
        (sid, token)
    }

    fn exchange(&self, client: &ClientConfig, token: &str) -> Result<String, ExchangeError> {
        let exp = self.clock.now() + 3600;
        self.sessions
            .exchange(client, token, exp)
            .map(|x| x.refresh_token.unwrap())
    }

    fn session(&self, sid: &str) -> Session {
        let store = self.sessions.store();
        let all = store.list_sessions(USER, 0).unwrap();
        all.into_iter().find(|s| s.sid == sid).unwrap()
    }
}

/// An exchange of `token` that another request wins, rotating it to `successor`.
fn competing_exchange(
    token: &str,
    successor: &str,
    now: i64,
    now_ms: i64,
) -> impl FnOnce(&dyn SessionStore) + Send + 'static {
    let (hash, next) = (hash_token(token), hash_token(successor));
    move |store: &dyn SessionStore| {
        let found = store
            .exchange_refresh(&hash, &MetadataUpdate::default(), &mut |record, session| {
                Decision::Rotate {
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
                }
            })
            .unwrap();
        assert!(found.is_some());
    }
}

#[test]
fn a_revoke_racing_a_rotation_wins() {
    for (name, store) in stores() {
        let r = rig(store);
        let app = client("app", Duration::ZERO);
        let (sid, token) = r.login(&app);
        let before = r.session(&sid).expires_at;
        // The revocation commits after the gateway's checks, before the rotation.
        let (s, now) = (sid.clone(), r.clock.now());
        r.hooked.before_next_exchange(move |store| {
            assert!(store.revoke_session(&s, now).unwrap());
        });
        r.clock.advance(10);
        assert_eq!(
            r.exchange(&app, &token),
            Err(ExchangeError::Revoked),
            "{name}"
        );
        // Nothing was minted, and the session did not outgrow its revocation.
        let session = r.session(&sid);
        assert!(session.revoked_at.is_some(), "{name}");
        assert_eq!(session.expires_at, before, "{name}");
        let logged = r.sessions.store().revocations_since(0).unwrap();
        assert_eq!(logged, vec![(logged[0].0, sid.clone(), before)], "{name}");
        assert_eq!(
            r.exchange(&app, &token),
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}

#[test]
fn a_lost_race_within_the_leeway_keeps_the_family() {
    for (name, store) in stores() {
        let r = rig(store);
        let lenient = client("lenient", Duration::from_secs(10));
        let (sid, token) = r.login(&lenient);
        let (now, now_ms) = (r.clock.now(), r.clock.now_millis());
        r.hooked
            .before_next_exchange(competing_exchange(&token, "winner", now, now_ms));
        assert_eq!(
            r.exchange(&lenient, &token),
            Err(ExchangeError::Race),
            "{name}"
        );
        assert!(r.session(&sid).revoked_at.is_none(), "{name}");
        assert!(r.exchange(&lenient, "winner").is_ok(), "{name}");
    }
}

#[test]
fn a_lost_race_without_a_leeway_ends_the_family() {
    for (name, store) in stores() {
        let r = rig(store);
        let app = client("app", Duration::ZERO);
        let (sid, token) = r.login(&app);
        let (now, now_ms) = (r.clock.now(), r.clock.now_millis());
        r.hooked
            .before_next_exchange(competing_exchange(&token, "winner", now, now_ms));
        // Same millisecond: with a zero leeway a reuse is a reuse.
        assert_eq!(
            r.exchange(&app, &token),
            Err(ExchangeError::Reused),
            "{name}"
        );
        assert!(r.session(&sid).revoked_at.is_some(), "{name}");
        assert_eq!(
            r.exchange(&app, "winner"),
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}

#[test]
fn the_leeway_is_counted_in_milliseconds() {
    for (name, store) in stores() {
        let r = rig(store);
        let lenient = client("lenient", Duration::from_secs(1));
        let (sid, first) = r.login(&lenient);
        let second = r.exchange(&lenient, &first).unwrap();
        r.clock.advance_millis(999);
        assert_eq!(
            r.exchange(&lenient, &first),
            Err(ExchangeError::Race),
            "{name}"
        );
        r.clock.advance_millis(1);
        assert_eq!(
            r.exchange(&lenient, &first),
            Err(ExchangeError::Reused),
            "{name}"
        );
        assert!(r.session(&sid).revoked_at.is_some(), "{name}");
        assert_eq!(
            r.exchange(&lenient, &second),
            Err(ExchangeError::Revoked),
            "{name}"
        );
    }
}
