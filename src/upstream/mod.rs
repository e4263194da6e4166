//! What every layer that talks to an upstream shares: the pooled client
//! (`client.rs`: keep-alive pool, rustls, connect deadline; `http1.rs`:
//! passgate's own HTTP/1.1 pool for forwarded requests) and round-robin
//! balancing with passive health (`balance.rs`). It sits below the gate (which
//! fetches remote key sets with the client), the proxy and the router (whose
//! routes each hold a balancer).

pub mod balance;
pub mod client;
pub mod health;
pub mod http1;

pub use balance::Balancer;
pub use client::UpstreamClient;
