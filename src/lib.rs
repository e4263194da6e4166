//! passgate: a TLS gateway with a built-in OAuth 2.0 password grant.
//!
//! A request's path through the crate: [`server`] accepts and terminates TLS,
//! [`service`] normalises the path and picks a handler via [`router`],
//! [`gate`] checks the bearer token, [`proxy`] forwards upstream. passgate's
//! own endpoints live in [`oauth`]. [`Gateway`] (in [`gateway`], the one
//! place everything is wired) ties them together for `main` and for tests.
//! Each top-level module imports only from the ones below it
//! (docs/architecture.md, "Modules").

pub mod admin;
pub mod clock;
pub mod config;
pub mod extensibility;
pub mod gate;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod mfa;
pub mod oauth;
pub mod protect;
pub mod proxy;
pub mod router;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod upstream;

pub use gateway::{Gateway, Reloader, shutdown_signal};
