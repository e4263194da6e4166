//! Forwarding to upstreams: one pooled client for every route (hyper-util's
//! legacy client, rustls for `https` upstreams), round-robin balancing with
//! passive health, deadlines mapped to 502/504, and WebSocket pass-through.

pub mod balance;
pub mod client;
pub mod error;
pub mod forward;
pub mod health;
mod upgrade;

pub use client::UpstreamClient;
pub use error::ProxyError;
pub use forward::Proxy;
