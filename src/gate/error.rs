//! Gate refusals as RFC 6750 responses: `WWW-Authenticate: Bearer ...` plus a
//! small JSON body. Nothing is forwarded upstream.

use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use super::verify::TokenProblem;
use crate::http::body::ResponseBody;
use crate::http::response::error;

/// Why the gate refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// No bearer token: 401 with only the realm.
    MissingToken,
    /// A malformed `Authorization` header: 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// The token is not valid here: 401 `invalid_token`.
    InvalidToken(TokenProblem),
    /// The token lacks scopes the route needs for the method: 403 `insufficient_scope`.
    InsufficientScope(String),
    /// The route needs a login that did MFA (`require_mfa`) and the token's
    /// `amr` lacks `mfa`: 401 `insufficient_user_authentication` (RFC 9470).
    InsufficientUserAuthentication,
}

/// The description of a step-up refusal.
pub const STEP_UP_DESCRIPTION: &str = "A second factor is required for this request";

impl GateError {
    /// The response, with `realm` in `WWW-Authenticate`.
    pub fn into_response(self, realm: &str) -> Response<ResponseBody> {
        let (status, challenge, mut resp) = match &self {
            GateError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{realm}\""),
                error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a bearer token is required",
                ),
            ),
            GateError::InvalidRequest(why) => (
                StatusCode::BAD_REQUEST,
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{why}\""
                ),
                error(StatusCode::BAD_REQUEST, "invalid_request", why),
            ),
            GateError::InvalidToken(problem) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    problem.description()
                ),
                error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    problem.description(),
                ),
            ),
            GateError::InsufficientScope(needed) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{needed}\""
                ),
                error(
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    &format!("the token needs the scope \"{needed}\""),
                ),
            ),
            GateError::InsufficientUserAuthentication => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_user_authentication\", error_description=\"{STEP_UP_DESCRIPTION}\""
                ),
                error(
                    StatusCode::UNAUTHORIZED,
                    "insufficient_user_authentication",
                    STEP_UP_DESCRIPTION,
                ),
            ),
        };
        *resp.status_mut() = status;
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let r = GateError::MissingToken.into_response("api");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
        let r = GateError::InvalidToken(TokenProblem::Expired).into_response("api");
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let r = GateError::InsufficientScope("write:items".into()).into_response("api");
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"write:items\""
        );
        let r =
            GateError::InvalidRequest("more than one Authorization header").into_response("api");
        assert_eq!(r.status(), 400);
        let r = GateError::InsufficientUserAuthentication.into_response("api");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", error=\"insufficient_user_authentication\", error_description=\"A second factor is required for this request\""
        );
    }
}
