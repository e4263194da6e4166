//! Small JSON responses passgate writes itself.
//!
//! Gateway errors say whose fault they are (`"fault": "client" | "upstream" | "gateway"`),
//! in the spirit of pingora's error types: a 4xx is the client's, a 502/504 the upstream's,
//! a 500 ours.

use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::ResponseBody;

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The request was wrong (4xx).
    Client,
    /// The upstream failed or was too slow (502/504).
    Upstream,
    /// passgate failed (500).
    Gateway,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<Fault>,
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
            fault: None,
        },
    )
}

/// A gateway error that says whose fault it is.
pub fn gateway_error(
    status: StatusCode,
    code: &str,
    description: &str,
    fault: Fault,
) -> Response<ResponseBody> {
    let mut resp = json(
        status,
        &ErrorBody {
            error: code,
            error_description: description,
            fault: Some(fault),
        },
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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

    #[tokio::test]
    async fn error_bodies() {
        let resp = gateway_error(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "no",
            Fault::Upstream,
        );
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        assert_eq!(
            &body[..],
            br#"{"error":"bad_gateway","error_description":"no","fault":"upstream"}"#
        );

        let resp = error(StatusCode::BAD_REQUEST, "invalid_request", "x");
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        assert_eq!(
            &body[..],
            br#"{"error":"invalid_request","error_description":"x"}"#
        );
    }
}
