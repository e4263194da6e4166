//! `POST /oauth/revoke` (RFC 7009): form or JSON, client authentication as at
//! the token endpoint. A refresh token of the calling client ends its family
//! and its login session, so the proxy refuses the session's access tokens
//! from then on. The answer is 200 with an empty body whether or not the token
//! was known (and for another client's token, which is left alone).

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::AuthServer;
use super::client_auth;
use super::error::{OAuthError, blocking, no_store};
use super::request;
use crate::http::body::ResponseBody;
use crate::sessions::hash_token;

impl AuthServer {
    /// Answer `/oauth/revoke`.
    pub(super) async fn revoke(
        &self,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<ResponseBody> {
        match self.revoke_inner(req).await {
            Ok(()) => {
                let mut resp = Response::new(ResponseBody::empty());
                *resp.status_mut() = StatusCode::OK;
                no_store(resp)
            }
            Err(e) => e.into_response(),
        }
    }

    async fn revoke_inner(&self, req: Request<Incoming>) -> Result<(), OAuthError> {
        let (parts, params) = request::read(req).await?;
        let (client, _) = client_auth::authenticate(&self.config.clients, &parts.headers, &params)?;
        let token = params.require("token")?;
        let sessions = Arc::clone(&self.sessions);
        let hash = hash_token(token);
        let client_id = client.id.clone();
        let outcome = blocking(
            "the revocation",
            move || -> Result<Option<String>, crate::store::StoreError> {
                match sessions.store().find_refresh(&hash)? {
                    Some((record, session)) if record.client_id == client_id => {
                        sessions.revoke(&session.sid)?;
                        Ok(Some(session.sid))
                    }
                    _ => Ok(None),
                }
            },
        )
        .await?;
        match outcome {
            Some(sid) => {
                tracing::info!(target: "passgate::auth", event = "revoke", client = %client.id, sid = %sid)
            }
            None => {
                tracing::debug!(target: "passgate::auth", event = "revoke_unknown", client = %client.id)
            }
        }
        Ok(())
    }
}
