//! The token endpoint's errors. Each variant displays as its wire code and
//! maps to one status and one JSON body in a single `match` with no catch-all
//! arm, so a new variant forces a decision. Texts are the wire contract
//! (docs/architecture.md, "Wire contract, in short"): match them byte for byte.

use http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::http::body::ResponseBody;
use crate::http::response::{close_connection, error};
use crate::telemetry::ErrorChain;

/// `Wrong email or password.`
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";
/// The brute-force block's text (identifier + IP).
pub const BRUTE_FORCE_BLOCKED: &str = "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it.";
/// The suspicious-IP throttle's text (IP, across identifiers).
pub const SUSPICIOUS_IP_THROTTLED: &str = "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.";
/// The text of a 503 (a full hashing or signing queue, an unreachable store).
pub const TEMPORARILY_UNAVAILABLE: &str =
    "The service is temporarily unavailable. Try again later.";
/// The request rate limit's text.
pub const TOO_MANY_REQUESTS: &str =
    "Too many requests. Retry after the number of seconds in Retry-After.";

/// A rule's or action's redirect, refused.
pub const REDIRECT_REFUSED: &str = "Redirects are not supported in the password exchange.";

/// `Retry-After` of a 503 from a full signing queue, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// An OAuth error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// 400 `invalid_request` with a description.
    #[error("invalid_request")]
    InvalidRequest(String),
    /// 413: the body is over the endpoint's limit.
    #[error("invalid_request")]
    TooLarge(usize),
    /// 408 `request_timeout`: the body stalled past `server.body_read_timeout`;
    /// an HTTP/1.1 connection closes after it.
    #[error("request_timeout")]
    RequestTimeout,
    /// 401 `access_denied` / `Unauthorized`: unknown client, bad or missing secret.
    /// `basic` adds `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    #[error("access_denied")]
    InvalidClient {
        /// The client tried HTTP Basic.
        basic: bool,
    },
    /// 403 `unauthorized_client`: the grant is not allowed for the client.
    #[error("unauthorized_client")]
    UnauthorizedClient(String),
    /// 400 `unsupported_grant_type`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    /// 403 `invalid_grant` with a description.
    #[error("invalid_grant")]
    InvalidGrant(&'static str),
    /// 400 `invalid_scope`.
    #[error("invalid_scope")]
    InvalidScope(String),
    /// 403 `access_denied` with a description (e.g. `Service not found: x`).
    #[error("access_denied")]
    AccessDenied(String),
    /// 401 `unauthorized` with a description (e.g. `user is blocked`).
    #[error("unauthorized")]
    Unauthorized(String),
    /// 400 `interaction_required`: a rule or action tried to redirect, which
    /// the password exchange cannot do.
    #[error("interaction_required")]
    InteractionRequired,
    /// 500 `server_error` with a description safe to show.
    #[error("server_error")]
    ServerError(&'static str),
    /// 429 `too_many_requests`: a request rate limit, with `Retry-After` and
    /// `X-RateLimit-Limit/-Remaining/-Reset`.
    #[error("too_many_requests")]
    TooManyRequests {
        /// Requests allowed in a burst.
        limit: u32,
        /// Whole seconds to wait (at least 1).
        retry_after: u64,
        /// When the next request is allowed, seconds since the epoch.
        reset: i64,
    },
    /// 429 `too_many_attempts`: a brute-force block or suspicious-IP throttle.
    #[error("too_many_attempts")]
    TooManyAttempts(&'static str),
    /// 403 `mfa_required`: the password was right, a second factor is needed.
    #[error("mfa_required")]
    MfaRequired {
        /// The transaction's token.
        mfa_token: String,
        /// `mfa_requirements`: `{"challenge": [...]}` or `{"enroll": [...]}`.
        requirements: serde_json::Value,
    },
    /// 403 `expired_token` (e.g. `mfa_token is expired`).
    #[error("expired_token")]
    ExpiredToken(&'static str),
    /// 503 `temporarily_unavailable` with `Retry-After`: a bounded work queue
    /// (hashing, signing) is full, or the store is unreachable; nothing was done.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable {
        /// Whole seconds to wait (at least 1).
        retry_after: u64,
    },
}

impl OAuthError {
    /// The status, JSON body and headers. Token responses are never cached.
    pub fn into_response(self) -> Response<ResponseBody> {
        let code = self.to_string();
        let mut rate = None;
        let mut retry = None;
        let close = matches!(self, OAuthError::RequestTimeout);
        let mut extra = None;
        let (status, description, basic) = match self {
            OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, d, false),
            OAuthError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes"),
                false,
            ),
            OAuthError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body stalled past the body read timeout".to_string(),
                false,
            ),
            OAuthError::InvalidClient { basic } => {
                (StatusCode::UNAUTHORIZED, "Unauthorized".to_string(), basic)
            }
            OAuthError::UnauthorizedClient(grant) => (
                StatusCode::FORBIDDEN,
                format!("Grant type '{grant}' not allowed for the client."),
                false,
            ),
            OAuthError::UnsupportedGrantType(grant) => (
                StatusCode::BAD_REQUEST,
                format!("Grant type '{grant}' not supported."),
                false,
            ),
            OAuthError::InvalidGrant(d) => (StatusCode::FORBIDDEN, d.to_string(), false),
            OAuthError::InvalidScope(d) => (StatusCode::BAD_REQUEST, d, false),
            OAuthError::AccessDenied(d) => (StatusCode::FORBIDDEN, d, false),
            OAuthError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, d, false),
            OAuthError::InteractionRequired => {
                (StatusCode::BAD_REQUEST, REDIRECT_REFUSED.to_string(), false)
            }
            OAuthError::ServerError(d) => (StatusCode::INTERNAL_SERVER_ERROR, d.to_string(), false),
            OAuthError::TooManyRequests {
                limit,
                retry_after,
                reset,
            } => {
                rate = Some((limit, retry_after, reset));
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    TOO_MANY_REQUESTS.to_string(),
                    false,
                )
            }
            OAuthError::TooManyAttempts(d) => (StatusCode::TOO_MANY_REQUESTS, d.to_string(), false),
            OAuthError::MfaRequired {
                mfa_token,
                requirements,
            } => {
                extra = Some((mfa_token, requirements));
                (
                    StatusCode::FORBIDDEN,
                    "Multifactor authentication required".to_string(),
                    false,
                )
            }
            OAuthError::ExpiredToken(d) => (StatusCode::FORBIDDEN, d.to_string(), false),
            OAuthError::TemporarilyUnavailable { retry_after } => {
                retry = Some(retry_after.max(1));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEMPORARILY_UNAVAILABLE.to_string(),
                    false,
                )
            }
        };
        let mut resp = match extra {
            Some((mfa_token, requirements)) => no_store(crate::http::response::json(
                status,
                &serde_json::json!({
                    "error": code,
                    "error_description": description,
                    "mfa_token": mfa_token,
                    "mfa_requirements": requirements,
                }),
            )),
            None => no_store(error(status, &code, &description)),
        };
        if close {
            resp = close_connection(resp);
        }
        if basic {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"passgate\""),
            );
        }
        if let Some(retry_after) = retry {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if let Some((limit, retry_after, reset)) = rate {
            let h = resp.headers_mut();
            h.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            h.insert(
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderValue::from(limit),
            );
            h.insert(
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from(0u32),
            );
            h.insert(
                HeaderName::from_static("x-ratelimit-reset"),
                HeaderValue::from(reset),
            );
        }
        resp
    }
}

impl OAuthError {
    /// A 500 whose details stay in the log.
    pub fn internal() -> Self {
        OAuthError::ServerError("internal error")
    }
}

/// Wait for store work; a failure becomes [`store_failed`]'s answer.
pub async fn stored<T>(
    what: &'static str,
    work: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, OAuthError> {
    work.await.map_err(|e| store_failed(what, &e))
}

/// The one place a store failure becomes HTTP: a store that cannot be
/// reached now is a 503 `temporarily_unavailable` with `Retry-After` (the
/// client may retry; nothing was acknowledged); any other failure is logged
/// with `what` and its whole cause chain, and answered as a 500 without
/// details.
pub fn store_failed(what: &str, e: &crate::store::StoreError) -> OAuthError {
    if e.is_unavailable() {
        tracing::warn!(error = %ErrorChain(e), "{what}: the store is unavailable");
        return OAuthError::TemporarilyUnavailable {
            retry_after: RETRY_AFTER_SECS,
        };
    }
    tracing::error!(error = %ErrorChain(e), "{what} failed");
    OAuthError::internal()
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(e: OAuthError) -> (u16, String, Option<String>) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(resp.headers()[PRAGMA], "no-cache");
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned(), www)
    }

    #[tokio::test]
    async fn a_full_queue_is_a_503_with_retry_after() {
        let full = || OAuthError::TemporarilyUnavailable {
            retry_after: RETRY_AFTER_SECS,
        };
        let resp = full().into_response();
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        let (status, body, _) = render(full()).await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            r#"{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable. Try again later."}"#
        );
    }

    #[tokio::test]
    async fn wire_bodies() {
        let cases = [
            (
                OAuthError::InvalidGrant(WRONG_CREDENTIALS),
                403,
                r#"{"error":"invalid_grant","error_description":"Wrong email or password."}"#,
            ),
            (
                OAuthError::UnauthorizedClient("password".into()),
                403,
                r#"{"error":"unauthorized_client","error_description":"Grant type 'password' not allowed for the client."}"#,
            ),
            (
                OAuthError::InvalidClient { basic: false },
                401,
                r#"{"error":"access_denied","error_description":"Unauthorized"}"#,
            ),
            (
                OAuthError::UnsupportedGrantType("x".into()),
                400,
                r#"{"error":"unsupported_grant_type","error_description":"Grant type 'x' not supported."}"#,
            ),
            (
                OAuthError::Unauthorized("user is blocked".into()),
                401,
                r#"{"error":"unauthorized","error_description":"user is blocked"}"#,
            ),
            (
                OAuthError::AccessDenied("Service not found: a".into()),
                403,
                r#"{"error":"access_denied","error_description":"Service not found: a"}"#,
            ),
            (
                OAuthError::ServerError(
                    "Authorization server not configured with default connection.",
                ),
                500,
                r#"{"error":"server_error","error_description":"Authorization server not configured with default connection."}"#,
            ),
        ];
        for (err, status, body) in cases {
            let (s, b, _) = render(err).await;
            assert_eq!((s, b.as_str()), (status, body));
        }
        let (s, b, _) = render(OAuthError::InteractionRequired).await;
        assert_eq!(
            (s, b.as_str()),
            (
                400,
                r#"{"error":"interaction_required","error_description":"Redirects are not supported in the password exchange."}"#
            )
        );
        let (s, b, _) = render(OAuthError::TooManyAttempts(BRUTE_FORCE_BLOCKED)).await;
        assert_eq!(
            (s, b.as_str()),
            (
                429,
                r#"{"error":"too_many_attempts","error_description":"Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it."}"#
            )
        );
        let limited = OAuthError::TooManyRequests {
            limit: 100,
            retry_after: 7,
            reset: 1_000,
        }
        .into_response();
        let h = |n: &str| limited.headers()[n].to_str().unwrap_or("").to_string();
        assert_eq!(limited.status(), 429);
        assert_eq!(
            [
                h("retry-after"),
                h("x-ratelimit-limit"),
                h("x-ratelimit-remaining"),
                h("x-ratelimit-reset")
            ],
            ["7", "100", "0", "1000"]
        );
        let busy = OAuthError::TemporarilyUnavailable { retry_after: 0 }.into_response();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers()[RETRY_AFTER], "1");
        let (s, b, _) = render(OAuthError::TemporarilyUnavailable { retry_after: 2 }).await;
        assert_eq!(
            (s, b.as_str()),
            (
                503,
                r#"{"error":"temporarily_unavailable","error_description":"The service is temporarily unavailable. Try again later."}"#
            )
        );
        let (_, _, www) = render(OAuthError::InvalidClient { basic: true }).await;
        assert_eq!(www.as_deref(), Some("Basic realm=\"passgate\""));
    }
}
