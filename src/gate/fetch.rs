//! Fetching a JSON document (a JWKS or an OpenID discovery document) through
//! the shared upstream client, with a deadline and a size cap, and reading
//! how long it may be cached.

use std::time::Duration;

use http::header::{ACCEPT, CACHE_CONTROL};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};

use crate::http::body::RequestBody;
use crate::upstream::UpstreamClient;

const MAX_DOCUMENT: usize = 1 << 20;

/// A fetched document.
#[derive(Debug)]
pub struct Fetched {
    /// The body.
    pub body: bytes::Bytes,
    /// `Cache-Control: max-age`, when given.
    pub max_age: Option<Duration>,
}

/// Why a document could not be fetched. The chain (`telemetry::ErrorChain`)
/// carries the transport's own cause.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request could not be built.
    #[error("building the request")]
    Request(#[source] http::Error),
    /// Connecting or sending failed.
    #[error("the request failed")]
    Transport(#[source] hyper_util::client::legacy::Error),
    /// The server answered, but not 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body broke off or was over the size cap.
    #[error("reading the body")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No whole answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// GET `uri` and return its body when the answer is 200.
pub async fn get(
    client: &UpstreamClient,
    uri: &Uri,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let req = Request::get(uri.clone())
        .header(ACCEPT, "application/json")
        .body(RequestBody::empty())
        .map_err(FetchError::Request)?;
    let work = async {
        let resp = client
            .client
            .request(req)
            .await
            .map_err(FetchError::Transport)?;
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let max_age = resp
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|d| d.trim().strip_prefix("max-age="))
            .find_map(|n| n.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(resp.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(FetchError::Body)?
            .to_bytes();
        Ok(Fetched { body, max_age })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

/// Why a remote issuer's keys could not be fetched; the held keys stay.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    /// The document at `url` could not be fetched.
    #[error("{url}")]
    Fetch {
        /// The document's URL.
        url: String,
        /// How the fetch failed.
        #[source]
        source: FetchError,
    },
    /// The discovery document at `url` is not JSON.
    #[error("discovery {url}: not JSON")]
    NotJson {
        /// The document's URL.
        url: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The discovery document is for another issuer or names no usable key-set URL.
    #[error("discovery {url}: {what}")]
    Discovery {
        /// The document's URL.
        url: String,
        /// What is wrong with it.
        what: String,
    },
    /// The key set at `url` is not a usable JWKS.
    #[error("{url}: {what}")]
    Keys {
        /// The key set's URL.
        url: String,
        /// What is wrong with it.
        what: String,
    },
}
