//! Fetching a JSON document (a JWKS or an OpenID discovery document) through
//! the shared upstream client, with a deadline and a size cap, and reading
//! how long it may be cached.

use std::time::Duration;

use http::header::{ACCEPT, CACHE_CONTROL};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};

use crate::http::body::RequestBody;
use crate::proxy::UpstreamClient;

const MAX_DOCUMENT: usize = 1 << 20;

/// A fetched document.
#[derive(Debug)]
pub struct Fetched {
    /// The body.
    pub body: bytes::Bytes,
    /// `Cache-Control: max-age`, when given.
    pub max_age: Option<Duration>,
}

/// GET `uri` and return its body when the answer is 200.
pub async fn get(client: &UpstreamClient, uri: &Uri, timeout: Duration) -> Result<Fetched, String> {
    let req = Request::get(uri.clone())
        .header(ACCEPT, "application/json")
        .body(RequestBody::empty())
        .map_err(|e| e.to_string())?;
    let work = async {
        let resp = client
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:#}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("answered {}", resp.status()));
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
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok(Fetched { body, max_age })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
