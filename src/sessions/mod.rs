//! Login sessions, rotating refresh tokens, and revocation the proxy enforces.
//!
//! Every login is a session; its id is the `sid` claim of its tokens. The
//! sessions' persistent state lives in the store ([`SessionStore`]), written
//! before a response leaves. The set of revoked sessions is kept in a dashmap
//! in front of the store, so the gate answers "is this `sid` revoked?" on
//! every proxied request from memory: it is loaded at start, updated
//! write-through by this process, and fed from the store's revocation log
//! every second (so `passgate sessions revoke`, `users block` and
//! `users set-password` run from another process take effect too).

mod refresh;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

pub use refresh::{ExchangeError, Exchanged, hash_token};

use crate::clock::SharedClock;
use crate::config::ClientConfig;
use crate::gate::Revocations;
use crate::gate::claims::Claims;
use crate::store::StoreError;
use crate::store::sessions::{RefreshRecord, Session, SessionStore};
use crate::tasks::Supervisor;
use crate::telemetry::ErrorChain;

/// Sessions and refresh tokens.
#[derive(Debug)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    /// Revoked sessions still within their tokens' lifetime: `sid → expires_at`.
    revoked: DashMap<String, i64>,
    last_seq: AtomicI64,
    issuer: String,
    clock: SharedClock,
    /// Wakes the revocation feed before its next poll (an announcement).
    wake: Arc<tokio::sync::Notify>,
}

/// What a login needs remembered.
#[derive(Debug)]
pub struct NewSession {
    /// The session id (already in the tokens).
    pub sid: String,
    /// The user.
    pub user_id: String,
    /// The client and its refresh policy.
    pub client: ClientConfig,
    /// The realm.
    pub realm: String,
    /// The access token's audience.
    pub audience: String,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// When the access token expires.
    pub access_expires_at: i64,
    /// Issue a refresh token.
    pub with_refresh: bool,
    /// How the user authenticated (`["pwd"]`, `["pwd", "mfa"]`).
    pub amr: Vec<String>,
}

impl Sessions {
    /// Sessions of `issuer` over `store`, with the revoked set loaded from it.
    pub async fn load(
        store: Arc<dyn SessionStore>,
        issuer: String,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let now = clock.now();
        let revoked = DashMap::new();
        for (sid, expires_at) in store.revoked_sessions(now).await? {
            revoked.insert(sid, expires_at);
        }
        // Everything already revoked is loaded; follow the log from its end.
        let end = store
            .revocations_since(0)
            .await?
            .last()
            .map_or(0, |(seq, _, _)| *seq);
        Ok(Self {
            store,
            revoked,
            last_seq: AtomicI64::new(end),
            issuer,
            clock,
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Read the revocation log now rather than at the next poll: another
    /// instance announced a revocation (or the announcements reconnected).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A new session id: 128 random bits, hex.
    pub fn new_sid() -> String {
        let n: u128 = rand::random();
        format!("{n:032x}")
    }

    /// Persist a login's session, and its first refresh token when asked.
    /// Returns the refresh token (the only time it exists in clear).
    pub async fn persist(&self, s: NewSession) -> Result<Option<String>, StoreError> {
        self.persist_with(s, None).await
    }

    /// [`Sessions::persist`], with the metadata a login's scripts decided
    /// written in the same transaction.
    pub async fn persist_with(
        &self,
        s: NewSession,
        metadata: Option<&crate::store::MetadataUpdate>,
    ) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        let policy = &s.client.refresh;
        let absolute = now + policy.absolute_lifetime.as_secs() as i64;
        let expires_at = if s.with_refresh {
            absolute.max(s.access_expires_at)
        } else {
            s.access_expires_at
        };
        let session = Session {
            sid: s.sid.clone(),
            user_id: s.user_id.clone(),
            client_id: s.client.id.clone(),
            realm: s.realm.clone(),
            audience: s.audience.clone(),
            scope: s.scopes.join(" "),
            created_at: now,
            expires_at,
            revoked_at: None,
            has_refresh: s.with_refresh,
            amr: s.amr.join(" "),
        };
        let token = s.with_refresh.then(refresh::new_token);
        let record = token.as_deref().map(|t| RefreshRecord {
            token_hash: hash_token(t),
            sid: session.sid.clone(),
            client_id: s.client.id.clone(),
            created_at: now,
            last_used_at: now,
            absolute_expires_at: absolute,
            retired_at_ms: None,
        });
        let dropped = match metadata.filter(|m| !m.is_empty()) {
            Some(m) => {
                self.store
                    .create_login_session(&session, record.as_ref(), policy.max_families, now, m)
                    .await?
            }
            None => {
                self.store
                    .create_session(&session, record.as_ref(), policy.max_families, now)
                    .await?
            }
        };
        for (sid, expires_at) in dropped {
            tracing::info!(target: "passgate::auth", event = "session_dropped", sid = %sid, reason = "too many refresh families");
            self.revoked.insert(sid, expires_at);
        }
        Ok(token)
    }

    /// End a session now, here and (through the store) everywhere.
    pub async fn revoke(&self, sid: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let changed = self.store.revoke_session(sid, now).await?;
        // The store has the expiry; a long bound is safe until the log sweep replaces it.
        self.revoked.entry(sid.to_string()).or_insert(i64::MAX);
        if changed {
            tracing::info!(target: "passgate::auth", event = "session_revoked", sid = %sid);
        }
        Ok(changed)
    }

    /// End every session of a user.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let ended = self
            .store
            .revoke_user_sessions(user_id, self.clock.now())
            .await?;
        let n = ended.len();
        for (sid, expires_at) in ended {
            self.revoked.insert(sid, expires_at);
        }
        Ok(n)
    }

    /// Read revocations other processes (or this one) logged since the last look.
    pub async fn follow_log(&self) -> Result<usize, StoreError> {
        let since = self.last_seq.load(Ordering::Acquire);
        let rows = self.store.revocations_since(since).await?;
        let n = rows.len();
        for (seq, sid, expires_at) in rows {
            self.revoked.insert(sid, expires_at);
            self.last_seq.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(n)
    }

    /// Forget revoked sessions whose tokens have all expired, and delete expired sessions.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        self.revoked.retain(|_, expires_at| *expires_at >= now);
        self.store.sweep_sessions(now).await
    }

    /// Follow the revocation log every `follow` and sweep every `sweep`,
    /// under `tasks`, until shutdown or until the sessions are dropped.
    pub fn start_background(
        self: &Arc<Self>,
        tasks: &Supervisor,
        follow: Duration,
        sweep: Duration,
    ) {
        let weak = Arc::downgrade(self);
        let wake = Arc::clone(&self.wake);
        tasks.spawn("revocation feed and session sweep", async move {
            let mut last_sweep = tokio::time::Instant::now();
            let mut failing = false;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(follow) => {}
                    () = wake.notified() => {}
                }
                let Some(this) = weak.upgrade() else {
                    return Ok(());
                };
                let followed = this.follow_log().await;
                let swept = match last_sweep.elapsed() >= sweep {
                    true => {
                        last_sweep = tokio::time::Instant::now();
                        this.sweep().await.map(Some)
                    }
                    false => Ok(None),
                };
                // Said once per outage, not once a second.
                match followed {
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %ErrorChain(&e), "reading the revocation log failed; the revocations held in memory still apply");
                    }
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("reading the revocation log again");
                    }
                    _ => {}
                }
                match swept {
                    Ok(Some(n)) if n > 0 => tracing::debug!(deleted = n, "swept expired sessions"),
                    Err(e) => tracing::warn!(error = %ErrorChain(&e), "sweeping sessions failed"),
                    _ => {}
                }
            }
        });
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// How many revoked sessions are held in memory.
    pub fn revoked_len(&self) -> usize {
        self.revoked.len()
    }
}

impl Revocations for Sessions {
    fn is_revoked(&self, claims: &Claims) -> bool {
        if self.revoked.is_empty() || claims.iss != self.issuer {
            return false;
        }
        claims
            .sid
            .as_deref()
            .is_some_and(|sid| self.revoked.contains_key(sid))
    }
}
