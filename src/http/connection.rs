//! What a client connection hands each of its requests, as a request
//! extension: the transport deadlines that apply below the router (body reads,
//! tunnels, header size), the connection's place under `max_connections`,
//! which a WebSocket tunnel keeps for as long as it lives, and the client's
//! address as the forwarding headers write it, worked out once.
//!
//! The server (`server/conn.rs`) hands one [`ConnContext`] to every request
//! (`App::handle`); the proxy takes it with the request it forwards, and
//! passgate's own endpoints find it among the request's extensions (the
//! token endpoint reads its body deadline there).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, watch};

use super::forwarded::PeerHeaders;
use super::host::AcceptedHost;

/// The transport settings and connection slot of one client connection.
#[derive(Debug, Clone)]
pub struct ConnContext {
    /// The longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// A tunnel without traffic either way for this long closes.
    pub tunnel_idle_timeout: Duration,
    /// The largest request header section accepted.
    pub max_header_size: usize,
    /// The connection's place under `max_connections`.
    pub slot: ConnSlot,
    /// Turns true when the gateway shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// What the connection works out once about its client.
    pub client: Arc<ConnClient>,
}

/// What a connection works out once about its client, for all its requests.
#[derive(Debug)]
pub struct ConnClient {
    /// The client's address as the forwarding headers write it.
    pub forwarding: PeerHeaders,
    /// The `Host` its requests name, once accepted.
    pub host: AcceptedHost,
}

impl ConnClient {
    /// For a connection from `ip`.
    pub fn new(ip: IpAddr) -> Self {
        ConnClient {
            forwarding: PeerHeaders::new(ip),
            host: AcceptedHost::default(),
        }
    }
}

impl ConnContext {
    /// The context of the connection a request arrived on, if the server set one.
    pub fn of(extensions: &http::Extensions) -> Option<&ConnContext> {
        extensions.get::<ConnContext>()
    }
}

/// One connection's permit under `max_connections`; released when the last
/// clone (the connection's, and any tunnel's) is dropped.
#[derive(Debug, Clone)]
pub struct ConnSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl ConnSlot {
    /// Hold `permit` until every clone is gone.
    pub fn new(permit: OwnedSemaphorePermit) -> Self {
        Self(Arc::new(permit))
    }
}
