//! HTTP building blocks shared by the router, the gate and the proxy:
//! path normalisation, header hygiene, body types and JSON error responses.

pub mod activity;
pub mod body;
pub mod connection;
pub mod forwarded;
pub mod headers;
pub mod host;
pub mod hygiene;
pub mod ids;
pub mod path;
pub mod read_timeout;
pub mod request_head;
pub mod response;
pub mod trace;
pub mod written;
