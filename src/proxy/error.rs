//! Proxy errors, each with the status it maps to and whose fault it is.
//!
//! The `Display` text and the `#[source]` chain (upstream URL, OS error) are
//! for the log, which records them under the request id; the client gets a
//! generic description from [`ProxyError::into_response`].

use std::time::Duration;

use http::{Response, StatusCode};

use crate::http::body::{BoxError, ResponseBody};
use crate::http::response::{Fault, close_connection, gateway_error};

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request body passed the route's limit.
    #[error("the request body exceeds this route's limit of {0} bytes")]
    BodyTooLarge(u64),
    /// No connection could be made (refused, unreachable, TLS failure).
    #[error("could not connect to the upstream {upstream}")]
    Connect {
        /// The upstream URL.
        upstream: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// Connecting took longer than `upstream.connect_timeout`.
    #[error("the upstream {upstream} did not accept a connection within {timeout:?}")]
    ConnectTimeout {
        /// The upstream URL.
        upstream: String,
        /// The deadline.
        timeout: Duration,
        /// The timeout as the connector reported it.
        #[source]
        source: BoxError,
    },
    /// The response headers took longer than `upstream.response_timeout`.
    #[error("the upstream {upstream} did not respond within {timeout:?}")]
    ResponseTimeout {
        /// The upstream URL.
        upstream: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The connection broke or the upstream sent something that is not HTTP.
    #[error("the upstream {upstream} failed")]
    Upstream {
        /// The upstream URL.
        upstream: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The upstream answered 101 to a request that asked for no WebSocket, or
    /// switched a WebSocket request to another protocol: nothing is spliced.
    #[error("the upstream {upstream} {reason}")]
    SwitchedProtocols {
        /// The upstream URL.
        upstream: String,
        /// What it did.
        reason: &'static str,
    },
    /// The client sent no part of its body for `server.body_read_timeout`.
    #[error("the request body stalled past the body read timeout")]
    ClientBodyTimeout,
    /// The client's body broke off while it was being forwarded.
    #[error("the client's request body failed")]
    ClientBody(#[source] BoxError),
    /// Every upstream of a route with active health checks is failing them.
    #[error("every upstream of the route is failing its health checks")]
    NoHealthyUpstream,
    /// passgate could not build the upstream request's URI.
    #[error("could not build the upstream URI")]
    UpstreamUri(#[from] http::Error),
}

impl ProxyError {
    /// The upstream failure this is, for `passgate_upstream_failures_total`;
    /// `None` for the client's faults and passgate's own.
    pub fn failure_kind(&self) -> Option<crate::telemetry::metrics::UpstreamFailure> {
        use crate::telemetry::metrics::UpstreamFailure as K;
        match self {
            ProxyError::Connect { .. } => Some(K::Connect),
            ProxyError::ConnectTimeout { .. } => Some(K::ConnectTimeout),
            ProxyError::ResponseTimeout { .. } => Some(K::ResponseTimeout),
            ProxyError::Upstream { .. } | ProxyError::SwitchedProtocols { .. } => Some(K::Protocol),
            ProxyError::BodyTooLarge(_)
            | ProxyError::ClientBodyTimeout
            | ProxyError::ClientBody(_)
            | ProxyError::NoHealthyUpstream
            | ProxyError::UpstreamUri(_) => None,
        }
    }

    /// The response the client gets: generic words, no upstream address, no
    /// OS error. One arm per variant: a new variant forces a decision.
    pub fn into_response(self) -> Response<ResponseBody> {
        match self {
            ProxyError::BodyTooLarge(_) => close_connection(gateway_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this route accepts",
                Fault::Client,
            )),
            ProxyError::Connect { .. } => gateway_error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream server could not be reached",
                Fault::Upstream,
            ),
            ProxyError::Upstream { .. } | ProxyError::SwitchedProtocols { .. } => gateway_error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the upstream server gave no valid response",
                Fault::Upstream,
            ),
            ProxyError::ConnectTimeout { .. } | ProxyError::ResponseTimeout { .. } => {
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    "the upstream server did not answer in time",
                    Fault::Upstream,
                )
            }
            ProxyError::ClientBodyTimeout => close_connection(gateway_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body was not sent in time",
                Fault::Client,
            )),
            ProxyError::ClientBody(_) => close_connection(gateway_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
                Fault::Client,
            )),
            ProxyError::NoHealthyUpstream => gateway_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "no upstream server is available",
                Fault::Upstream,
            ),
            ProxyError::UpstreamUri(_) => gateway_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
                Fault::Gateway,
            ),
        }
    }
}
