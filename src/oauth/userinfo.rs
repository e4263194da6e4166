//! `GET /userinfo`: the OpenID profile of the user an access token belongs to,
//! limited to the scopes the token carries. The token must carry `openid` and
//! the `<issuer>userinfo` audience.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::AuthServer;
use super::error::{OAuthError, stored};
use crate::gate::GateError;
use crate::gate::bearer::{self, Credential};
use crate::gate::verify::TokenProblem;
use crate::http::body::ResponseBody;
use crate::http::response::json;
use crate::tokens::issue::profile_claims;

impl AuthServer {
    /// Answer `/userinfo`.
    pub(super) async fn userinfo(&self, req: Request<Incoming>) -> Response<ResponseBody> {
        let realm = self.gate.realm().to_string();
        match self.userinfo_inner(req).await {
            Ok(resp) => resp,
            Err(Refused::Token(e)) => e.into_response(&realm),
            Err(Refused::Internal(e)) => e.into_response(),
        }
    }

    async fn userinfo_inner(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Refused> {
        let token = match bearer::credential(req.headers()) {
            Credential::Token(t) => t,
            Credential::Missing => return Err(GateError::MissingToken.into()),
            Credential::Malformed(why) => return Err(GateError::InvalidRequest(why).into()),
        };
        let verified = self
            .gate
            .verified(token)
            .await
            .map_err(GateError::InvalidToken)?;
        let claims = &verified.claims;
        if claims.iss != self.tokens.url() || !claims.has_audience(&self.tokens.userinfo_audience())
        {
            return Err(GateError::InvalidToken(TokenProblem::WrongAudience).into());
        }
        if !claims.has_scopes(&["openid".to_string()]) {
            return Err(GateError::InsufficientScope("openid".into()).into());
        }
        let Some(sub) = claims.sub.clone() else {
            return Err(GateError::InvalidToken(TokenProblem::Malformed).into());
        };
        let store = Arc::clone(&self.store);
        let lookup = sub.clone();
        // A user removed since the token was issued makes the token useless
        // (401); a store that fails is passgate's fault (500), not the token's.
        let user = stored("looking up the user for /userinfo", store.get_user(&lookup))
            .await
            .map_err(Refused::Internal)?
            .ok_or(GateError::InvalidToken(TokenProblem::Revoked))?;
        let mut body = Map::new();
        body.insert("sub".into(), Value::String(sub));
        body.extend(profile_claims(&user, &claims.scopes));
        Ok(json(StatusCode::OK, &Value::Object(body)))
    }
}

/// Why `/userinfo` did not answer with a profile.
enum Refused {
    /// The token is missing, invalid or not enough (RFC 6750 answers).
    Token(GateError),
    /// The store failed (a 500; the cause is logged).
    Internal(OAuthError),
}

impl From<GateError> for Refused {
    fn from(e: GateError) -> Self {
        Refused::Token(e)
    }
}
