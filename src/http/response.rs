//! Small JSON responses passgate writes itself.
//!
//! Gateway errors (docs/architecture.md, "Wire contract, in short") are
//! `{"error", "error_description", "request_id"}`. Whoever makes one calls
//! [`gateway_error`] without knowing the request id; the response carries a
//! [`GatewayError`] extension, and [`with_request_id`] (called once per
//! request by `App::handle`, which owns the id) renders the final body with
//! the id the response's `X-Request-Id` header carries.
//!
//! Each error still says whose fault it is, in the spirit of pingora's error
//! types (a 4xx is the client's, a 502/503/504 the upstream's, a 500 ours),
//! but that goes to the access log, not the body: the wire contract lists
//! exactly three members, and the status already tells the client as much.

use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::ResponseBody;

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (4xx).
    Client,
    /// The upstream failed or was too slow (502/504).
    Upstream,
    /// passgate failed (500).
    Gateway,
}

impl Fault {
    /// `client`, `upstream` or `gateway`, for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Gateway => "gateway",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// What a [`gateway_error`] response said, kept in its extensions until the
/// request id is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// The `error` code.
    pub code: String,
    /// The generic `error_description`.
    pub description: String,
    /// Whose fault it was.
    pub fault: Fault,
}

/// `application/json`
pub static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with `value` as its body.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    resp
}

/// `{"error": code, "error_description": description}` with `status`.
pub fn error(status: StatusCode, code: &str, description: &str) -> Response<ResponseBody> {
    json(
        status,
        &ErrorBody {
            error: code,
            error_description: description,
            request_id: None,
        },
    )
}

/// A gateway error: `description` must be generic (no upstream address, no
/// OS error; those go to the log). The body gets its `request_id` from
/// [`with_request_id`]; until then it has only `error` and `error_description`.
pub fn gateway_error(
    status: StatusCode,
    code: &str,
    description: &str,
    fault: Fault,
) -> Response<ResponseBody> {
    let mut resp = error(status, code, description);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.extensions_mut().insert(GatewayError {
        code: code.to_string(),
        description: description.to_string(),
        fault,
    });
    resp
}

/// Give a [`gateway_error`] response its final body, naming `request_id`;
/// returns whose fault it was. Any other response is left alone (`None`),
/// and the id is not read as text.
pub fn with_request_id(
    resp: &mut Response<ResponseBody>,
    request_id: &HeaderValue,
) -> Option<Fault> {
    let e = resp.extensions_mut().remove::<GatewayError>()?;
    let body = ErrorBody {
        error: &e.code,
        error_description: &e.description,
        request_id: Some(request_id.to_str().unwrap_or("-")),
    };
    if let Ok(bytes) = serde_json::to_vec(&body) {
        *resp.body_mut() = ResponseBody::full(bytes);
    }
    Some(e.fault)
}

/// Mark a response as the last on its HTTP/1.1 connection (used when a request
/// body was refused unread, so its bytes are never parsed as a next request).
pub fn close_connection(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<ResponseBody>) -> Vec<u8> {
        resp.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn error_bodies() {
        let mut resp = gateway_error(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "no",
            Fault::Upstream,
        );
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(
            with_request_id(&mut resp, &HeaderValue::from_static("r-1")),
            Some(Fault::Upstream)
        );
        assert_eq!(
            body_of(resp).await,
            br#"{"error":"bad_gateway","error_description":"no","request_id":"r-1"}"#
        );

        let mut resp = error(StatusCode::BAD_REQUEST, "invalid_request", "x");
        assert_eq!(
            with_request_id(&mut resp, &HeaderValue::from_static("r-2")),
            None
        );
        assert_eq!(
            body_of(resp).await,
            br#"{"error":"invalid_request","error_description":"x"}"#
        );
    }

    #[tokio::test]
    async fn before_the_id_is_known_the_body_is_still_valid() {
        let resp = gateway_error(StatusCode::NOT_FOUND, "not_found", "no", Fault::Client);
        assert_eq!(
            body_of(resp).await,
            br#"{"error":"not_found","error_description":"no"}"#
        );
    }
}
