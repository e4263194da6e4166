//! Attack protection for `/oauth/token` and `/oauth/revoke` (docs/security.md, "The token endpoint").
//!
//! - `client_ip.rs`: which IP a request counts under (peer, trusted
//!   `X-Forwarded-For`, trusted `auth0-forwarded-for`), IPv6 by /64;
//! - `limiter.rs`: governor keyed limiters (per IP; per identifier and IP);
//! - `rules.rs`: when a brute-force block or a suspicious-IP throttle holds;
//! - `denied.rs`: the refusals and their wire errors;
//! - `unblock.rs`: lifting blocks (the `unblock` command, password changes).
//!
//! The order is cheap to dear: the per-IP request limit (memory), then the
//! identifier+IP rate (memory), then blocks and throttles (one store read),
//! and only then argon2. Counters and blocks live in the store (durable,
//! read through on every attempt, so `passgate unblock` reaches a running
//! gateway); request limiters live in memory and are swept on a timer.

mod client_ip;
mod denied;
mod limiter;
pub mod route_limit;
mod rules;
mod unblock;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderMap;
use ipnet::IpNet;
use sha2::{Digest, Sha256};

pub use client_ip::{AUTH0_FORWARDED_FOR, ClientAuth, IpKey, effective_ip, network_ip};
pub use denied::Denied;
use limiter::SHARDS as SWEEP_STEPS;
pub use limiter::{KeyedLimiter, Limited, retry_after_secs};
pub use route_limit::{Consumer, RouteLimiter, Verdict};
pub use rules::{Refusal, ip_throttled, pair_blocked};
pub use unblock::{CounterKey, lift_after_password_change, unblock, unblock_ip};

use crate::clock::SharedClock;
use crate::config::{AttackProtectionConfig, ClientConfig, Config};
use crate::store::protect::ProtectStore;
use crate::tasks::Supervisor;
use crate::telemetry::ErrorChain;

/// The pair key used for every IP in account-lockout mode.
pub const ANY_IP: &str = "*";

/// The token endpoint's protector: limiters in memory, counters in the store.
pub struct Protect {
    counters: Counters,
    config: AttackProtectionConfig,
    trusted_proxies: Vec<IpNet>,
    requests: KeyedLimiter<IpKey>,
    user_ip: KeyedLimiter<([u8; 16], IpKey)>,
    store: Arc<dyn ProtectStore>,
    clock: SharedClock,
}

impl std::fmt::Debug for Protect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protect")
            .field("requests", &self.requests)
            .field("user_ip", &self.user_ip)
            .finish_non_exhaustive()
    }
}

/// How often each defence acted, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Token-endpoint requests refused by the per-IP request limit.
    pub rate_limited: std::sync::atomic::AtomicU64,
    /// Attempts refused by the same-user-same-IP rate.
    pub user_ip_throttled: std::sync::atomic::AtomicU64,
    /// Attempts refused because the (identifier, IP) pair is blocked.
    pub brute_force_refused: std::sync::atomic::AtomicU64,
    /// Attempts refused because the IP is throttled.
    pub suspicious_ip_refused: std::sync::atomic::AtomicU64,
    /// Brute-force blocks started.
    pub blocks: std::sync::atomic::AtomicU64,
    /// Suspicious-IP throttles started.
    pub throttles: std::sync::atomic::AtomicU64,
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A login attempt that passed the checks; hand it back with its outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    identifier: String,
    ip: IpAddr,
    ip_key: String,
    pair_ip: String,
    had_streak: bool,
}

impl Protect {
    /// A protector configured by `[attack_protection]` and `server.trusted_proxies`.
    pub fn new(config: &Config, store: Arc<dyn ProtectStore>, clock: SharedClock) -> Self {
        let c = config.attack_protection.clone();
        Self {
            counters: Counters::default(),
            requests: KeyedLimiter::new(c.request_limit, c.request_limit, c.request_period),
            user_ip: KeyedLimiter::new(c.user_ip_burst, c.user_ip_limit, c.user_ip_period),
            trusted_proxies: config.server.trusted_proxies.clone(),
            config: c,
            store,
            clock,
        }
    }

    /// Sweep idle limiter keys and expired counters every `sweep_interval`,
    /// for as long as the protector lives.
    pub fn start_sweeper(self: &Arc<Self>, tasks: &Supervisor) {
        let weak = Arc::downgrade(self);
        let every = self.config.sweep_interval;
        tasks.spawn("attack-protection sweep", async move {
            loop {
                tokio::time::sleep(every).await;
                // One shard per step, yielding between steps, so a sweep of
                // many keys never holds the worker for long.
                for step in 0..SWEEP_STEPS {
                    let Some(p) = weak.upgrade() else {
                        return Ok(());
                    };
                    p.requests.sweep_step(step);
                    p.user_ip.sweep_step(step);
                    drop(p);
                    tokio::task::yield_now().await;
                }
                let Some(p) = weak.upgrade() else {
                    return Ok(());
                };
                let (now, expiry) = (p.clock.now(), p.expiry());
                let store = Arc::clone(&p.store);
                drop(p);
                let swept = store.sweep_protect(now, now - expiry).await;
                if let Err(e) = swept {
                    tracing::warn!(target: "passgate::protect", error = %ErrorChain(&e), "sweeping attack-protection counters failed");
                }
            }
        });
    }

    /// How often each defence acted.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The IP a request counts under (see `client_ip.rs`).
    pub fn client_ip(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        client: &ClientConfig,
        auth: ClientAuth,
    ) -> IpAddr {
        effective_ip(self.network_ip(peer, headers), headers, client, auth)
    }

    /// The connection's client address (peer, or trusted `X-Forwarded-For`).
    pub fn network_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        network_ip(peer, headers, &self.trusted_proxies)
    }

    /// Take one token-endpoint request from `ip`'s quota.
    pub fn check_request(&self, ip: IpAddr) -> Result<(), Denied> {
        self.requests.check(&IpKey::of(ip)).map(drop).map_err(|limited| {
            bump(&self.counters.rate_limited);
            tracing::debug!(target: "passgate::protect", event = "request_rate_limited", ip = %ip, retry_after = limited.retry_after);
            self.limited(limited)
        })
    }

    /// Everything a password attempt must pass before hashing: the
    /// identifier+IP rate, the pair's brute-force block, the IP's throttle.
    /// `key` is the account the login name resolved to, or the name's key.
    pub async fn before_login(&self, key: &CounterKey, ip: IpAddr) -> Result<Attempt, Denied> {
        let identifier = key.as_str().to_string();
        let key = IpKey::of(ip);
        let digest: [u8; 16] = Sha256::digest(identifier.as_bytes())[..16]
            .try_into()
            .unwrap_or_default();
        if let Err(limited) = self.user_ip.check(&(digest, key)) {
            bump(&self.counters.user_ip_throttled);
            tracing::info!(target: "passgate::protect", event = "user_ip_throttled", identifier = %identifier, ip = %ip, retry_after = limited.retry_after);
            return Err(self.limited(limited));
        }
        let ip_key = key.to_string();
        let pair_ip = if self.config.account_lockout {
            ANY_IP.to_string()
        } else {
            ip_key.clone()
        };
        let state = {
            let store = &self.store;
            let mut s = store
                .attempt_state(&identifier, &pair_ip)
                .await
                .map_err(Denied::Store)?;
            if pair_ip != ip_key {
                s.ip_tat = store
                    .attempt_state(&identifier, &ip_key)
                    .await
                    .map_err(Denied::Store)?
                    .ip_tat;
            }
            s
        };
        let now = self.clock.now();
        if self.config.brute_force
            && let Some(until) = pair_blocked(
                state.streak,
                now,
                self.config.brute_force_threshold.get(),
                self.expiry(),
            )
        {
            bump(&self.counters.brute_force_refused);
            tracing::debug!(target: "passgate::protect", event = "brute_force_refused", identifier = %identifier, ip = %pair_ip, until);
            return Err(Denied::Refused(Refusal::BruteForce { until }));
        }
        if self.ip_counted(ip)
            && let Some(until) = ip_throttled(
                state.ip_tat,
                now,
                self.config.suspicious_ip_threshold.get(),
                self.regain(),
            )
        {
            bump(&self.counters.suspicious_ip_refused);
            tracing::debug!(target: "passgate::protect", event = "suspicious_ip_refused", ip = %ip_key, until);
            return Err(Denied::Refused(Refusal::SuspiciousIp { until }));
        }
        Ok(Attempt {
            had_streak: state.streak.is_some_and(|s| s.failures > 0),
            identifier,
            ip,
            ip_key,
            pair_ip,
        })
    }

    /// Count a failed attempt; logs the block or throttle it starts.
    pub async fn login_failed(&self, attempt: Attempt) -> Result<(), Denied> {
        let now = self.clock.now();
        let (threshold, expiry) = (self.config.brute_force_threshold.get(), self.expiry());
        let (ip_threshold, regain) = (self.config.suspicious_ip_threshold.get(), self.regain());
        let count_pair = self.config.brute_force;
        let count_ip = self.ip_counted(attempt.ip);
        let a = &attempt;
        let failures = match count_pair {
            true => Some(
                self.store
                    .add_login_failure(&a.identifier, &a.pair_ip, now, now - expiry)
                    .await
                    .map_err(Denied::Store)?,
            ),
            false => None,
        };
        let tat = match count_ip {
            true => Some(
                self.store
                    .add_ip_failure(&a.ip_key, now, regain)
                    .await
                    .map_err(Denied::Store)?,
            ),
            false => None,
        };
        if failures == Some(threshold) {
            bump(&self.counters.blocks);
            tracing::warn!(
                target: "passgate::protect",
                event = "brute_force_block",
                identifier = %attempt.identifier,
                ip = %attempt.pair_ip,
                failures = threshold,
                until = now + expiry,
                "blocked after consecutive failed logins"
            );
        }
        if let Some(until) = ip_throttled(tat, now, ip_threshold, regain)
            && ip_throttled(tat.map(|t| t - regain), now, ip_threshold, regain).is_none()
        {
            bump(&self.counters.throttles);
            tracing::warn!(
                target: "passgate::protect",
                event = "suspicious_ip_throttle",
                identifier = %attempt.identifier,
                ip = %attempt.ip_key,
                until,
                "IP throttled after failed logins across identifiers"
            );
        }
        Ok(())
    }

    /// A successful attempt ends the pair's failure streak.
    pub async fn login_succeeded(&self, attempt: Attempt) -> Result<(), Denied> {
        if !attempt.had_streak {
            return Ok(());
        }
        self.store
            .clear_login_failures(&attempt.identifier, Some(&attempt.pair_ip))
            .await
            .map_err(Denied::Store)?;
        Ok(())
    }

    fn limited(&self, limited: Limited) -> Denied {
        Denied::Limited {
            limited,
            reset: self.clock.now() + limited.retry_after as i64,
        }
    }

    fn ip_counted(&self, ip: IpAddr) -> bool {
        self.config.suspicious_ip
            && !self
                .config
                .suspicious_ip_allowlist
                .iter()
                .any(|n| n.contains(&ip))
    }

    fn expiry(&self) -> i64 {
        self.config.brute_force_expiry.as_secs() as i64
    }

    fn regain(&self) -> i64 {
        self.config.suspicious_ip_regain.as_secs().max(1) as i64
    }
}
