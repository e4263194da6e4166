//! passgate's own token issuer: signing keys (generated, rotated, published as a JWKS).

pub mod issue;
pub mod keys;
pub mod pool;
