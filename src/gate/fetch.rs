//! Fetching a JSON document (a JWKS or an OpenID discovery document) through
//! the shared upstream client, with a deadline and a size cap, and reading
//! how long it may be cached; finding the key set through discovery; and why
//! a fetch failed, with its cause.

use std::time::Duration;

use http::header::{ACCEPT, CACHE_CONTROL};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};

use crate::config::jwa::key_url_allowed;
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

/// GET the document at `uri`; a failure names the URL.
pub async fn document(
    client: &UpstreamClient,
    uri: &Uri,
    timeout: Duration,
) -> Result<Fetched, KeyFetchError> {
    get(client, uri, timeout)
        .await
        .map_err(|source| KeyFetchError::Fetch {
            url: uri.to_string(),
            source,
        })
}

/// Read the OpenID discovery document at `uri` and return its `jwks_uri`,
/// which must be https (plain http only from loopback); the document must be
/// `issuer`'s own.
pub async fn discover_jwks_uri(
    client: &UpstreamClient,
    uri: &Uri,
    timeout: Duration,
    issuer: &str,
) -> Result<Uri, KeyFetchError> {
    let refused = |what: String| KeyFetchError::Discovery {
        url: uri.to_string(),
        what,
    };
    let doc = document(client, uri, timeout).await?;
    let meta: serde_json::Value =
        serde_json::from_slice(&doc.body).map_err(|source| KeyFetchError::NotJson {
            url: uri.to_string(),
            source,
        })?;
    same_issuer(&meta, issuer).map_err(refused)?;
    let jwks = meta
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| refused("no jwks_uri".into()))?;
    let jwks_uri = jwks
        .parse::<Uri>()
        .map_err(|_| refused(format!("jwks_uri {jwks} is not a URL")))?;
    if !key_url_allowed(&jwks_uri) {
        return Err(refused(format!(
            "jwks_uri {jwks} is not https (plain http only from loopback)"
        )));
    }
    Ok(jwks_uri)
}

/// OpenID Discovery §4.3: the document's `issuer` must be exactly the issuer
/// it was fetched for, or its keys could vouch for another issuer's tokens.
fn same_issuer(meta: &serde_json::Value, expected: &str) -> Result<(), String> {
    match meta.get("issuer").and_then(|v| v.as_str()) {
        Some(found) if found == expected => Ok(()),
        Some(found) => Err(format!(
            "the document is for issuer {found}, not {expected}"
        )),
        None => Err("the document names no issuer".into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_document_must_name_its_issuer() {
        let doc = |iss: &str| serde_json::json!({"issuer": iss, "jwks_uri": "https://x/jwks"});
        assert!(same_issuer(&doc("https://t.example/"), "https://t.example/").is_ok());
        assert!(same_issuer(&doc("https://evil.example/"), "https://t.example/").is_err());
        assert!(same_issuer(&doc("https://t.example"), "https://t.example/").is_err());
        assert!(
            same_issuer(
                &serde_json::json!({"jwks_uri": "https://x"}),
                "https://t.example/"
            )
            .is_err()
        );
    }
}
