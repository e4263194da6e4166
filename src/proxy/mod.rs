//! Forwarding to upstreams: pooled clients for every route (passgate's own
//! HTTP/1.1 pool, hyper-util's for the rest, rustls for `https` upstreams),
//! round-robin balancing with passive health, deadlines mapped to 502/504,
//! and WebSocket pass-through (HTTP/1.1 upgrades, and HTTP/2 extended
//! CONNECT in `websocket_h2.rs`).

pub mod error;
mod failure;
pub mod forward;
mod upgrade;
pub mod websocket_h2;

pub use error::ProxyError;
pub use forward::{Proxy, Target};

// The client and the balancer live below the gate and the router
// (`crate::upstream`); the old paths stay for callers outside the crate.
pub use crate::upstream::{UpstreamClient, balance, client};
