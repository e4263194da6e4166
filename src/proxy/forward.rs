//! Sending one request upstream and turning the answer (or the failure) into
//! the client's response.
//!
//! The caller has already cleaned the headers (`service.rs`); this module
//! picks the upstream, writes the URI and `Host`, applies the deadlines (the
//! upstream's response deadline runs only while passgate is not waiting on the
//! client's body, whose own deadline is `server.body_read_timeout`),
//! retries a body-less request on another upstream when the first refused the
//! connection, and strips hop-by-hop headers from the response.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::header::{HOST, HeaderValue, TE};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::UpstreamClient;
use super::error::ProxyError;
use super::failure::{Failure, classify};
use super::upgrade;
use super::websocket_h2::{self, ExtendedConnect};
use crate::config::{HostHeader, RouteConfig, UpstreamTarget};
use crate::http::body::{RequestBody, ResponseBody};
use crate::http::connection::ConnContext;
use crate::http::headers::X_REQUEST_ID;
use crate::http::headers::{strip_hop_by_hop, switches_to_websocket};
use crate::http::read_timeout::Progress;
use crate::http::written::Written;
use crate::telemetry::ErrorChain;
use crate::telemetry::metrics::RouteMetrics;
use crate::upstream::Balancer;
use crate::upstream::health::Health;
use crate::upstream::http1::PooledBody;

/// A request ready to go upstream, headers already cleaned.
pub struct Outgoing {
    /// Method, headers and extensions (the URI is rewritten here).
    pub parts: http::request::Parts,
    /// The fields passgate adds, which `parts.headers` does not hold
    /// (`http::written`); the request id among them.
    pub written: Written,
    /// The client's body.
    pub body: Incoming,
    /// Path (normalised, prefix stripped when configured) and query, as the
    /// upstream gets them ([`upstream_path_and_query`]).
    pub path_and_query: PathAndQuery,
    /// The `Host` / `:authority` the client asked for.
    pub client_host: Option<HeaderValue>,
    /// The client side of a WebSocket upgrade, when the request is one
    /// (no other upgrade is ever forwarded).
    pub upgrade: Option<OnUpgrade>,
    /// The client connection's settings and slot (body read deadline, tunnels).
    pub context: ConnContext,
}

/// Where a request goes: the route as configured and what the router
/// compiled for it (its balancer, its upstreams' active health, its metric
/// handles).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The route's config.
    pub config: &'a RouteConfig,
    /// Round-robin over its upstreams, with passive health.
    pub balancer: &'a Balancer,
    /// Active health, with `health_check`: only passing upstreams are picked.
    pub health: Option<&'a Health>,
    /// The route's metric handles, with metrics on.
    pub metrics: Option<&'a RouteMetrics>,
}

/// Which upstream answered, for the access log.
pub type UpstreamLabel = Option<Arc<str>>;

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

    /// Forward `out` to one of the route's upstreams ([`Target`]).
    ///
    /// `out`'s fields are used where they are, not moved into locals of
    /// their own: this future lives in every proxied request's boxed
    /// handler, where each slot is copied and held (docs/benchmarks.md, the
    /// handler's size).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice (rust-lang/rust#62958)"
    )]
    pub fn forward(
        &self,
        target: Target<'_>,
        mut out: Outgoing,
    ) -> impl Future<Output = (Result<Response<ResponseBody>, ProxyError>, UpstreamLabel)> + Send
    {
        async move {
            let Target {
                config: route,
                balancer,
                ..
            } = target;
            // With active health checks, only upstreams passing them are picked.
            let health = target.health;
            let usable = |i: usize| health.is_none_or(|h| h.is_healthy(i));
            let mut index = match health {
                None => balancer.pick(),
                Some(_) => match balancer.pick_where(usable) {
                    Some(i) => i,
                    None => {
                        if let Some(m) = target.metrics {
                            m.unavailable();
                        }
                        return (Err(ProxyError::NoHealthyUpstream), None);
                    }
                },
            };
            let metrics = target.metrics;

            // A body-less request can be sent again if the first upstream refuses
            // it; keep a copy of its head only when there is another upstream to try.
            let retryable = http_body::Body::is_end_stream(&out.body)
                && out.upgrade.is_none()
                && balancer.len() > 1;
            let limit = route
                .max_body
                .map(|n| (n, Arc::new(AtomicBool::new(false))));
            let exceeded = limit.as_ref().map(|(n, flag)| (*n, Arc::clone(flag)));
            let over_h2 = out.parts.extensions.remove::<ExtendedConnect>().is_some();
            let progress = Progress::new();
            let read_timeout = Some(out.context.body_read_timeout);
            let mut body = Some(RequestBody::streaming(
                out.body,
                limit,
                read_timeout,
                Arc::clone(&progress),
            ));
            let mut upgrade = out.upgrade.map(|client| (client, Some(out.context)));
            let written = &out.written;
            let client_host = &out.client_host;
            // For logs (a reference: a copy would take room in this future).
            let request_id = written.get(&X_REQUEST_ID).unwrap_or(&NO_REQUEST_ID);

            out.parts.version = Version::HTTP_11;

            loop {
                let target = balancer.target(index);
                let client =
                    self.client
                        .for_protocol(route.upstream_protocol, target, upgrade.is_some());
                // HTTP/1.1 without an upgrade goes through passgate's own pool,
                // which takes the origin-form URI; the rest through hyper-util's.
                let http1_only = self.client.is_http1_only(client);
                let own_pool = upgrade.is_none() && http1_only;
                let uri = match upstream_uri(target, &out.path_and_query, own_pool) {
                    Ok(uri) => uri,
                    Err(e) => return (Err(e), Some(target.url.clone())),
                };
                // Boxed: it waits out the upstream's answer in this future, and
                // is there only for a body-less request with upstreams to spare.
                let spare = retryable.then(|| Box::new(out.parts.clone()));
                // Built in a block of its own, so that the request (moved into
                // the send below) takes no room in this future while it waits.
                let req = {
                    let body = body.take().unwrap_or_else(RequestBody::empty);
                    let mut req = Request::from_parts(out.parts, body);
                    *req.uri_mut() = uri;
                    // One write of `Host` (each is a lookup): the client's, the
                    // upstream's, or none, which hyper-util's pool fills in
                    // itself and passgate's own pool the way hyper-util would.
                    let host = match (route.host_header, client_host) {
                        (HostHeader::Client, Some(host)) => Some(host.clone()),
                        (HostHeader::Upstream, _) => {
                            HeaderValue::from_str(target.authority.as_str()).ok()
                        }
                        (HostHeader::Client, None) if own_pool => {
                            HeaderValue::from_str(&default_host(target)).ok()
                        }
                        (HostHeader::Client, None) => None,
                    };
                    match host {
                        Some(host) => {
                            req.headers_mut().insert(HOST, host);
                        }
                        None => {
                            req.headers_mut().remove(HOST);
                        }
                    }
                    if http1_only {
                        req.headers_mut().remove(TE);
                    }
                    // passgate's own pool writes them after the client's.
                    if !own_pool {
                        written.insert_into(req.headers_mut());
                    }
                    req
                };
                let sent_at = tokio::time::Instant::now();
                let timeout = self.client.response_timeout;
                let sent = if own_pool {
                    let sending = pin!(self.client.http1.send(target, req, written));
                    within_response_timeout(sending, &progress, timeout)
                        .await
                        .map(|r| r.map(Answer::Pooled).map_err(Failure::from))
                } else {
                    let sending = pin!(client.request(req));
                    within_response_timeout(sending, &progress, timeout)
                        .await
                        .map(|r| r.map(Answer::Legacy).map_err(Failure::from))
                };
                let label = Some(target.url.clone());
                if let (Some(m), Some(Ok(_))) = (metrics, &sent) {
                    m.upstream_time(sent_at.elapsed());
                }
                let result = match sent {
                    Some(Ok(resp)) => Ok(resp),
                    None => Err(ProxyError::ResponseTimeout {
                        upstream: target.url.to_string(),
                        timeout,
                    }),
                    Some(Err(e)) => Err(classify(
                        e,
                        self.client.connect_timeout,
                        target,
                        exceeded.as_ref(),
                        &progress,
                    )),
                };
                if let (Some(m), Err(e)) = (metrics, &result)
                    && let Some(kind) = e.failure_kind()
                {
                    m.upstream_failure(kind);
                }
                match result {
                    Ok(Answer::Pooled(resp)) => return (finish_pooled(resp, &target.url), label),
                    Ok(Answer::Legacy(resp)) => {
                        let upgrade = upgrade.take();
                        return (
                            finish(resp, upgrade, &target.url, request_id.clone(), over_h2),
                            label,
                        );
                    }
                    Err(e @ (ProxyError::Connect { .. } | ProxyError::ConnectTimeout { .. })) => {
                        balancer.mark_down(index);
                        tracing::warn!(request_id = request_id.to_str().unwrap_or("-"), upstream = %target.url, error = %ErrorChain(&e), "upstream marked down");
                        let other = match health {
                            None => balancer.pick_other(index),
                            Some(_) => balancer.pick_other_where(index, usable),
                        };
                        match (other, spare) {
                            (Some(other), Some(spare_head)) => {
                                index = other;
                                out.parts = *spare_head;
                                continue;
                            }
                            _ => return (Err(e), label),
                        }
                    }
                    Err(e) => return (Err(e), label),
                }
            }
        }
    }
}

/// The request id of a request that has none among its written fields
/// (none that `Handler` forwards).
static NO_REQUEST_ID: HeaderValue = HeaderValue::from_static("-");

/// An upstream's answer, from either pool.
enum Answer {
    Pooled(Response<PooledBody>),
    Legacy(Response<Incoming>),
}

/// The `Host` hyper-util would write: the upstream's authority, without the
/// port when it is the scheme's default.
fn default_host(target: &UpstreamTarget) -> std::borrow::Cow<'_, str> {
    let authority = &target.authority;
    let default_port = if target.scheme == http::uri::Scheme::HTTPS {
        443
    } else {
        80
    };
    match authority.port_u16() {
        Some(port) if port == default_port => authority.host().into(),
        _ => authority.as_str().into(),
    }
}

/// Wait for `response`, failing (`None`) once the upstream has kept passgate
/// waiting for `timeout`: counted from the last piece of the body it took,
/// and never while the body waits for the client. `response` is pinned by the
/// caller: taken by value, it would be held here twice (the argument's slot
/// and the pinned copy).
async fn within_response_timeout<F: Future>(
    mut response: Pin<&mut F>,
    progress: &Progress,
    timeout: Duration,
) -> Option<F::Output> {
    let mut check_at = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            biased;
            out = response.as_mut() => return Some(out),
            _ = tokio::time::sleep_until(check_at) => {
                match progress.consumer_deadline(timeout) {
                    Some(deadline) if deadline <= tokio::time::Instant::now() => return None,
                    Some(deadline) => check_at = deadline,
                    None => check_at = tokio::time::Instant::now() + timeout,
                }
            }
        }
    }
}

/// The path and query an upstream gets, before its base path: the request's
/// own (sharing its bytes) when the route leaves the path as the client sent
/// it, else `path` (normalised, the prefix stripped) with the client's query.
pub fn upstream_path_and_query(uri: &Uri, path: &str) -> Result<PathAndQuery, http::Error> {
    if let Some(pq) = uri.path_and_query()
        && pq.path() == path
    {
        return Ok(pq.clone());
    }
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    Ok(PathAndQuery::try_from(pq)?)
}

/// The upstream's base path + the request's path and query, after
/// `scheme://authority` unless `origin_form`.
fn upstream_uri(
    target: &UpstreamTarget,
    path_and_query: &PathAndQuery,
    origin_form: bool,
) -> Result<Uri, ProxyError> {
    let mut parts = http::uri::Parts::default();
    if !origin_form {
        parts.scheme = Some(target.scheme.clone());
        parts.authority = Some(target.authority.clone());
    }
    parts.path_and_query = Some(if target.base_path.is_empty() {
        path_and_query.clone()
    } else {
        PathAndQuery::try_from(format!("{}{}", target.base_path, path_and_query))
            .map_err(http::Error::from)?
    });
    Ok(Uri::from_parts(parts).map_err(http::Error::from)?)
}

/// Why a `101` to a request that asked for no upgrade is refused.
const UNASKED_SWITCH: &str = "switched protocols on a request that asked for no WebSocket";

/// A response from passgate's own pool, cleaned for the client. Such a
/// request asked for no upgrade, so a `101` is refused; dropping the
/// response closes the connection.
fn finish_pooled(
    mut resp: Response<PooledBody>,
    upstream: &str,
) -> Result<Response<ResponseBody>, ProxyError> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Err(ProxyError::SwitchedProtocols {
            upstream: upstream.to_string(),
            reason: UNASKED_SWITCH,
        });
    }
    strip_hop_by_hop(resp.headers_mut(), false);
    Ok(resp.map(ResponseBody::streamed))
}

/// The upstream's response, cleaned for the client. A `101` is accepted only
/// as the answer to a WebSocket request, switching to a WebSocket: then the
/// two upgraded connections are joined. Any other `101` is a 502, and the
/// upstream connection, which hyper never reuses after a `101`, is dropped
/// with the response. A WebSocket that came as an HTTP/2 extended CONNECT
/// (`over_h2`) is answered `200`.
fn finish(
    mut resp: Response<Incoming>,
    upgrade: Option<(OnUpgrade, Option<ConnContext>)>,
    upstream: &str,
    request_id: HeaderValue,
    over_h2: bool,
) -> Result<Response<ResponseBody>, ProxyError> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(resp.headers_mut(), false);
        return Ok(resp.map(ResponseBody::upstream));
    }
    let reason = match upgrade {
        Some((client, context)) if switches_to_websocket(resp.headers()) => {
            let upstream = hyper::upgrade::on(&mut resp);
            let request_id = request_id.to_str().unwrap_or("-").to_owned();
            upgrade::splice(client, upstream, context, request_id);
            strip_hop_by_hop(resp.headers_mut(), !over_h2);
            if over_h2 {
                websocket_h2::into_h2_answer(&mut resp);
            }
            return Ok(resp.map(ResponseBody::upstream));
        }
        Some(_) => "answered a WebSocket request by switching to another protocol",
        None => UNASKED_SWITCH,
    };
    Err(ProxyError::SwitchedProtocols {
        upstream: upstream.to_string(),
        reason,
    })
}
