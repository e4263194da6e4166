//! Proxy errors, each with the status it maps to and whose fault it is.

use std::time::Duration;

use http::{Response, StatusCode};

use crate::http::body::ResponseBody;
use crate::http::response::{Fault, close_connection, gateway_error};

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request body passed the route's limit.
    #[error("the request body exceeds this route's limit of {0} bytes")]
    BodyTooLarge(u64),
    /// No connection could be made (refused, unreachable, TLS failure).
    #[error("could not connect to the upstream {upstream}: {reason}")]
    Connect {
        /// The upstream URL.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
    /// Connecting took longer than `upstream.connect_timeout`.
    #[error("the upstream {upstream} did not accept a connection within {timeout:?}")]
    ConnectTimeout {
        /// The upstream URL.
        upstream: String,
        /// The deadline.
        timeout: Duration,
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
    #[error("the upstream {upstream} failed: {reason}")]
    Upstream {
        /// The upstream URL.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
    /// The client sent no part of its body for `server.body_read_timeout`.
    #[error("the request body stalled past the body read timeout")]
    ClientBodyTimeout,
    /// The client's body broke off while it was being forwarded.
    #[error("the client's request body failed: {0}")]
    ClientBody(String),
    /// passgate could not build the upstream request.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The response the client gets. One arm per variant: a new variant forces a decision.
    pub fn into_response(self) -> Response<ResponseBody> {
        let description = self.to_string();
        match self {
            ProxyError::BodyTooLarge(_) => close_connection(gateway_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &description,
                Fault::Client,
            )),
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => gateway_error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                &description,
                Fault::Upstream,
            ),
            ProxyError::ConnectTimeout { .. } | ProxyError::ResponseTimeout { .. } => {
                gateway_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "gateway_timeout",
                    &description,
                    Fault::Upstream,
                )
            }
            ProxyError::ClientBodyTimeout => close_connection(gateway_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &description,
                Fault::Client,
            )),
            ProxyError::ClientBody(_) => close_connection(gateway_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &description,
                Fault::Client,
            )),
            ProxyError::Internal(_) => gateway_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
                Fault::Gateway,
            ),
        }
    }
}
