//! passgate's own token issuer: signing keys (where they live, which one
//! signs, the JWKS that publishes them, rotation) and token issuance.
//!
//! - `keys.rs`: one key (parse, generate, sign);
//! - `key_source.rs`: where keys live ([`key_source::KeySource`]), rotation;
//!   `folder.rs` (PEM files) and `stored.rs` (the store, sealed) implement it;
//! - `ring.rs`: the keys in use, which one signs, the JWKS;
//! - `live.rs`: the ring of a running gateway, following its source;
//! - `issue.rs`, `pool.rs`: signing tokens.

pub mod folder;
pub mod issue;
pub mod key_source;
pub mod keys;
pub mod live;
pub mod pool;
pub mod ring;
pub mod stored;
