//! Per-route handles, resolved once when the route table is built: recording
//! a request is an array index and an atomic add, with no label lookup, no
//! lock and no allocation.

use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::metrics::counter::Counter;

use super::LatencyHistogram;

/// The `method` label: methods grouped so the label set stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    /// GET, HEAD, OPTIONS
    Read,
    /// POST, PUT, PATCH, DELETE
    Write,
    /// Anything else (CONNECT, TRACE, extension methods).
    Other,
}

impl MethodClass {
    /// Every class, in label order.
    pub const ALL: [MethodClass; 3] = [MethodClass::Read, MethodClass::Write, MethodClass::Other];

    /// The class of `method`.
    pub fn of(method: &Method) -> MethodClass {
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => MethodClass::Read,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => MethodClass::Write,
            _ => MethodClass::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodClass::Read => "read",
            MethodClass::Write => "write",
            MethodClass::Other => "other",
        }
    }
}

/// The `code` label values: status classes.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a request could not be forwarded, as the `kind` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The connection was refused or could not be made.
    Connect,
    /// Connecting took longer than `upstream.connect_timeout`.
    ConnectTimeout,
    /// The response headers took longer than `upstream.response_timeout`.
    ResponseTimeout,
    /// The connection broke or the answer was not HTTP.
    Protocol,
}

impl UpstreamFailure {
    /// Every kind, in label order.
    pub const ALL: [UpstreamFailure; 4] = [
        UpstreamFailure::Connect,
        UpstreamFailure::ConnectTimeout,
        UpstreamFailure::ResponseTimeout,
        UpstreamFailure::Protocol,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::ResponseTimeout => "response_timeout",
            UpstreamFailure::Protocol => "protocol",
        }
    }
}

/// One route's metric handles. Cheap to clone (each handle is an `Arc`).
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub(super) requests: [[Counter; 5]; 3],
    pub(super) duration: LatencyHistogram,
    pub(super) upstream_duration: LatencyHistogram,
    pub(super) upstream_failures: [Counter; 4],
    pub(super) rate_limited: Counter,
    pub(super) unavailable: Counter,
}

impl RouteMetrics {
    /// Count one answered request and its whole time in passgate.
    pub fn request(&self, method: MethodClass, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[method as usize][class].inc();
        self.duration.observe(took);
    }

    /// The time from sending the request upstream to its response headers.
    pub fn upstream_time(&self, took: Duration) {
        self.upstream_duration.observe(took);
    }

    /// Count a request that could not be forwarded.
    pub fn upstream_failure(&self, kind: UpstreamFailure) {
        self.upstream_failures[kind as usize].inc();
    }

    /// Count a request refused by the route's rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Count a request refused because every upstream was unhealthy.
    pub fn unavailable(&self) {
        self.unavailable.inc();
    }

    /// Requests answered so far, and how many of them were 5xx.
    pub fn totals(&self) -> (u64, u64) {
        let mut all = 0;
        let mut errors = 0;
        for by_class in &self.requests {
            for (i, c) in by_class.iter().enumerate() {
                all += c.get();
                if i == 4 {
                    errors += c.get();
                }
            }
        }
        (all, errors)
    }

    /// The whole-request latency histogram.
    pub fn duration(&self) -> &LatencyHistogram {
        &self.duration
    }
}
