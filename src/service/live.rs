//! The request handler as connections hold it: [`App`] points at the
//! current [`Handler`], and a reload (`gateway/reload.rs`) points it at the
//! next one in one step.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use super::Handler;
use crate::http::body::ResponseBody;
use crate::http::connection::ConnContext;
use crate::proxy::Proxy;
use crate::telemetry::metrics::Metrics;

/// The request handler every connection shares. What a request reads from
/// the config sits in one [`Handler`], which a reload replaces in one step
/// (`gateway/reload.rs`): a request takes the current one when it starts and
/// keeps it to the end, so requests in flight finish on the config they began on.
#[derive(Debug)]
pub struct App {
    live: ArcSwap<Handler>,
    /// Metrics for `/metrics` and the status page, and readiness (kept across reloads).
    pub metrics: Arc<Metrics>,
}

impl App {
    /// A handler to start with.
    pub fn new(handler: Handler) -> Self {
        Self {
            metrics: Arc::clone(&handler.metrics),
            live: ArcSwap::from_pointee(handler),
        }
    }

    /// The handler new requests use.
    pub fn current(&self) -> Arc<Handler> {
        self.live.load_full()
    }

    /// New requests use `handler` from now on; requests in flight keep theirs.
    pub fn replace(&self, handler: Handler) {
        self.live.store(Arc::new(handler));
    }

    /// Answer one request from `peer` (on a connection with `context`) with
    /// the current handler. The future is the handler's own: it owns what it
    /// uses and is boxed by the server without another wrapper around it.
    pub fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        proxy: Arc<Proxy>,
        context: ConnContext,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static + use<> {
        Handler::handle(self.current(), req, peer, proxy, context)
    }
}

impl crate::admin::Live for App {
    fn current(&self) -> Arc<dyn crate::admin::Observed> {
        self.current()
    }
}
