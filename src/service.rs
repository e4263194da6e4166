//! One request, top to bottom: request id → head checks (header size, Host)
//! → normalised path → passgate's own
//! endpoints or the route table → gate → header hygiene → proxy → access log.
//! This is the file to read first to follow a request through passgate;
//! `service/live.rs` holds the [`App`] connections share, which a reload repoints.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::gate::{self, Gate};
use crate::http::body::{ResponseBody, drain_in_background};
use crate::http::connection::ConnContext;
use crate::http::headers::{
    X_REAL_IP, X_REQUEST_ID, acceptable_request_id, add_forwarded, new_request_id,
    strip_request_hop_by_hop,
};
use crate::http::host::{AcceptedHost, HostError};
use crate::http::hygiene::RequestHygiene;
use crate::http::path::{normalize, without_parameters};
use crate::http::request_head;
use crate::http::response::{Fault, close_connection, gateway_error, with_request_id};
use crate::http::trace::TraceContext;
use crate::http::written::Written;
use crate::oauth::AuthServer;
use crate::protect::network_ip;
use crate::proxy::forward::{Outgoing, UpstreamLabel, upstream_path_and_query};
use crate::proxy::websocket_h2::client_websocket;
use crate::proxy::{Proxy, ProxyError, Target};
use crate::router::{AuthEndpoint, Route, Router, upstream_path};
use crate::telemetry::metrics::{MethodClass, Metrics, TokenOutcome};
use crate::telemetry::{self, AccessLine, ErrorChain};

mod live;
pub use live::App;

/// Everything a request needs from one config generation.
#[derive(Debug)]
pub struct Handler {
    /// The route table.
    pub router: Router,
    /// Token checks.
    pub gate: Arc<Gate>,
    /// passgate's own endpoints, when `[issuer]` is configured.
    pub auth: Option<Arc<AuthServer>>,
    /// Write one log line per request.
    pub access_log: bool,
    /// Metrics for `/metrics` and the status page, and readiness.
    pub metrics: Arc<Metrics>,
    /// Client headers removed before the gate (`[server]` underscore and strip settings).
    pub hygiene: RequestHygiene,
    /// Every route's claim header names, which no client may send ([`gate::claim_headers`]).
    pub claim_headers: Vec<HeaderName>,
    /// `[server] trusted_proxies`, for the client address in `X-Real-IP`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The supervisor of the gateway's background tasks (its failures are in `/metrics`).
    pub tasks: crate::tasks::Supervisor,
}

impl crate::admin::Observed for Handler {
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn router(&self) -> &Router {
        &self.router
    }
    fn gate(&self) -> &Gate {
        &self.gate
    }
    fn auth(&self) -> Option<&AuthServer> {
        self.auth.as_deref()
    }
    fn tasks(&self) -> &crate::tasks::Supervisor {
        &self.tasks
    }
}

/// What the access log says about where a request went.
struct Outcome {
    resp: Response<ResponseBody>,
    route: &'static str,
    route_prefix: Option<Arc<str>>,
    upstream: UpstreamLabel,
    /// The route that answered, for its metrics.
    matched: Option<Arc<Route>>,
}

impl Outcome {
    /// An answer on `route`: forwarded (`upstream` names where) or refused
    /// by the route's own checks (`None`).
    fn routed(resp: Response<ResponseBody>, route: &Arc<Route>, upstream: UpstreamLabel) -> Self {
        Self {
            resp,
            route: "-",
            route_prefix: Some(Arc::clone(&route.prefix_label)),
            upstream,
            matched: Some(Arc::clone(route)),
        }
    }

    fn local(resp: Response<ResponseBody>, route: &'static str) -> Self {
        Self {
            resp,
            route,
            route_prefix: None,
            upstream: None,
            matched: None,
        }
    }
}

impl Handler {
    /// Answer one request from `peer`, which came on a connection with
    /// `context`. The future owns everything it uses, so the server can box
    /// it as it is (`server/conn.rs`): no wrapper around it, no second copy.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice (rust-lang/rust#62958)"
    )]
    pub fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        proxy: Arc<Proxy>,
        context: ConnContext,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'static {
        async move {
            let started = Instant::now();
            let mut request_id = match req.headers().get(&X_REQUEST_ID) {
                Some(v) if acceptable_request_id(v) => v.clone(),
                _ => new_request_id(),
            };
            // Unique to this request: HTTP/2 sends it as a literal HPACK never
            // indexes, instead of adding an entry no later message can use
            // (and evicting ones they could). docs/benchmarks.md, the hop.
            request_id.set_sensitive(true);
            let method = req.method().clone();
            let trace = TraceContext::of(req.headers());
            // A clone of the URI shares its bytes: no copy of the path; the
            // connection's client has its address's text ready.
            let log = self
                .access_log
                .then(|| (req.uri().clone(), Arc::clone(&context.client)));

            let Outcome {
                mut resp,
                route,
                route_prefix,
                upstream,
                matched,
            } = self
                .dispatch(req, peer, &request_id, &trace, &proxy, context)
                .await;
            resp.headers_mut().insert(&X_REQUEST_ID, request_id.clone());
            let fault = with_request_id(&mut resp, &request_id);
            if let Some(t) = resp.extensions_mut().remove::<TokenOutcome>() {
                self.metrics.token_outcome(t.grant.as_deref(), &t.outcome);
            }
            let class = MethodClass::of(&method);
            let elapsed = started.elapsed();
            match matched.as_ref().and_then(|r| r.ops.metrics.as_ref()) {
                Some(m) => m.request(class, resp.status(), elapsed),
                None if matched.is_none() => {
                    self.metrics
                        .local_request(route, class, resp.status().as_u16())
                }
                None => {}
            }

            if let Some((uri, client)) = log {
                telemetry::access::log(&AccessLine {
                    request_id: request_id.to_str().unwrap_or("-"),
                    method: &method,
                    path: uri.path(),
                    route: route_prefix.as_deref().unwrap_or(route),
                    status: resp.status().as_u16(),
                    upstream: upstream.as_deref().unwrap_or("-"),
                    fault,
                    trace_id: trace.trace_id(),
                    duration: elapsed,
                    client: &client.forwarding,
                });
            }
            resp
        }
    }

    /// Route, check and forward one request (an async block, as [`Self::handle`]).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice (rust-lang/rust#62958)"
    )]
    fn dispatch(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
        trace: &TraceContext,
        proxy: &Proxy,
        context: ConnContext,
    ) -> impl Future<Output = Outcome> + Send {
        async move {
            if let Err(e) = request_head::check(&mut req, context.max_header_size) {
                let version = req.version();
                return Outcome::local(
                    refuse_unread(e.into_response(), version, req.into_body()),
                    "-",
                );
            }
            let client_host = match client_host(&req, &context.client.host) {
                Ok(host) => host,
                Err(e) => {
                    let resp = gateway_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        e.describe(),
                        Fault::Client,
                    );
                    let version = req.version();
                    return Outcome::local(refuse_unread(resp, version, req.into_body()), "-");
                }
            };
            // A clone of the URI shares its bytes: the path is borrowed from it
            // unless normalising changed it.
            let uri = req.uri().clone();
            let path = match normalize(uri.path()) {
                Ok(p) => p,
                Err(e) => {
                    let resp = gateway_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        &e.to_string(),
                        Fault::Client,
                    );
                    return Outcome::local(close_connection(resp), "-");
                }
            };

            if let Some(endpoint) = AuthEndpoint::at(&path) {
                // The token endpoint reads its body deadline from the request.
                req.extensions_mut().insert(context);
                let resp = match &self.auth {
                    // Boxed: the token endpoint's state (password checks,
                    // scripts, signing) would otherwise size every proxied
                    // request's future too.
                    Some(auth) => Box::pin(auth.handle(endpoint, req, peer)).await,
                    None => not_found(),
                };
                return Outcome::local(resp, "auth");
            }

            let route = self.router.route(&path);
            let bare = without_parameters(&path);
            if matches!(bare, Cow::Owned(_)) && !same_route(route, self.router.route(&bare)) {
                // A server that cuts path parameters off would route this elsewhere.
                let resp = gateway_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "path parameters change the route of this path",
                    Fault::Client,
                );
                let version = req.version();
                return Outcome::local(refuse_unread(resp, version, req.into_body()), "-");
            }
            let Some(route) = route else {
                let version = req.version();
                return Outcome::local(refuse_unread(not_found(), version, req.into_body()), "-");
            };
            let config = &route.config;

            // Only a WebSocket is forwarded (an HTTP/1.1 upgrade, or HTTP/2's
            // extended CONNECT); any other upgrade is a plain request.
            let upgrade = match client_websocket(&mut req) {
                Ok(upgrade) => upgrade,
                Err(other) => return Outcome::local(other.into_response(), "-"),
            };
            let (mut parts, body) = req.into_parts();
            let client_ip = network_ip(peer, &parts.headers, &self.trusted_proxies);
            strip_request_hop_by_hop(&mut parts.headers, upgrade.is_some());
            let verified = match self.gate.check(config, &parts.method, &parts.headers).await {
                Ok(verified) => verified,
                Err(e) => {
                    let resp = match gate::is_grpc(&parts.headers) {
                        true => e.into_grpc_response(self.gate.realm()),
                        false => e.into_response(self.gate.realm()),
                    };
                    let resp = refuse_unread(resp, parts.version, body);
                    return Outcome::routed(resp, route, None);
                }
            };
            // What passgate writes (forwarding, request id, trace, identity)
            // goes beside the client's headers, whose copies of those names
            // the hygiene below removes: the forwarding values extend the
            // client's lists, so they are worked out first.
            let forwarding = &context.client.forwarding;
            let mut written = Written::new();
            add_forwarded(
                &parts.headers,
                forwarding,
                client_host.as_ref(),
                &mut written,
            );
            written.push(&X_REAL_IP, forwarding.value_of(client_ip));
            written.push(&X_REQUEST_ID, request_id.clone());
            let claim_headers = &self.claim_headers;
            self.hygiene.apply_and(&mut parts.headers, |read_as| {
                gate::is_identity(read_as, claim_headers)
            });
            trace.write(&mut parts.headers, &mut written);
            if let Some(verified) = &verified {
                gate::add_identity(&mut parts.headers, &mut written, config, verified);
            }
            // The route's rate limit counts the consumer the token names.
            let admitted = match route
                .ops
                .admit(&parts.method, verified.as_deref(), client_ip)
            {
                Ok(admitted) => admitted,
                Err(refused) => {
                    let resp = route.ops.refusal(refused);
                    return Outcome::routed(refuse_unread(resp, parts.version, body), route, None);
                }
            };
            // Only after the token: a protected route's limit is nobody else's business.
            if let Some(max) = config.max_body
                && declared_length(&parts.headers).is_some_and(|n| n > max)
            {
                let resp = refuse_unread(
                    ProxyError::BodyTooLarge(max).into_response(),
                    parts.version,
                    body,
                );
                return Outcome::routed(resp, route, None);
            }

            let path_and_query = match upstream_path_and_query(
                &parts.uri,
                upstream_path(config, &path),
            ) {
                Ok(pq) => pq,
                Err(e) => {
                    let e = ProxyError::from(e);
                    tracing::warn!(request_id = request_id.to_str().unwrap_or("-"), route = %route.prefix_label, error = %ErrorChain(&e), "forwarding failed");
                    let resp = refuse_unread(e.into_response(), parts.version, body);
                    return Outcome::routed(resp, route, None);
                }
            };
            let out = Outgoing {
                parts,
                written,
                body,
                path_and_query,
                client_host,
                upgrade,
                context,
            };
            let target = Target {
                config: &route.config,
                balancer: &route.balancer,
                health: route.ops.health.as_deref(),
                metrics: route.ops.metrics.as_ref(),
            };
            let (result, upstream) = proxy.forward(target, out).await;
            let mut resp = match result {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::warn!(request_id = request_id.to_str().unwrap_or("-"), route = %route.prefix_label, error = %ErrorChain(&e), "forwarding failed");
                    e.into_response()
                }
            };
            if let Some(admitted) = admitted {
                route.ops.rate_headers(admitted, resp.headers_mut());
            }
            Outcome::routed(resp, route, upstream)
        }
    }
}

/// The `Host` (or HTTP/2 `:authority`) the client asked for, once every
/// copy of it is a plain `host[:port]`: it is repeated to the upstream.
fn client_host(
    req: &Request<Incoming>,
    accepted: &AcceptedHost,
) -> Result<Option<HeaderValue>, HostError> {
    for value in req.headers().get_all(HOST) {
        accepted.check(value.to_str().map_err(|_| HostError::BadCharacter)?)?;
    }
    if let Some(authority) = req.uri().authority() {
        accepted.check(authority.as_str())?;
    }
    Ok(req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    }))
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn same_route(a: Option<&Arc<Route>>, b: Option<&Arc<Route>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

fn not_found() -> Response<ResponseBody> {
    gateway_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no route for this path",
        Fault::Client,
    )
}

/// A request refused before its body was read: on HTTP/1.1 the connection
/// closes after the answer, and the rest of the body is read and discarded in
/// the background (bounded) so a client still sending gets the answer rather
/// than a reset.
fn refuse_unread(
    resp: Response<ResponseBody>,
    version: Version,
    body: Incoming,
) -> Response<ResponseBody> {
    if http_body::Body::is_end_stream(&body) || version > Version::HTTP_11 {
        return resp;
    }
    drain_in_background(body);
    close_connection(resp)
}
