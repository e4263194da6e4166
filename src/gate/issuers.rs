//! Every issuer whose tokens the gate accepts, with its keys.
//!
//! Local keys (`jwks_file`, `public_key_file`) are loaded at start;
//! passgate's own follow its key ring (`tokens/live.rs` calls
//! [`IssuerKeys::replace`] before a new ring is used). Remote ones (`jwks_url`, or discovery from the issuer URL) are
//! fetched at start, refreshed in the background (every `jwks_refresh`, sooner
//! when `Cache-Control: max-age` says so, never more often than
//! `jwks_min_refresh`), refetched when a token names an unknown `kid` (again
//! at most once per `jwks_min_refresh`: a negative cache), and kept when a
//! refresh fails (stale-if-error, logged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Uri;
use jsonwebtoken::Algorithm;
use tokio::time::Instant;

use super::fetch::{self, KeyFetchError};
use super::keys::{KeySet, VerifyKey};
use super::typ::AccessTyp;
use crate::config::{GateConfig, KeySource, TrustedIssuerConfig};
use crate::tasks::Supervisor;
use crate::telemetry::ErrorChain;
use crate::upstream::UpstreamClient;

/// Where a remote issuer's keys are fetched from.
#[derive(Debug, Clone)]
enum RemoteSource {
    Jwks(Uri),
    Discovery(Uri),
}

#[derive(Debug)]
struct Remote {
    source: RemoteSource,
    algorithms: Vec<Algorithm>,
    client: UpstreamClient,
    last_attempt: Mutex<Option<Instant>>,
    tried: std::sync::atomic::AtomicBool,
    /// Fetches that succeeded and failed, for `/metrics`.
    fetched: [std::sync::atomic::AtomicU64; 2],
    fetching: tokio::sync::Mutex<()>,
    min_refresh: Duration,
    refresh: Duration,
    timeout: Duration,
}

/// One issuer and its current keys.
#[derive(Debug)]
pub struct IssuerKeys {
    /// The exact `iss`.
    pub issuer: String,
    /// Read by every request without a lock; replaced whole.
    keys: ArcSwap<KeySet>,
    remote: Option<Remote>,
    access_typ: Option<AccessTyp>,
}

impl IssuerKeys {
    /// An issuer with a fixed key set.
    pub fn fixed(issuer: String, keys: KeySet) -> Self {
        Self {
            issuer,
            keys: ArcSwap::from_pointee(keys),
            remote: None,
            access_typ: None,
        }
    }

    /// Take only access tokens by `rule` (passgate's own issuer, whose ID
    /// tokens share the keys).
    pub fn with_access_typ(mut self, rule: AccessTyp) -> Self {
        self.access_typ = Some(rule);
        self
    }

    /// The `typ` rule, for passgate's own issuer.
    pub fn access_typ(&self) -> Option<&AccessTyp> {
        self.access_typ.as_ref()
    }

    /// Key-set fetches of a remote issuer so far: (succeeded, failed);
    /// `None` for an issuer with fixed keys.
    pub fn fetches(&self) -> Option<(u64, u64)> {
        let r = self.remote.as_ref()?;
        let n = |i: usize| r.fetched[i].load(std::sync::atomic::Ordering::Relaxed);
        Some((n(0), n(1)))
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Use `keys` from now on (a remote issuer's fetch, passgate's own
    /// ring after a rotation). Requests under way keep the set they read.
    /// A key the new set no longer holds is withdrawn: tokens it verified
    /// leave the verified-token cache when next used, and are refused.
    pub fn replace(&self, keys: KeySet) {
        let old = self.keys.swap(Arc::new(keys));
        let withdrawn = old.withdraw_missing_from(&self.current());
        if withdrawn > 0 {
            tracing::info!(
                issuer = %self.issuer,
                withdrawn,
                "keys withdrawn: tokens they signed are refused from now on"
            );
        }
    }

    /// The key for a token header; an unknown `kid` of a remote issuer triggers
    /// one refetch (unless one happened within `jwks_min_refresh`).
    pub async fn find(&self, kid: Option<&str>, alg: &str) -> Option<Arc<VerifyKey>> {
        if let Some(key) = self.current().find(kid, alg) {
            return Some(key);
        }
        let remote = self.remote.as_ref()?;
        let _one_at_a_time = remote.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.current().find(kid, alg) {
            return Some(key);
        }
        if !remote.may_fetch() {
            return None;
        }
        let _ = self.fetch_now(remote).await;
        self.current().find(kid, alg)
    }

    /// Fetch and install the remote keys; on failure keep the old ones.
    /// Returns the `max-age` the server sent, if any.
    async fn fetch_now(&self, remote: &Remote) -> Result<Option<Duration>, KeyFetchError> {
        remote.mark_attempt();
        let fetched = remote.fetch(&self.issuer).await;
        remote
            .tried
            .store(true, std::sync::atomic::Ordering::Release);
        remote.fetched[usize::from(fetched.is_err())]
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match fetched {
            Ok((keys, notes, max_age)) => {
                for note in notes {
                    tracing::warn!(issuer = %self.issuer, "{note}");
                }
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched signing keys");
                self.replace(keys);
                Ok(max_age)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %ErrorChain(&e), kept = self.current().len(), "could not fetch signing keys; keeping the ones held");
                Err(e)
            }
        }
    }

    /// Fetch now, then keep refreshing until the issuer is dropped.
    fn start_refresh(self: &Arc<Self>, tasks: &Supervisor) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tasks.spawn("issuer key refresh", async move {
            loop {
                let Some(this) = weak.upgrade() else {
                    return Ok(());
                };
                let Some(remote) = this.remote.as_ref() else {
                    return Ok(());
                };
                let outcome = {
                    let _one_at_a_time = remote.fetching.lock().await;
                    this.fetch_now(remote).await
                };
                let wait = next_wait(outcome, remote.min_refresh, remote.refresh);
                drop(this);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// How long the background refresh sleeps after a fetch: `max-age` when the
/// server sent one, else `refresh`; never longer than `refresh` nor shorter
/// than `min_refresh` (which wins when the two are configured the wrong way
/// round, instead of panicking in `clamp`).
fn next_wait(
    outcome: Result<Option<Duration>, KeyFetchError>,
    min_refresh: Duration,
    refresh: Duration,
) -> Duration {
    match outcome {
        Ok(max_age) => max_age.unwrap_or(refresh).min(refresh).max(min_refresh),
        Err(_) => min_refresh,
    }
}

impl Remote {
    fn may_fetch(&self) -> bool {
        match self.last_attempt.lock() {
            Ok(last) => last.is_none_or(|t| t.elapsed() >= self.min_refresh),
            Err(_) => true,
        }
    }

    fn mark_attempt(&self) {
        if let Ok(mut last) = self.last_attempt.lock() {
            *last = Some(Instant::now());
        }
    }

    async fn fetch(
        &self,
        issuer: &str,
    ) -> Result<(KeySet, Vec<String>, Option<Duration>), KeyFetchError> {
        let jwks_uri = match &self.source {
            RemoteSource::Jwks(uri) => uri.clone(),
            RemoteSource::Discovery(uri) => {
                fetch::discover_jwks_uri(&self.client, uri, self.timeout, issuer).await?
            }
        };
        let doc = fetch::document(&self.client, &jwks_uri, self.timeout).await?;
        let (keys, notes) =
            KeySet::from_jwks(&doc.body, &self.algorithms).map_err(|what| KeyFetchError::Keys {
                url: jwks_uri.to_string(),
                what,
            })?;
        Ok((keys, notes, doc.max_age))
    }
}

/// All accepted issuers by exact `iss`.
#[derive(Debug, Default)]
pub struct Issuers {
    by_iss: HashMap<String, Arc<IssuerKeys>>,
}

impl Issuers {
    /// The issuer of this exact `iss`.
    pub fn get(&self, iss: &str) -> Option<&Arc<IssuerKeys>> {
        self.by_iss.get(iss)
    }

    /// Every issuer, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<IssuerKeys>> {
        self.by_iss.values()
    }

    /// Add an issuer (replacing one with the same `iss`).
    pub fn insert(&mut self, keys: IssuerKeys) {
        self.insert_shared(Arc::new(keys));
    }

    /// Add an issuer that outlives this set (passgate's own, whose keys
    /// are replaced in place and which every config generation shares).
    pub fn insert_shared(&mut self, keys: Arc<IssuerKeys>) {
        self.by_iss.insert(keys.issuer.clone(), keys);
    }

    /// Load the trusted issuers of the config; remote ones start fetching in
    /// the background. Problems with local files are errors.
    pub fn load(
        &mut self,
        trusted: &[TrustedIssuerConfig],
        gate: &GateConfig,
        client: &UpstreamClient,
    ) -> anyhow::Result<()> {
        for (i, t) in trusted.iter().enumerate() {
            let path = format!("trusted_issuers[{i}]");
            let remote = |source| Remote {
                source,
                algorithms: t.algorithms.clone(),
                client: client.clone(),
                last_attempt: Mutex::new(None),
                tried: std::sync::atomic::AtomicBool::new(false),
                fetched: Default::default(),
                fetching: tokio::sync::Mutex::new(()),
                min_refresh: gate.jwks_min_refresh,
                refresh: gate.jwks_refresh,
                timeout: gate.jwks_fetch_timeout,
            };
            let issuer = match &t.source {
                KeySource::JwksFile(file) => {
                    let bytes = std::fs::read(file).map_err(|e| {
                        anyhow::anyhow!("{path}.jwks_file: cannot read {}: {e}", file.display())
                    })?;
                    let (keys, notes) = KeySet::from_jwks(&bytes, &t.algorithms).map_err(|e| {
                        anyhow::anyhow!("{path}.jwks_file: {}: {e}", file.display())
                    })?;
                    for note in notes {
                        tracing::warn!(issuer = %t.issuer, "{note}");
                    }
                    if keys.is_empty() {
                        anyhow::bail!(
                            "{path}.jwks_file: {} holds no usable signing key",
                            file.display()
                        );
                    }
                    IssuerKeys::fixed(t.issuer.clone(), keys)
                }
                KeySource::PublicKeyFile(file) => {
                    let bytes = std::fs::read(file).map_err(|e| {
                        anyhow::anyhow!(
                            "{path}.public_key_file: cannot read {}: {e}",
                            file.display()
                        )
                    })?;
                    let keys = KeySet::from_public_pem(&bytes, &t.algorithms).map_err(|e| {
                        anyhow::anyhow!("{path}.public_key_file: {}: {e}", file.display())
                    })?;
                    IssuerKeys::fixed(t.issuer.clone(), keys)
                }
                KeySource::JwksUrl(uri) => IssuerKeys {
                    issuer: t.issuer.clone(),
                    keys: ArcSwap::from_pointee(KeySet::default()),
                    remote: Some(remote(RemoteSource::Jwks(uri.clone()))),
                    access_typ: None,
                },
                KeySource::Discovery(uri) => IssuerKeys {
                    issuer: t.issuer.clone(),
                    keys: ArcSwap::from_pointee(KeySet::default()),
                    remote: Some(remote(RemoteSource::Discovery(uri.clone()))),
                    access_typ: None,
                },
            };
            self.insert(issuer);
        }
        Ok(())
    }

    /// Start the background refresh of every remote issuer and wait (up to
    /// `wait`) for their first fetch, so a gateway that just started knows its keys.
    pub async fn start(&self, tasks: &Supervisor, wait: Duration) {
        let remotes: Vec<&Arc<IssuerKeys>> = self
            .by_iss
            .values()
            .filter(|i| i.remote.is_some())
            .collect();
        for issuer in &remotes {
            issuer.start_refresh(tasks);
        }
        let deadline = Instant::now() + wait;
        for issuer in remotes {
            let tried = |i: &IssuerKeys| {
                i.remote
                    .as_ref()
                    .is_none_or(|r| r.tried.load(std::sync::atomic::Ordering::Acquire))
            };
            while !tried(issuer) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_wait_is_bounded_and_never_panics() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(Ok(None), s(30), s(3600)), s(3600));
        assert_eq!(next_wait(Ok(Some(s(60))), s(30), s(3600)), s(60));
        assert_eq!(next_wait(Ok(Some(s(1))), s(30), s(3600)), s(30));
        assert_eq!(next_wait(Ok(Some(s(99_999))), s(30), s(3600)), s(3600));
        let failed = || {
            Err(KeyFetchError::Keys {
                url: "https://t.example/jwks".into(),
                what: "not a JWKS document".into(),
            })
        };
        assert_eq!(next_wait(failed(), s(30), s(3600)), s(30));
        // jwks_refresh shorter than jwks_min_refresh: the minimum wins.
        assert_eq!(next_wait(Ok(None), s(30), s(1)), s(30));
        assert_eq!(next_wait(Ok(Some(s(5))), s(30), s(1)), s(30));
    }
}
