//! `POST /oauth/revoke` (RFC 7009): form or JSON, client authentication as at
//! the token endpoint, and behind the same per-IP request limit (a client
//! secret must cost as much to guess here as there).
//!
//! What the token is decides what ends, `token_type_hint` only decides which
//! kind is looked up first:
//! - a refresh token of the calling client ends its family and its login session;
//! - an access token passgate issued to the calling client (own issuer, valid
//!   signature, not expired, `azp` the caller) ends its login session, so a
//!   login without `offline_access` can be ended too (RFC 7009 §2.1 lets the
//!   server revoke the grant behind an access token).
//!
//! Either way the proxy refuses the session's access tokens from then on. The
//! answer is 200 with an empty body whether or not the token was known, also
//! for another client's token (left alone) and for an expired one.

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::AuthServer;
use super::error::{OAuthError, no_store, stored};
use super::request;
use crate::http::body::ResponseBody;
use crate::sessions::hash_token;

/// Which kind of token a revocation found for the calling client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Refresh,
    Access,
}

impl AuthServer {
    /// Answer `/oauth/revoke`.
    pub(super) async fn revoke(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        match self.revoke_inner(req, peer).await {
            Ok(()) => {
                let mut resp = Response::new(ResponseBody::empty());
                *resp.status_mut() = StatusCode::OK;
                no_store(resp)
            }
            Err(e) => e.into_response(),
        }
    }

    async fn revoke_inner(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<(), OAuthError> {
        let (parts, params) = request::read(req).await?;
        let (client, _) = self.authenticate_client(peer, &parts.headers, &params)?;
        let token = params.require("token")?;
        let order = match params.get("token_type_hint") {
            Some("access_token") => [Kind::Access, Kind::Refresh],
            _ => [Kind::Refresh, Kind::Access],
        };
        let mut found = None;
        for kind in order {
            let sid = match kind {
                Kind::Refresh => self.refresh_session(token, &client.id).await?,
                Kind::Access => self.access_session(token, &client.id).await,
            };
            if let Some(sid) = sid {
                found = Some((kind, sid));
                break;
            }
        }
        let Some((kind, sid)) = found else {
            tracing::debug!(target: "passgate::auth", event = "revoke_unknown", client = %client.id);
            return Ok(());
        };
        stored("the revocation", self.sessions.revoke(&sid)).await?;
        tracing::info!(target: "passgate::auth", event = "revoke", client = %client.id, sid = %sid, token = ?kind);
        Ok(())
    }

    /// The session of `token` if it is a refresh token of `client_id`.
    async fn refresh_session(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<Option<String>, OAuthError> {
        let hash = hash_token(token);
        let found = stored(
            "the revocation lookup",
            self.sessions.store().find_refresh(&hash),
        )
        .await?;
        Ok(match found {
            Some((record, session)) if record.client_id == client_id => Some(session.sid),
            _ => None,
        })
    }

    /// The session of `token` if it is a live access token this passgate
    /// issued to `client_id`. The gate verifies it (signature, type, expiry,
    /// revocation), so what it would let through is exactly what can be revoked.
    async fn access_session(&self, token: &str, client_id: &str) -> Option<String> {
        if token.split('.').count() != 3 {
            return None;
        }
        let verified = self.gate.verified(token).await.ok()?;
        let claims = &verified.claims;
        if claims.iss != self.tokens.url() || claims.client.as_deref() != Some(client_id) {
            return None;
        }
        claims.sid.clone()
    }
}
