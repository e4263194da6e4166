//! The TLS listener: certificates, the accept loop, and each connection's life
//! (handshake deadline, HTTP/1.1 + HTTP/2, idle timeout, graceful shutdown).

pub mod conn;
mod cpus;
pub mod listen;
pub mod listener;
pub mod park;
mod watch;
pub mod workers;

// The TLS helpers and the connection's activity moved below the server
// (`crate::tls`, `crate::http::activity`) so lower layers can use them; the
// old paths stay for callers outside the crate.
pub use crate::http::activity;
pub use crate::tls;
