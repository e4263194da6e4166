//! passgate's own endpoints: the authorization server.
//!
//! - `token.rs`: `POST /oauth/token`, the password and password-realm grants,
//!   built from `request.rs` (body parsing), `client_auth.rs`, `scopes.rs`
//!   and `error.rs` (wire codes);
//! - `login.rs`: the end of a password login (`LoginDecision`, the seam
//!   scripts and the MFA gate share): sign, persist, answer;
//! - `scripts.rs`: the Rules and Actions stage (`crate::extensibility`) on
//!   the password grants and the refresh exchange;
//! - `refresh.rs`: the refresh-token grant, joining the pipeline at signing;
//! - `revoke.rs`: `POST /oauth/revoke` (refresh tokens, and access tokens'
//!   login sessions);
//! - `userinfo.rs`: `GET /userinfo`;
//! - `discovery.rs`: `/.well-known/openid-configuration` and `/.well-known/jwks.json`,
//!   following the live key ring.
//!
//! The stages `/oauth/token` and `/oauth/revoke` share (client
//! authentication with the per-IP request limit) are methods here.

pub mod client_auth;
mod denied;
mod discovery;
pub mod error;
mod login;
mod mfa_api;
mod mfa_grant;
mod refresh;
pub mod request;
mod revoke;
pub mod scopes;
mod scripts;
mod token;
mod userinfo;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use token::PASSWORD_REALM;

use crate::clock::SharedClock;
use crate::config::{ClientConfig, Config, IssuerConfig};
use crate::extensibility::Scripts;
use crate::gate::Gate;
use crate::http::body::ResponseBody;
use crate::http::response::{Fault, gateway_error};
use crate::identity::password::Hasher;
use crate::mfa::Mfa;
use crate::protect::Protect;
use crate::router::AuthEndpoint;
use crate::sessions::Sessions;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::tokens::issue::TokenIssuer;
use crate::tokens::pool::SignPool;
use crate::tokens::ring::LiveRing;

/// The authorization server.
pub struct AuthServer {
    config: Config,
    issuer: IssuerConfig,
    store: Arc<dyn Store>,
    sessions: Arc<Sessions>,
    protect: Arc<Protect>,
    hasher: Hasher,
    mfa: Arc<Mfa>,
    tokens: TokenIssuer,
    gate: Arc<Gate>,
    clock: SharedClock,
    scripts: Option<Arc<Scripts>>,
    metrics: Arc<Metrics>,
    /// The signing keys, for the JWKS and discovery answers.
    keys: LiveRing,
    discovery: discovery::Discovery,
    /// `Cache-Control` of the JWKS and discovery answers.
    public_cache: http::HeaderValue,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.issuer.url)
            .finish_non_exhaustive()
    }
}

/// What the authorization server is built from.
pub struct AuthParts {
    /// The whole config.
    pub config: Config,
    /// The issuer's signing keys, as they are now.
    pub keys: LiveRing,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Login sessions and refresh tokens.
    pub sessions: Arc<Sessions>,
    /// Attack protection (rate limits, blocks, throttles).
    pub protect: Arc<Protect>,
    /// Password hashing.
    pub hasher: Hasher,
    /// Second factors.
    pub mfa: Arc<Mfa>,
    /// The gate (for `/userinfo`).
    pub gate: Arc<Gate>,
    /// The clock.
    pub clock: SharedClock,
    /// The bounded pool RS256 signatures run on.
    pub signing: SignPool,
    /// The compiled Rules and Actions (`None`: none configured).
    pub scripts: Option<Arc<Scripts>>,
    /// Where MFA events are counted.
    pub metrics: Arc<Metrics>,
}

impl AuthServer {
    /// Build the server; `None` without an `[issuer]` section.
    pub fn new(parts: AuthParts) -> Option<Self> {
        let AuthParts {
            config,
            keys,
            store,
            sessions,
            protect,
            hasher,
            mfa,
            gate,
            clock,
            signing,
            scripts,
            metrics,
        } = parts;
        let issuer = config.issuer.clone()?;
        Some(Self {
            discovery: discovery::Discovery::default(),
            public_cache: discovery::cache_control(),
            tokens: TokenIssuer::new(
                issuer.url.clone(),
                keys.clone(),
                Arc::clone(&clock),
                signing,
            ),
            keys,
            config,
            issuer,
            store,
            sessions,
            protect,
            hasher,
            mfa,
            gate,
            clock,
            scripts,
            metrics,
        })
    }

    /// Attack protection, for its counters.
    pub fn protect(&self) -> &Protect {
        &self.protect
    }

    /// The password hasher, for its pool's counters.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The Rules and Actions, for their pool's queue and memory.
    pub fn scripts(&self) -> Option<&Scripts> {
        self.scripts.as_deref()
    }

    /// Answer a request for one of passgate's own endpoints.
    pub async fn handle(
        &self,
        endpoint: AuthEndpoint,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        match endpoint {
            AuthEndpoint::Discovery => get_only(&req, || {
                let doc = self.discovery.for_ring(self.keys.snapshot(), |ring| {
                    discovery::document(&self.issuer, ring, &self.config.clients)
                });
                discovery::json_response(doc, &self.public_cache)
            }),
            AuthEndpoint::Jwks => get_only(&req, || {
                let jwks = self.keys.snapshot().jwks_bytes().clone();
                discovery::json_response(jwks, &self.public_cache)
            }),
            AuthEndpoint::Token if req.method() == Method::POST => self.token(req, peer).await,
            AuthEndpoint::Token => method_not_allowed("POST"),
            AuthEndpoint::UserInfo
                if req.method() == Method::GET || req.method() == Method::POST =>
            {
                self.userinfo(req).await
            }
            AuthEndpoint::UserInfo => method_not_allowed("GET, POST"),
            AuthEndpoint::Revoke if req.method() == Method::POST => self.revoke(req, peer).await,
            AuthEndpoint::Revoke => method_not_allowed("POST"),
            AuthEndpoint::Mfa => self.mfa_endpoint(req, peer).await,
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut resp = gateway_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("use {allow}"),
        Fault::Client,
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    resp
}

fn get_only(
    req: &Request<Incoming>,
    ok: impl FnOnce() -> Response<ResponseBody>,
) -> Response<ResponseBody> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        ok()
    } else {
        method_not_allowed("GET, HEAD")
    }
}

// === impl AuthServer: shared stages ===

impl AuthServer {
    /// Authenticate the calling client and count the request under the
    /// per-IP limit: under the client's IP (which a trusted backend may name)
    /// when authentication succeeds, under the connection's when it fails, so
    /// guessing secrets costs requests too. Shared by `/oauth/token` and
    /// `/oauth/revoke`.
    fn authenticate_client(
        &self,
        peer: SocketAddr,
        headers: &http::HeaderMap,
        params: &request::Params,
    ) -> Result<(&ClientConfig, std::net::IpAddr), error::OAuthError> {
        match client_auth::authenticate(&self.config.clients, headers, params) {
            Ok((client, auth)) => {
                let ip = self.protect.client_ip(peer, headers, client, auth);
                self.protect.check_request(ip)?;
                Ok((client, ip))
            }
            Err(e) => {
                self.protect
                    .check_request(self.protect.network_ip(peer, headers))?;
                Err(e)
            }
        }
    }
}
