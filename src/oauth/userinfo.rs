//! `GET /userinfo`: the OpenID profile of the user an access token belongs to,
//! limited to the scopes the token carries. The token must carry `openid` and
//! the `<issuer>userinfo` audience.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::AuthServer;
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
            Err(e) => e.into_response(&realm),
        }
    }

    async fn userinfo_inner(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, GateError> {
        let token = match bearer::credential(req.headers()) {
            Credential::Token(t) => t,
            Credential::Missing => return Err(GateError::MissingToken),
            Credential::Malformed(why) => return Err(GateError::InvalidRequest(why)),
        };
        let verified = self
            .gate
            .verified(token)
            .await
            .map_err(GateError::InvalidToken)?;
        let claims = &verified.claims;
        if claims.iss != self.tokens.url() || !claims.has_audience(&self.tokens.userinfo_audience())
        {
            return Err(GateError::InvalidToken(TokenProblem::WrongAudience));
        }
        if !claims.has_scopes(&["openid".to_string()]) {
            return Err(GateError::InsufficientScope("openid".into()));
        }
        let Some(sub) = claims.sub.clone() else {
            return Err(GateError::InvalidToken(TokenProblem::Malformed));
        };
        let store = Arc::clone(&self.store);
        let lookup = sub.clone();
        let user = tokio::task::spawn_blocking(move || store.get_user(&lookup))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .ok_or(GateError::InvalidToken(TokenProblem::Revoked))?;
        let mut body = Map::new();
        body.insert("sub".into(), Value::String(sub));
        body.extend(profile_claims(&user, &claims.scopes));
        Ok(json(StatusCode::OK, &Value::Object(body)))
    }
}
