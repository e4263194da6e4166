//! The verified-token cache: a token whose signature was checked once is
//! remembered with its parsed claims, so the next request with the same token
//! costs a hash lookup instead of a signature verification.
//!
//! Bounds: at most `cache_entries` entries and about `cache_bytes` bytes;
//! past either, expired entries are swept and, if that is not enough, an
//! eighth of the entries is dropped. A background sweep removes expired
//! entries every minute. The cache can never extend a token's life: `exp` is
//! checked on every hit, and revocation is checked by the gate on every
//! request, hit or miss.
//!
//! Guards never leave this module: values are `Arc`s cloned out in one
//! expression, so no dashmap guard is held across an `.await` or while the
//! map is touched again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::claims::{Claims, IdentityHeaders};

/// A verified token's claims and the headers derived from them.
#[derive(Debug)]
pub struct Verified {
    /// The claims.
    pub claims: Claims,
    /// `X-Auth-*` values.
    pub identity: IdentityHeaders,
    bytes: u64,
}

impl Verified {
    /// Wrap claims verified for a token of `token_len` bytes.
    pub fn new(claims: Claims, token_len: usize) -> Self {
        let identity = IdentityHeaders::from_claims(&claims);
        // The payload is about 3/4 of the token; parsed, it takes a few times that.
        let bytes = (token_len as u64) * 3 + 256;
        Self {
            claims,
            identity,
            bytes,
        }
    }
}

/// The cache.
#[derive(Debug)]
pub struct TokenCache {
    map: DashMap<Box<str>, Arc<Verified>>,
    max_entries: usize,
    max_bytes: u64,
    bytes: AtomicU64,
    leeway: i64,
}

impl TokenCache {
    /// An empty cache with these bounds; `leeway` is the gate's `exp` tolerance.
    pub fn new(max_entries: usize, max_bytes: u64, leeway: i64) -> Self {
        Self {
            map: DashMap::new(),
            max_entries,
            max_bytes,
            bytes: AtomicU64::new(0),
            leeway,
        }
    }

    /// The claims of `token` if it was verified before and has not expired at `now`.
    pub fn get(&self, token: &str, now: i64) -> Option<Arc<Verified>> {
        let hit = self.map.get(token).map(|e| Arc::clone(e.value()))?;
        if now > hit.claims.exp.saturating_add(self.leeway) {
            self.remove(token);
            return None;
        }
        Some(hit)
    }

    /// Remember a verified token.
    pub fn insert(&self, token: &str, verified: Arc<Verified>, now: i64) {
        if self.map.len() >= self.max_entries
            || self.bytes.load(Ordering::Relaxed) + verified.bytes > self.max_bytes
        {
            self.sweep(now);
            if self.map.len() >= self.max_entries
                || self.bytes.load(Ordering::Relaxed) + verified.bytes > self.max_bytes
            {
                self.evict_some();
            }
        }
        let bytes = verified.bytes + token.len() as u64;
        if let Some(old) = self.map.insert(token.into(), verified) {
            self.bytes
                .fetch_sub(old.bytes + token.len() as u64, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn remove(&self, token: &str) {
        if let Some((k, v)) = self.map.remove(token) {
            self.bytes
                .fetch_sub(v.bytes + k.len() as u64, Ordering::Relaxed);
        }
    }

    /// Drop every expired entry.
    pub fn sweep(&self, now: i64) {
        let leeway = self.leeway;
        let freed = AtomicU64::new(0);
        self.map.retain(|k, v| {
            let keep = now <= v.claims.exp.saturating_add(leeway);
            if !keep {
                freed.fetch_add(v.bytes + k.len() as u64, Ordering::Relaxed);
            }
            keep
        });
        self.bytes.fetch_sub(freed.into_inner(), Ordering::Relaxed);
    }

    /// Drop every entry whose claims match `pred` (used for revocation).
    pub fn forget_where(&self, pred: impl Fn(&Claims) -> bool) {
        let freed = AtomicU64::new(0);
        self.map.retain(|k, v| {
            let keep = !pred(&v.claims);
            if !keep {
                freed.fetch_add(v.bytes + k.len() as u64, Ordering::Relaxed);
            }
            keep
        });
        self.bytes.fetch_sub(freed.into_inner(), Ordering::Relaxed);
    }

    fn evict_some(&self) {
        let target = (self.map.len() / 8).max(1);
        let mut dropped = 0usize;
        let freed = AtomicU64::new(0);
        self.map.retain(|k, v| {
            if dropped < target {
                dropped += 1;
                freed.fetch_add(v.bytes + k.len() as u64, Ordering::Relaxed);
                false
            } else {
                true
            }
        });
        self.bytes.fetch_sub(freed.into_inner(), Ordering::Relaxed);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: i64) -> Arc<Verified> {
        let payload = format!(r#"{{"iss":"i","exp":{exp},"sub":"u","scope":"a b"}}"#);
        let claims = Claims::from_json(payload.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        Arc::new(Verified::new(claims, 100))
    }

    #[test]
    fn hit_until_exp_plus_leeway_then_gone() {
        let cache = TokenCache::new(10, 1 << 20, 30);
        cache.insert("t1", verified(1_000), 900);
        assert!(cache.get("t1", 1_000).is_some());
        assert!(cache.get("t1", 1_030).is_some());
        assert!(cache.get("t1", 1_031).is_none());
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn entry_bound_holds() {
        let cache = TokenCache::new(16, 1 << 30, 0);
        for i in 0..1_000 {
            cache.insert(&format!("token-{i}"), verified(10_000), 0);
            assert!(cache.len() <= 16);
        }
    }

    #[test]
    fn byte_bound_holds_and_expired_go_first() {
        let cache = TokenCache::new(1_000_000, 10_000, 0);
        cache.insert("old", verified(5), 0);
        for i in 0..500 {
            cache.insert(&format!("token-{i}"), verified(10_000), 10);
            assert!(cache.bytes() <= 10_000 + 1_000, "bytes {}", cache.bytes());
        }
        assert!(cache.get("old", 10).is_none());
    }

    #[test]
    fn forget_where_drops_matching() {
        let cache = TokenCache::new(10, 1 << 20, 0);
        cache.insert("a", verified(100), 0);
        cache.forget_where(|c| c.sub.as_deref() == Some("u"));
        assert!(cache.get("a", 0).is_none());
    }
}
