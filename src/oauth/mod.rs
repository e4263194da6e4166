//! passgate's own endpoints: the authorization server.
//!
//! `discovery.rs` serves `/.well-known/openid-configuration` and
//! `/.well-known/jwks.json`. The token, revocation, userinfo and MFA endpoints
//! plug in at [`AuthServer::handle`].

mod discovery;

use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Config;
use crate::http::body::ResponseBody;
use crate::http::response::{Fault, gateway_error};
use crate::router::AuthEndpoint;
use crate::tokens::keys::KeyRing;

/// The authorization server.
#[derive(Debug)]
pub struct AuthServer {
    discovery: bytes::Bytes,
    jwks: bytes::Bytes,
}

impl AuthServer {
    /// Build from the config and the issuer's signing keys.
    pub fn new(config: &Config, keys: &KeyRing) -> Option<Self> {
        let issuer = config.issuer.as_ref()?;
        Some(Self {
            discovery: discovery::document(issuer, keys, &config.clients),
            jwks: serde_json::to_vec(&keys.jwks()).unwrap_or_default().into(),
        })
    }

    /// Answer a request for one of passgate's own endpoints.
    pub async fn handle(
        &self,
        endpoint: AuthEndpoint,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<ResponseBody> {
        match endpoint {
            AuthEndpoint::Discovery => get_only(&req, || {
                discovery::json_response(&self.discovery, "public, max-age=300")
            }),
            AuthEndpoint::Jwks => get_only(&req, || {
                discovery::json_response(&self.jwks, "public, max-age=300")
            }),
            AuthEndpoint::Token
            | AuthEndpoint::Revoke
            | AuthEndpoint::UserInfo
            | AuthEndpoint::Mfa => gateway_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "this endpoint is not available",
                Fault::Client,
            ),
        }
    }
}

fn get_only(
    req: &Request<Incoming>,
    ok: impl FnOnce() -> Response<ResponseBody>,
) -> Response<ResponseBody> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        ok()
    } else {
        let mut resp = gateway_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use GET",
            Fault::Client,
        );
        resp.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        resp
    }
}
