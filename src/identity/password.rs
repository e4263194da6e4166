//! Password hashing and verification.
//!
//! argon2id with the configured parameters (default m = 19 MiB, t = 2, p = 1).
//! Every verification runs on a dedicated pool of threads, one per core, that
//! run at the lowest scheduling priority (nice 19): with nothing else to do
//! they use every core, and when requests need the CPU the proxy's threads
//! come first. The pool (`pool.rs`) bounds the work in flight and the checks
//! waiting for it, so a login flood queues here instead of starving the
//! proxy, and is refused (503) beyond the queue's bound. An
//! unknown user is verified against a dummy hash with the same parameters, so
//! unknown user and wrong password cost the same. bcrypt hashes (from an Auth0
//! import) are verified as they are and replaced by argon2id after the first
//! successful login; an argon2 hash with older parameters is re-hashed likewise.
//! Every check is answered no sooner than the verification floor
//! (`floor.rs`), so bcrypt users, argon2 users and unknown users take the
//! same time.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::floor::{Floor, SAMPLES, bcrypt_cost, median_time};
use super::pool::{Pool, PoolError, PoolStats};
use crate::config::DEFAULT_QUEUE_PER_WORKER;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The result of checking a password.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// The password matched.
    pub ok: bool,
    /// A new hash to store (the old one was bcrypt or had old parameters).
    pub rehash: Option<String>,
}

/// Hashes and verifies passwords on a bounded pool.
#[derive(Debug, Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    params: HashParams,
    pool: Arc<Pool>,
    dummy: Arc<str>,
    floor: Arc<Floor>,
}

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher with `params`, verifying at most `workers` passwords at once
    /// with the default queue ([`DEFAULT_QUEUE_PER_WORKER`] per worker).
    pub fn new(params: HashParams, workers: usize) -> Result<Self, HashError> {
        let queue = workers.max(1).saturating_mul(DEFAULT_QUEUE_PER_WORKER);
        Self::bounded(params, workers, queue)
    }

    /// A hasher with `params`, verifying at most `workers` passwords at once
    /// while at most `queue` more wait; beyond that checks are refused.
    pub fn bounded(params: HashParams, workers: usize, queue: usize) -> Result<Self, HashError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| HashError(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let dummy_password: [u8; 16] = rand::random();
        let dummy = hash_with(&argon, &dummy_password)?;
        Ok(Self {
            argon,
            params,
            pool: Arc::new(
                Pool::new(workers, queue)
                    .map_err(|e| HashError(format!("starting a hashing thread: {e}")))?,
            ),
            dummy: dummy.into(),
            floor: Arc::new(Floor::default()),
        })
    }

    /// Answer every [`Hasher::verify`] no sooner than `floor` after the check
    /// starts (zero: as soon as it is done).
    pub fn with_floor(mut self, floor: Duration) -> Self {
        self.floor = Arc::new(Floor::fixed(floor));
        self
    }

    /// Measure on the calling thread (it blocks: run it before serving) the
    /// median time of an argon2 check with these parameters and of a bcrypt
    /// check at each of `bcrypt_costs`, and answer every [`Hasher::verify`]
    /// no sooner than the slowest of them plus a margin. bcrypt costs met
    /// later raise the floor after their first check.
    pub fn with_measured_floor(mut self, bcrypt_costs: &[u32]) -> Self {
        let mut slowest = median_time(SAMPLES, || {
            let _ = self.check_argon(&self.dummy, "calibration");
        });
        for &cost in bcrypt_costs {
            let Ok(hash) = bcrypt::hash("calibration", cost) else {
                continue;
            };
            let took = median_time(SAMPLES, || {
                let _ = bcrypt::verify("not it", &hash);
            });
            slowest = slowest.max(took);
        }
        self.floor = Arc::new(Floor::measured(slowest, bcrypt_costs));
        self
    }

    /// The current verification floor.
    pub fn floor(&self) -> Duration {
        self.floor.get()
    }

    #[cfg(test)]
    pub(super) fn floor_state(&self) -> &Floor {
        &self.floor
    }

    /// What the hashing pool did (checks run, dropped unrun, refused).
    pub fn stats(&self) -> &PoolStats {
        self.pool.stats()
    }

    /// Checks admitted and not yet done (running or waiting for a worker).
    pub fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }

    /// Workers for the machine: one per core.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }

    /// The parameters new hashes get.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hash on the calling thread (for the CLI).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.argon, password.as_bytes())
    }

    /// Hash on the pool.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let this = self.clone();
        self.pool
            .run(move || this.hash_blocking(&password))
            .await
            .map_err(|e| HashError(e.to_string()))?
            .0
    }

    /// Check `password` against `stored` on the pool; `None` (unknown user)
    /// costs the same as a wrong password and never matches. The answer comes
    /// no sooner than the floor after a worker took the check up; the worker
    /// is free while it waits. [`PoolError::Full`] when the queue is full (no
    /// work done, answered at once).
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<Checked, PoolError> {
        let this = self.clone();
        let (checked, started) = self
            .pool
            .run(move || this.verify_blocking(stored.as_deref(), &password))
            .await?;
        // Wait out the floor without holding a worker.
        tokio::time::sleep_until(started + self.floor.get()).await;
        Ok(checked)
    }

    /// Check on the calling thread.
    pub fn verify_blocking(&self, stored: Option<&str>, password: &str) -> Checked {
        let fail = Checked {
            ok: false,
            rehash: None,
        };
        let Some(stored) = stored else {
            let _ = self.check_argon(&self.dummy, password);
            return fail;
        };
        if stored.starts_with("$2") {
            let ok = match bcrypt_cost(stored).filter(|c| self.floor.wants(*c)) {
                Some(cost) => {
                    let start = std::time::Instant::now();
                    let ok = bcrypt::verify(password, stored).unwrap_or(false);
                    self.floor.learn(cost, start.elapsed());
                    ok
                }
                None => bcrypt::verify(password, stored).unwrap_or(false),
            };
            if !ok {
                return fail;
            }
            return Checked {
                ok,
                rehash: self.hash_blocking(password).ok(),
            };
        }
        match self.check_argon(stored, password) {
            Some(true) => {
                let current = PasswordHash::new(stored).is_ok_and(|h| self.is_current(&h));
                let rehash = if current {
                    None
                } else {
                    self.hash_blocking(password).ok()
                };
                Checked { ok: true, rehash }
            }
            Some(false) => fail,
            None => {
                // Not a hash we can read: spend the same time, then refuse.
                let _ = self.check_argon(&self.dummy, password);
                fail
            }
        }
    }

    fn check_argon(&self, stored: &str, password: &str) -> Option<bool> {
        let parsed = PasswordHash::new(stored).ok()?;
        Some(
            self.argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    }

    fn is_current(&self, hash: &PasswordHash<'_>) -> bool {
        if hash.algorithm.as_str() != "argon2id" {
            return false;
        }
        let Ok(p) = Params::try_from(hash) else {
            return false;
        };
        p.m_cost() == self.params.memory_kib
            && p.t_cost() == self.params.iterations
            && p.p_cost() == self.params.parallelism
    }
}

fn hash_with(argon: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    argon
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashParams {
        HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn argon_round_trip_and_unknown_user() {
        let h = Hasher::new(cheap(), 1).unwrap_or_else(|e| panic!("{e}"));
        let stored = h.hash_blocking("correct horse").unwrap_or_default();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.verify_blocking(Some(&stored), "correct horse"),
            Checked {
                ok: true,
                rehash: None
            }
        );
        assert!(!h.verify_blocking(Some(&stored), "wrong").ok);
        assert!(!h.verify_blocking(None, "anything").ok);
        assert!(!h.verify_blocking(Some("garbage"), "anything").ok);
    }

    #[test]
    fn bcrypt_is_verified_then_rehashed() {
        let h = Hasher::new(cheap(), 1).unwrap_or_else(|e| panic!("{e}"));
        let old = bcrypt::hash("imported pw", 4).unwrap_or_default();
        let checked = h.verify_blocking(Some(&old), "imported pw");
        assert!(checked.ok);
        let new = checked.rehash.unwrap_or_default();
        assert!(new.starts_with("$argon2id$"));
        assert!(h.verify_blocking(Some(&new), "imported pw").ok);
        assert!(!h.verify_blocking(Some(&old), "nope").ok);
    }

    #[test]
    fn old_parameters_are_rehashed() {
        let old = Hasher::new(
            HashParams {
                memory_kib: 32,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let new = Hasher::new(cheap(), 1).unwrap_or_else(|e| panic!("{e}"));
        let stored = old.hash_blocking("pw").unwrap_or_default();
        let checked = new.verify_blocking(Some(&stored), "pw");
        assert!(checked.ok);
        assert!(checked.rehash.is_some_and(|h| h.contains("m=64")));
    }
}
