//! Gate refusals as RFC 6750 responses: `WWW-Authenticate: Bearer ...` plus a
//! small JSON body. Nothing is forwarded upstream.
//!
//! A gRPC request (`content-type: application/grpc*`) is refused the gRPC
//! way instead (protocol.md): HTTP 200 with no body and `grpc-status` 16
//! (UNAUTHENTICATED) or 7 (PERMISSION_DENIED) and a percent-encoded
//! `grpc-message` in the headers (a "Trailers-Only" response).

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::verify::TokenProblem;
use crate::http::body::ResponseBody;
use crate::http::response::error;

/// `grpc-status`
pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC's UNAUTHENTICATED.
const UNAUTHENTICATED: &str = "16";
/// gRPC's PERMISSION_DENIED.
const PERMISSION_DENIED: &str = "7";

/// What `grpc-message` percent-encodes: controls, non-ASCII and `%` itself.
const GRPC_MESSAGE_ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

/// True for a gRPC request: `content-type` is `application/grpc` or one of
/// its `+format` / `;params` variants (gRPC-Web too).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start();
            v.len() >= 16 && v[..16].eq_ignore_ascii_case("application/grpc")
        })
}

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

impl GateError {
    /// The gRPC status code and message.
    pub fn grpc_status(&self) -> (&'static str, String) {
        match self {
            GateError::MissingToken => (UNAUTHENTICATED, "a bearer token is required".into()),
            GateError::InvalidRequest(why) => (UNAUTHENTICATED, (*why).to_string()),
            GateError::InvalidToken(problem) => (UNAUTHENTICATED, problem.description().into()),
            GateError::InsufficientScope(needed) => (
                PERMISSION_DENIED,
                format!("the token needs the scope \"{needed}\""),
            ),
            GateError::InsufficientUserAuthentication => {
                (UNAUTHENTICATED, STEP_UP_DESCRIPTION.to_string())
            }
        }
    }

    /// The refusal of a gRPC request: HTTP 200, `grpc-status`,
    /// `grpc-message`, no body; `WWW-Authenticate` as for any request.
    pub fn into_grpc_response(self, realm: &str) -> Response<ResponseBody> {
        let (code, message) = self.grpc_status();
        let challenge = self
            .into_response(realm)
            .headers_mut()
            .remove(WWW_AUTHENTICATE);
        let mut resp = Response::new(ResponseBody::empty());
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(&GRPC_STATUS, HeaderValue::from_static(code));
        let encoded = utf8_percent_encode(&message, GRPC_MESSAGE_ESCAPED).to_string();
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert(&GRPC_MESSAGE, v);
        }
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_refusals_are_200_with_a_grpc_status() {
        let r = GateError::MissingToken.into_grpc_response("api");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(r.headers()[&GRPC_STATUS], "16");
        assert_eq!(r.headers()[&GRPC_MESSAGE], "a bearer token is required");
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
        let r = GateError::InsufficientScope("write:items".into()).into_grpc_response("api");
        assert_eq!(r.headers()[&GRPC_STATUS], "7");
        assert_eq!(
            r.headers()[&GRPC_MESSAGE],
            "the token needs the scope \"write:items\""
        );
        let r = GateError::InsufficientUserAuthentication.into_grpc_response("api");
        assert_eq!(r.headers()[&GRPC_STATUS], "16");
        let (_, message) = GateError::InvalidRequest("100% bad\n").grpc_status();
        assert_eq!(
            utf8_percent_encode(&message, GRPC_MESSAGE_ESCAPED).to_string(),
            "100%25 bad%0A"
        );
    }

    #[test]
    fn tells_grpc_by_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("Application/GRPC-web", true),
            ("application/json", false),
            ("application/gr", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(&h), grpc, "{ct}");
        }
    }

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
