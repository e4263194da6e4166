//! HTTP building blocks shared by the router, the gate and the proxy:
//! path normalisation, header hygiene, body types and JSON error responses.

pub mod body;
pub mod headers;
pub mod host;
pub mod hygiene;
pub mod path;
pub mod response;
