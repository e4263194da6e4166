//! The signing keys of a running gateway: read from the key source at start
//! (making the first key when the source holds none) and again every
//! [`REFRESH_EVERY`] and on reload, so a key added by `passgate keys rotate`
//! (on this instance or another one sharing the source) is published within
//! seconds, without a restart. The ring is swapped whole ([`LiveRing`]);
//! the signer, the JWKS and discovery answers and the gate read snapshots.
//!
//! The source is published exactly as it holds: a key removed from it is
//! no longer published (nor accepted by the gate) after the next refresh.
//! When a refresh fails, the keys held keep serving and the failure is
//! logged once (and its end).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::key_source::{KeySource, KeySourceError, LoadError, StoredKey, new_key};
use super::ring::{KeyRing, LiveRing};
use crate::clock::SharedClock;
use crate::tasks::run_blocking;
use crate::telemetry::ErrorChain;

/// How often a running gateway reads its key source again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// A gateway's signing keys, following their source.
#[derive(Debug)]
pub struct LiveKeys {
    ring: LiveRing,
    source: Arc<dyn KeySource>,
    clock: SharedClock,
    /// One refresh at a time (the timer and a reload may meet).
    refreshing: tokio::sync::Mutex<()>,
    /// The `kid` last logged as the signing key.
    announced: Mutex<String>,
    /// The failure last logged, until a refresh succeeds again.
    failing: Mutex<Option<String>>,
}

impl LiveKeys {
    /// Read the keys of `source`; when it holds none, make one of `alg`
    /// that signs at once (exactly one, when several instances start on one
    /// empty source).
    pub async fn open(
        source: Arc<dyn KeySource>,
        alg: Algorithm,
        clock: SharedClock,
    ) -> Result<LiveKeys, LoadError> {
        let mut keys = source.signing_keys().await?;
        if keys.is_empty() {
            keys = first_key(source.as_ref(), alg, clock.now()).await?;
        }
        let ring = KeyRing::build(&keys, None)?;
        let signing = ring.signer(clock.now()).kid.clone();
        tracing::info!(
            keys = ring.keys().len(),
            signing = %signing,
            source = %source.describe(),
            "signing keys loaded"
        );
        Ok(LiveKeys {
            ring: LiveRing::new(ring),
            source,
            clock,
            refreshing: tokio::sync::Mutex::new(()),
            announced: Mutex::new(signing),
            failing: Mutex::new(None),
        })
    }

    /// The ring in use (clones share it).
    pub fn ring(&self) -> &LiveRing {
        &self.ring
    }

    /// The ring now.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        self.ring.snapshot()
    }

    /// Where the keys come from.
    pub fn source(&self) -> &Arc<dyn KeySource> {
        &self.source
    }

    /// Read the source again. When it holds other keys (or other dates)
    /// than the ring, build the new ring, call `before_swap` with it (the
    /// gate learns new keys before anything is signed with them), and put it
    /// in use; true then. On error the ring in use stays.
    pub async fn refresh(&self, before_swap: impl FnOnce(&KeyRing)) -> Result<bool, LoadError> {
        let _one = self.refreshing.lock().await;
        let keys = self.source.signing_keys().await?;
        let held = self.ring.snapshot();
        if held.holds_exactly(&keys) {
            return Ok(false);
        }
        let next = KeyRing::build(&keys, Some(&held))?;
        log_changes(&held, &next);
        before_swap(&next);
        self.ring.replace(Arc::new(next));
        Ok(true)
    }

    /// [`LiveKeys::refresh`] for the timer: a failure is logged when it
    /// starts (or changes), and its end once; nothing is returned.
    pub async fn refresh_logged(&self, before_swap: impl FnOnce(&KeyRing)) {
        let outcome = self.refresh(before_swap).await;
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match outcome {
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::info!(source = %self.source.describe(), "signing keys read again");
                }
            }
            Err(e) => {
                let text = ErrorChain(&e).to_string();
                if failing.as_deref() != Some(text.as_str()) {
                    tracing::error!(
                        source = %self.source.describe(),
                        error = %text,
                        kept = self.ring.snapshot().keys().len(),
                        "cannot read the signing keys; keeping the ones held"
                    );
                    *failing = Some(text);
                }
            }
        }
    }

    /// Log the signing key once each time another key starts signing.
    pub fn announce_signer(&self) {
        let ring = self.ring.snapshot();
        let key = ring.signer(self.clock.now());
        let Ok(mut announced) = self.announced.lock() else {
            return;
        };
        if *announced != key.kid {
            tracing::info!(kid = %key.kid, previous = %announced, "a new signing key signs tokens from now on");
            *announced = key.kid.clone();
        }
    }
}

/// Make the first key of an empty source; the keys the source then holds.
async fn first_key(
    source: &dyn KeySource,
    alg: Algorithm,
    now: i64,
) -> Result<Vec<StoredKey>, KeySourceError> {
    let candidate = run_blocking(move || new_key(alg, now, now))
        .await
        .map_err(KeySourceError::Task)??;
    let kid = candidate.kid.clone();
    let keys = source.first_signing_key(candidate).await?;
    if keys.iter().any(|k| k.kid == kid) {
        tracing::warn!(kid = %kid, source = %source.describe(), "generated a new signing key");
    }
    Ok(keys)
}

fn log_changes(held: &KeyRing, next: &KeyRing) {
    let has = |ring: &KeyRing, kid: &str| ring.keys().iter().any(|k| k.key.kid == kid);
    for k in next.keys().iter().filter(|k| !has(held, &k.key.kid)) {
        tracing::info!(kid = %k.key.kid, signs_from = k.signs_from, "signing key published");
    }
    for k in held.keys().iter().filter(|k| !has(next, &k.key.kid)) {
        tracing::warn!(kid = %k.key.kid, "signing key no longer in the source; no longer published");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::tokens::folder::FolderKeys;
    use crate::tokens::key_source::rotate;

    #[tokio::test]
    async fn makes_the_first_key_then_follows_the_source() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000_000);
        let source: Arc<dyn KeySource> = Arc::new(FolderKeys::new(dir.path().join("k")));
        let live = LiveKeys::open(Arc::clone(&source), Algorithm::ES256, clock.clone())
            .await
            .unwrap();
        let first = live.snapshot().signer(clock.now()).kid.clone();
        assert_eq!(live.snapshot().keys().len(), 1);
        // Nothing changed: no new ring.
        let before = live.snapshot();
        assert!(!live.refresh(|_| panic!("no change")).await.unwrap());
        assert!(Arc::ptr_eq(&before, &live.snapshot()));

        let rotated = rotate(source.as_ref(), Algorithm::ES256, clock.now(), false)
            .await
            .unwrap();
        let mut seen = Vec::new();
        assert!(live.refresh(|r| seen.push(r.keys().len())).await.unwrap());
        assert_eq!(seen, [2], "the hook saw the new ring before the swap");
        let ring = live.snapshot();
        assert_eq!(ring.keys().len(), 2, "published at once");
        assert_eq!(
            ring.signer(clock.now()).kid,
            first,
            "the old key still signs"
        );
        clock.set(rotated.signs_from);
        assert_eq!(ring.signer(clock.now()).kid, rotated.kid);
        live.announce_signer();
        assert_eq!(*live.announced.lock().unwrap(), rotated.kid);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_keys_held() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("k");
        let clock = ManualClock::new(1_000_000);
        let source: Arc<dyn KeySource> = Arc::new(FolderKeys::new(keys.clone()));
        let live = LiveKeys::open(source, Algorithm::EdDSA, clock)
            .await
            .unwrap();
        std::fs::write(keys.join("broken.pem"), "garbage").unwrap();
        assert!(live.refresh(|_| ()).await.is_err());
        live.refresh_logged(|_| ()).await;
        assert!(live.failing.lock().unwrap().is_some());
        assert_eq!(live.snapshot().keys().len(), 1);
        std::fs::remove_file(keys.join("broken.pem")).unwrap();
        live.refresh_logged(|_| ()).await;
        assert!(live.failing.lock().unwrap().is_none(), "recovered");
    }

    /// Measures (no assert on time) one refresh of an unchanged folder of
    /// three RS256 keys, the work the gateway does every 5 s:
    /// `cargo test --release --lib refresh_cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement, not a check"]
    async fn refresh_cost() {
        crate::tls::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let source: Arc<dyn KeySource> = Arc::new(FolderKeys::new(dir.path().to_path_buf()));
        for i in 0..3 {
            source
                .add_signing_key(new_key(Algorithm::RS256, i, i).unwrap())
                .await
                .unwrap();
        }
        let live = LiveKeys::open(source, Algorithm::RS256, ManualClock::new(10))
            .await
            .unwrap();
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert!(!live.refresh(|_| ()).await.unwrap());
        }
        println!("refresh of 3 unchanged RS256 keys: {:?}", t.elapsed() / n);
    }
}
