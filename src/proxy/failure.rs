//! Why a forwarded request got no answer, from either upstream pool, and
//! which [`ProxyError`] (so which status and log line) that is.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::ProxyError;
use crate::config::UpstreamTarget;
use crate::http::body::BoxError;
use crate::http::read_timeout::Progress;
use crate::upstream::http1::SendError;

/// Why a request got no answer, from either pool: connecting failed, or
/// something after.
pub(super) enum Failure {
    Connect(BoxError),
    /// Reading the client's body failed (passgate's own pool says so).
    ClientBody(BoxError),
    Other(BoxError),
}

impl From<hyper_util::client::legacy::Error> for Failure {
    fn from(e: hyper_util::client::legacy::Error) -> Self {
        if e.is_connect() {
            Failure::Connect(Box::new(e))
        } else {
            Failure::Other(Box::new(e))
        }
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Connect(e) => Failure::Connect(e),
            SendError::Request(e) => Failure::Other(Box::new(e)),
            SendError::ClientBody(e) => Failure::ClientBody(e),
        }
    }
}

/// What went wrong, told from the error, the body's state and the deadlines.
pub(super) fn classify(
    e: Failure,
    connect_timeout: Duration,
    target: &UpstreamTarget,
    exceeded: Option<&(u64, Arc<AtomicBool>)>,
    progress: &Progress,
) -> ProxyError {
    if progress.timed_out() {
        return ProxyError::ClientBodyTimeout;
    }
    if let Some((limit, flag)) = exceeded
        && flag.load(Ordering::Acquire)
    {
        return ProxyError::BodyTooLarge(*limit);
    }
    let upstream = target.url.to_string();
    let e = match e {
        Failure::Connect(e) => {
            if source_chain(&*e).any(|s| {
                s.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
            }) {
                return ProxyError::ConnectTimeout {
                    upstream,
                    timeout: connect_timeout,
                    source: e,
                };
            }
            return ProxyError::Connect {
                upstream,
                source: e,
            };
        }
        Failure::ClientBody(e) => return ProxyError::ClientBody(e),
        Failure::Other(e) => e,
    };
    // A failure reading the client's body surfaces as a user body error.
    if source_chain(&*e).any(|s| {
        s.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_user())
    }) {
        return ProxyError::ClientBody(e);
    }
    ProxyError::Upstream {
        upstream,
        source: e,
    }
}

fn source_chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}
