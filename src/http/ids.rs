//! Random bytes for the ids passgate writes on every request (`X-Request-Id`,
//! a new `traceparent`), from a fast generator each thread seeds once from
//! the operating system.
//!
//! These ids only need to be unique, not unpredictable: they name a request
//! in logs and traces and grant nothing. Secrets (salts, refresh tokens, MFA
//! codes, session ids) keep coming from `rand::random`, a cryptographic
//! generator; drawn from it, each of these ids took twice as long to make
//! (criterion `request_id/new` and `trace/start`, docs/benchmarks.md).

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// `N` random bytes for an id.
pub fn random_id<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    IDS.with_borrow_mut(|rng| rng.fill_bytes(&mut bytes));
    bytes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_differ_within_a_thread_and_across_threads() {
        let mut seen: HashSet<[u8; 16]> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(seen.len(), 1000, "an id repeated within one thread");
        let others: Vec<[u8; 16]> = std::thread::spawn(|| (0..1000).map(|_| random_id()).collect())
            .join()
            .expect("the other thread draws its ids");
        for id in others {
            assert!(seen.insert(id), "two threads drew the same id");
        }
    }
}
