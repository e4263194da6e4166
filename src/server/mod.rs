//! The TLS listener: certificates, the accept loop, and each connection's life
//! (handshake deadline, HTTP/1.1 + HTTP/2, idle timeout, graceful shutdown).

pub mod activity;
pub mod conn;
pub mod listener;
pub mod tls;
