//! Sending one request upstream and turning the answer (or the failure) into
//! the client's response.
//!
//! The caller has already cleaned the headers (`service.rs`); this module
//! picks the upstream, writes the URI and `Host`, applies the deadlines,
//! retries a body-less request on another upstream when the first refused the
//! connection, and strips hop-by-hop headers from the response.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::{HOST, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::UpstreamClient;
use super::error::ProxyError;
use super::upgrade;
use crate::config::{HostHeader, UpstreamTarget};
use crate::http::body::{RequestBody, ResponseBody};
use crate::http::headers::strip_hop_by_hop;
use crate::router::Route;
use crate::telemetry::ErrorChain;

/// A request ready to go upstream, headers already cleaned.
pub struct Outgoing {
    /// Method, headers and extensions (the URI is rewritten here).
    pub parts: http::request::Parts,
    /// The client's body.
    pub body: Incoming,
    /// Path (normalised, prefix stripped when configured) and query, as the upstream gets them.
    pub path_and_query: String,
    /// The `Host` / `:authority` the client asked for.
    pub client_host: Option<HeaderValue>,
    /// The client side of a WebSocket upgrade, when the request is one.
    pub upgrade: Option<OnUpgrade>,
    /// The request id, for logs.
    pub request_id: String,
}

/// Which upstream answered, for the access log.
pub type UpstreamLabel = Option<String>;

/// Forwards requests through the shared client.
#[derive(Debug, Clone)]
pub struct Proxy {
    client: UpstreamClient,
}

impl Proxy {
    /// A proxy over `client`.
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }

    /// The shared upstream client (also used to fetch remote key sets).
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// Forward `out` to one of `route`'s upstreams.
    pub async fn forward(
        &self,
        route: &Route,
        out: Outgoing,
    ) -> (Result<Response<ResponseBody>, ProxyError>, UpstreamLabel) {
        let Outgoing {
            mut parts,
            body,
            path_and_query,
            client_host,
            upgrade,
            request_id,
        } = out;
        let balancer = &route.balancer;
        let mut index = balancer.pick();

        // A body-less request can be sent again if the first upstream refuses
        // it; keep a copy of its head only when there is another upstream to try.
        let retryable =
            http_body::Body::is_end_stream(&body) && upgrade.is_none() && balancer.len() > 1;
        let limit = route
            .config
            .max_body
            .map(|n| (n, Arc::new(AtomicBool::new(false))));
        let exceeded = limit.as_ref().map(|(n, flag)| (*n, Arc::clone(flag)));
        let mut body = Some(RequestBody::streaming(body, limit));

        parts.version = Version::HTTP_11;
        match (route.config.host_header, &client_host) {
            (HostHeader::Client, Some(host)) => {
                parts.headers.insert(HOST, host.clone());
            }
            _ => {
                parts.headers.remove(HOST);
            }
        }

        let mut head = parts;
        loop {
            let target = balancer.target(index);
            let uri = match upstream_uri(target, &path_and_query) {
                Ok(uri) => uri,
                Err(e) => return (Err(e), Some(target.url.clone())),
            };
            let spare = retryable.then(|| head.clone());
            let mut req = Request::from_parts(head, body.take().unwrap_or_else(RequestBody::empty));
            *req.uri_mut() = uri;
            if route.config.host_header == HostHeader::Upstream
                && let Ok(v) = HeaderValue::from_str(target.authority.as_str())
            {
                req.headers_mut().insert(HOST, v);
            }

            let sent = tokio::time::timeout(
                self.client.response_timeout,
                self.client.client.request(req),
            )
            .await;
            let label = Some(target.url.clone());
            let result = match sent {
                Ok(Ok(resp)) => Ok(resp),
                Err(_) => Err(ProxyError::ResponseTimeout {
                    upstream: target.url.clone(),
                    timeout: self.client.response_timeout,
                }),
                Ok(Err(e)) => Err(self.classify(e, target, exceeded.as_ref())),
            };
            match result {
                Ok(resp) => return (Ok(finish(resp, upgrade, request_id)), label),
                Err(e @ (ProxyError::Connect { .. } | ProxyError::ConnectTimeout { .. })) => {
                    balancer.mark_down(index);
                    tracing::warn!(request_id, upstream = %target.url, error = %ErrorChain(&e), "upstream marked down");
                    match (balancer.pick_other(index), spare) {
                        (Some(other), Some(spare_head)) => {
                            index = other;
                            head = spare_head;
                            continue;
                        }
                        _ => return (Err(e), label),
                    }
                }
                Err(e) => return (Err(e), label),
            }
        }
    }

    fn classify(
        &self,
        e: hyper_util::client::legacy::Error,
        target: &UpstreamTarget,
        exceeded: Option<&(u64, Arc<AtomicBool>)>,
    ) -> ProxyError {
        if let Some((limit, flag)) = exceeded
            && flag.load(Ordering::Acquire)
        {
            return ProxyError::BodyTooLarge(*limit);
        }
        let upstream = target.url.clone();
        if e.is_connect() {
            if source_chain(&e).any(|s| {
                s.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
            }) {
                return ProxyError::ConnectTimeout {
                    upstream,
                    timeout: self.client.connect_timeout,
                    source: e,
                };
            }
            return ProxyError::Connect {
                upstream,
                source: e,
            };
        }
        // A failure reading the client's body surfaces as a user body error.
        if source_chain(&e).any(|s| {
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

/// `scheme://authority` + the upstream's base path + the request's path and query.
fn upstream_uri(target: &UpstreamTarget, path_and_query: &str) -> Result<Uri, ProxyError> {
    let pq = if target.base_path.is_empty() {
        PathAndQuery::try_from(path_and_query)
    } else {
        PathAndQuery::try_from(format!("{}{}", target.base_path, path_and_query))
    }
    .map_err(http::Error::from)?;
    Ok(Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(pq)
        .build()?)
}

/// The upstream's response, cleaned for the client; a 101 joins the two upgraded connections.
fn finish(
    mut resp: Response<Incoming>,
    upgrade: Option<OnUpgrade>,
    request_id: String,
) -> Response<ResponseBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    match (switching, upgrade) {
        (true, Some(client)) => {
            let upstream = hyper::upgrade::on(&mut resp);
            upgrade::splice(client, upstream, request_id);
            strip_hop_by_hop(resp.headers_mut(), true);
        }
        _ => strip_hop_by_hop(resp.headers_mut(), false),
    }
    resp.map(ResponseBody::upstream)
}
