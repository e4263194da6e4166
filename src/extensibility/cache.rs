//! `api.cache`: values an action keeps between logins, per process (shared by
//! every script runtime of the pool), each with a time to live.
//!
//! Bounded: at most [`MAX_ENTRIES`] keys of at most [`MAX_VALUE`] bytes; a
//! full cache first drops expired entries, then refuses new keys (the
//! action's `set` still reports success, as Auth0's does on eviction).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys the cache holds at most.
pub const MAX_ENTRIES: usize = 4096;
/// Longest value kept, in bytes of JSON.
pub const MAX_VALUE: usize = 16 * 1024;
/// Longest time to live (Auth0's limit: one day).
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The shared cache.
#[derive(Debug, Default)]
pub struct ScriptCache {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl ScriptCache {
    /// The JSON value under `key`, unless it expired.
    pub fn get(&self, key: &str) -> Option<String> {
        let map = self.entries.lock().ok()?;
        let (value, until) = map.get(key)?;
        (Instant::now() < *until).then(|| value.clone())
    }

    /// Keep `value` (JSON) under `key` for `ttl_ms` milliseconds; zero removes it.
    pub fn set(&self, key: String, value: String, ttl_ms: f64) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if ttl_ms <= 0.0 || !ttl_ms.is_finite() {
            map.remove(&key);
            return;
        }
        if value.len() > MAX_VALUE {
            return;
        }
        let now = Instant::now();
        let ttl = Duration::from_millis(ttl_ms as u64).min(MAX_TTL);
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        map.insert(key, (value, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_and_zero_removes() {
        let c = ScriptCache::default();
        c.set("a".into(), "1".into(), 60_000.0);
        assert_eq!(c.get("a").as_deref(), Some("1"));
        c.set("a".into(), "null".into(), 0.0);
        assert_eq!(c.get("a"), None);
        c.set("b".into(), "2".into(), 1.0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get("b"), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = ScriptCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.set(format!("k{i}"), "1".into(), 60_000.0);
        }
        assert_eq!(c.entries.lock().map(|m| m.len()).unwrap_or(0), MAX_ENTRIES);
        c.set("big".into(), "x".repeat(MAX_VALUE + 1), 60_000.0);
        assert_eq!(c.get("big"), None);
    }
}
