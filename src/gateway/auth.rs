//! Everything that exists only when passgate is its own issuer (`[issuer]`):
//! the signing keys, the store, the sessions, and from them the
//! authorization server. Built once, as one [`AuthStack`], so "is there an
//! issuer?" is asked in one place. Where the signing keys live is chosen
//! here too ([`key_source`]), for the gateway and `passgate keys rotate`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::clock::SharedClock;
use crate::config::{self, Config, IssuerConfig, StoreConfig};
use crate::extensibility::Scripts;
use crate::gate::Gate;
use crate::gate::issuers::IssuerKeys;
use crate::gate::keys::{KeySet, VerifyKey};
use crate::gate::typ::AccessTyp;
use crate::identity::password::{HashParams, Hasher};
use crate::mfa::Mfa;
use crate::oauth::{AuthParts, AuthServer};
use crate::protect::Protect;
use crate::sessions::Sessions;
use crate::store::seal::StoreKey;
use crate::store::{self, Backend};
use crate::tasks::{Supervisor, run_blocking};
use crate::telemetry::metrics::Metrics;
use crate::tokens;
use crate::tokens::folder::FolderKeys;
use crate::tokens::key_source::KeySource;
use crate::tokens::live::{LiveKeys, REFRESH_EVERY};
use crate::tokens::ring::KeyRing;

/// How often the sessions follow the revocation log, and sweep expired rows.
const FOLLOW_REVOCATIONS: Duration = Duration::from_secs(1);
const SWEEP_SESSIONS: Duration = Duration::from_secs(600);
/// How often expired MFA transactions are dropped.
const SWEEP_MFA: Duration = Duration::from_secs(600);

/// passgate as its own issuer: what lives as long as the process (keys,
/// store, sessions, password hasher, attack protection, second factors,
/// signing pool), ready to become the authorization server of each config
/// generation ([`AuthStack::server`]). A reload keeps all of it.
pub(super) struct AuthStack {
    keys: Arc<LiveKeys>,
    /// passgate's own issuer as the gate trusts it, shared by every config
    /// generation; its keys follow the ring.
    own: Arc<IssuerKeys>,
    store: Arc<dyn Backend>,
    sessions: Arc<Sessions>,
    hasher: Hasher,
    protect: Arc<Protect>,
    mfa: Arc<Mfa>,
    signing: tokens::pool::SignPool,
    clock: SharedClock,
}

impl AuthStack {
    /// Open the store and its key, load (or generate) the signing keys,
    /// check they sign and start following their source under `tasks`;
    /// record the token-type cut-over, load the revoked sessions and start
    /// following the revocation log under `tasks`; start the password
    /// hasher (with its time floor), attack protection and second factors
    /// (their sweepers under `tasks`) and the signing pool.
    pub(super) async fn open(
        config: &Config,
        issuer: &IssuerConfig,
        clock: &SharedClock,
        tasks: &Supervisor,
    ) -> anyhow::Result<Self> {
        let store = store::open(&config.store)
            .await
            .with_context(|| config.store.backend.describe())?;
        let store_key = Arc::new(
            StoreKey::load(&config.store.encryption_key)
                .context("store.encryption_key_file / encryption_key_env")?,
        );
        let source = key_source(&config.store, issuer, &store, &store_key);
        let keys = LiveKeys::open(Arc::clone(&source), issuer.algorithm, Arc::clone(clock))
            .await
            .with_context(|| format!("issuer.signing_keys: {}", source.describe()))?;
        self_test(&keys.snapshot(), clock.now())?;
        // Own tokens must be typed at+jwt once the legacy window closes (gate/typ.rs).
        let longest = config.apis.iter().map(|a| a.token_lifetime.as_secs());
        let longest = i64::try_from(longest.max().unwrap_or(0)).unwrap_or(i64::MAX);
        let access_typ = AccessTyp::load(store.as_ref(), clock.now(), longest)
            .await
            .context("recording the access-token type cut-over")?;
        // The gate asks the sessions whether a token's `sid` was revoked.
        let sessions = Arc::new(
            Sessions::load(store.clone(), issuer.url.clone(), Arc::clone(clock))
                .await
                .context("loading revoked sessions")?,
        );
        sessions.start_background(tasks, FOLLOW_REVOCATIONS, SWEEP_SESSIONS);
        let keys_changed = Arc::new(tokio::sync::Notify::new());
        listen_for_announcements(config, &sessions, &keys_changed, tasks)?;
        let hasher = start_hasher(config, &store).await?;
        let protect = Arc::new(Protect::new(config, store.clone(), Arc::clone(clock)));
        protect.start_sweeper(tasks);
        let mfa = Arc::new(Mfa::new(
            store.clone(),
            store_key,
            Arc::clone(clock),
            config.mfa.clone(),
            mfa_label(config),
        )?);
        mfa.start_sweeper(tasks, SWEEP_MFA);
        let keys = Arc::new(keys);
        let own = Arc::new(
            IssuerKeys::fixed(issuer.url.clone(), own_key_set(&keys.snapshot()))
                .with_access_typ(access_typ),
        );
        start_key_refresh(tasks, &keys, &own, keys_changed);
        Ok(Self {
            keys,
            own,
            store,
            sessions,
            hasher,
            protect,
            mfa,
            signing: tokens::pool::SignPool::for_machine()
                .context("starting the signing threads")?,
            clock: Arc::clone(clock),
        })
    }

    /// The store (the status page reads it).
    pub(super) fn store(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.store)
    }

    /// The signing keys (the status page shows them).
    pub(super) fn keys(&self) -> &Arc<LiveKeys> {
        &self.keys
    }

    /// Read the key source now (`passgate reload`): the gate, the signer
    /// and the JWKS use what it holds. On error the keys held stay.
    pub(super) async fn refresh_keys(&self) -> anyhow::Result<()> {
        let own = &self.own;
        self.keys
            .refresh(|ring| own.replace(own_key_set(ring)))
            .await
            .with_context(|| format!("issuer.signing_keys: {}", self.keys.source().describe()))?;
        self.keys.announce_signer();
        Ok(())
    }

    /// The sessions, which the gate asks about revoked `sid`s.
    pub(super) fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// passgate's own issuer as the gate trusts it: its keys, held in
    /// memory and replaced when the key ring changes.
    pub(super) fn own_issuer(&self) -> Arc<IssuerKeys> {
        Arc::clone(&self.own)
    }

    /// The authorization server of one config generation: `config`'s
    /// clients, APIs, realms and discovery, its compiled `scripts`, `gate`,
    /// on the parts this stack keeps.
    pub(super) fn server(
        &self,
        config: &Config,
        gate: &Arc<Gate>,
        scripts: Option<Arc<Scripts>>,
        metrics: &Arc<Metrics>,
    ) -> Option<Arc<AuthServer>> {
        AuthServer::new(AuthParts {
            config: config.clone(),
            keys: self.keys.ring().clone(),
            store: self.store.clone(),
            sessions: Arc::clone(&self.sessions),
            protect: Arc::clone(&self.protect),
            hasher: self.hasher.clone(),
            mfa: Arc::clone(&self.mfa),
            scripts,
            metrics: Arc::clone(metrics),
            gate: Arc::clone(gate),
            clock: Arc::clone(&self.clock),
            signing: self.signing.clone(),
        })
        .map(Arc::new)
    }
}

/// With PostgreSQL, other instances (and the CLI) announce revocations:
/// read the log when they do, rather than at the next poll. The poll stays,
/// for when the announcements' connection is down.
fn listen_for_announcements(
    config: &Config,
    sessions: &Arc<Sessions>,
    keys_changed: &Arc<tokio::sync::Notify>,
    tasks: &Supervisor,
) -> anyhow::Result<()> {
    use crate::store::postgres::{Connector, listen};
    let config::StoreBackend::Postgres(settings) = &config.store.backend else {
        return Ok(());
    };
    let connector = Connector::new(settings).context("store.url: the announcements' connection")?;
    let sessions = Arc::downgrade(sessions);
    let keys_changed = Arc::clone(keys_changed);
    tasks.spawn("store announcements", async move {
        listen::listen(connector, move |announced| {
            let (revocations, keys) = match announced {
                listen::Announcement::Revocation => (true, false),
                listen::Announcement::Keys => (false, true),
                listen::Announcement::Reconnected => (true, true),
                listen::Announcement::Other(_) => (false, false),
            };
            if revocations && let Some(s) = sessions.upgrade() {
                s.wake();
            }
            if keys {
                keys_changed.notify_one();
            }
        })
        .await;
        Ok(())
    });
    Ok(())
}

/// The password hasher with its time floor (fixed, or measured from the
/// store's bcrypt costs).
async fn start_hasher(config: &Config, store: &Arc<dyn Backend>) -> anyhow::Result<Hasher> {
    let pw = &config.passwords;
    let params = HashParams {
        memory_kib: pw.memory_kib,
        iterations: pw.iterations,
        parallelism: pw.parallelism,
    };
    let hasher = Hasher::bounded(params, pw.workers, pw.queue)?;
    let hasher = match pw.verify_floor {
        config::VerifyFloor::Fixed(floor) => hasher.with_floor(floor),
        config::VerifyFloor::Auto => {
            let costs = store.bcrypt_costs().await.context("reading bcrypt costs")?;
            run_blocking(move || hasher.with_measured_floor(&costs))
                .await
                .context("measuring password checks")?
        }
    };
    tracing::info!(
        floor_ms = hasher.floor().as_millis() as u64,
        "password checks are answered no sooner than this"
    );
    Ok(hasher)
}

/// Compile the configured Rules and Actions on their own threads; a script
/// that does not compile stops the start with every problem named.
pub(super) async fn start_scripts(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<Arc<Scripts>>> {
    let (x, m) = (config.extensibility.clone(), Arc::clone(metrics));
    let started = run_blocking(move || Scripts::start_metered(&x, &m))
        .await
        .context("starting the script threads")?;
    match started {
        Ok(scripts) => {
            if let Some(s) = &scripts {
                tracing::info!(
                    rules = config.extensibility.rules.len(),
                    actions = config.extensibility.actions.len(),
                    workers = s.stats().memory.len(),
                    "rules and actions compiled"
                );
            }
            Ok(scripts.map(Arc::new))
        }
        Err(problems) => anyhow::bail!("the scripts do not compile:\n  {}", problems.join("\n  ")),
    }
}

/// The service name authenticator apps show: the issuer's host.
fn mfa_label(config: &Config) -> String {
    config
        .issuer
        .as_ref()
        .and_then(|i| i.url.parse::<::http::Uri>().ok())
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| "passgate".to_string())
}

/// Where passgate's own signing keys live, for the gateway and for
/// `passgate keys rotate`: the one place that chooses. On SQLite, the folder
/// `[issuer] signing_keys` (config.md). On PostgreSQL, the store, sealed
/// with the store key, so every instance signs with the same keys.
pub fn key_source(
    store_config: &StoreConfig,
    issuer: &IssuerConfig,
    store: &Arc<dyn Backend>,
    seal: &Arc<StoreKey>,
) -> Arc<dyn KeySource> {
    match &store_config.backend {
        config::StoreBackend::Sqlite { .. } => {
            Arc::new(FolderKeys::new(issuer.signing_keys.clone()))
        }
        config::StoreBackend::Postgres(_) => Arc::new(crate::tokens::stored::StoreKeys::new(
            Arc::clone(store) as Arc<dyn crate::store::keys::KeyStore>,
            Arc::clone(seal),
        )),
    }
}

/// The gate's view of passgate's own keys: every key of the ring.
fn own_key_set(ring: &KeyRing) -> KeySet {
    KeySet::new(
        ring.keys()
            .iter()
            .map(|k| VerifyKey::new(Some(k.key.kid.clone()), k.key.alg, k.key.decoding.clone())),
    )
}

/// Read the key source again every [`REFRESH_EVERY`], and at once when
/// `changed` is told (PostgreSQL announces a new key), until shutdown (or
/// until the keys are dropped), telling the gate first; log the signing key
/// each time another one takes over.
fn start_key_refresh(
    tasks: &Supervisor,
    keys: &Arc<LiveKeys>,
    own: &Arc<IssuerKeys>,
    changed: Arc<tokio::sync::Notify>,
) {
    let (keys, own) = (Arc::downgrade(keys), Arc::downgrade(own));
    tasks.spawn("signing key refresh", async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(REFRESH_EVERY) => {}
                () = changed.notified() => {}
            }
            let (Some(keys), Some(own)) = (keys.upgrade(), own.upgrade()) else {
                return Ok(());
            };
            keys.refresh_logged(|ring| own.replace(own_key_set(ring)))
                .await;
            keys.announce_signer();
        }
    });
}

/// Sign and verify once with the signing key, so a broken crypto setup fails
/// at start and not on the first login.
fn self_test(ring: &KeyRing, now: i64) -> anyhow::Result<()> {
    let key = ring.signer(now);
    let jwt = key
        .sign_jwt(
            tokens::issue::ACCESS_TOKEN_TYP,
            &serde_json::json!({"self_test": true}),
        )
        .with_context(|| format!("the signing key {} cannot sign", key.kid))?;
    let (message, sig) = jwt.rsplit_once('.').context("self-test token")?;
    let ok = jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key.decoding, key.alg)
        .context("verification self-test failed")?;
    anyhow::ensure!(
        ok,
        "the signing key {} does not verify its own signature",
        key.kid
    );
    Ok(())
}
