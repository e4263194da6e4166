//! Checks on a request's head before passgate acts on it: the size of its
//! header section (431 past `server.max_header_size`) and its `Host`.
//!
//! `Host` follows RFC 9112 §3.2 and RFC 9113 §8.3.1:
//! - HTTP/1.1 without `Host`, or any request with more than one, is refused (400);
//! - an HTTP/1.x absolute-form target (`GET https://a.example/x`) wins over
//!   `Host`, which is replaced by the target's authority (RFC 9112 §3.2.2);
//! - HTTP/2 with a `host` header that names another authority than
//!   `:authority` is refused (400).
//!
//! Whether the host is well formed is checked elsewhere; this module only
//! decides which host the request is for, or that it has none.

use http::header::HOST;
use http::{HeaderValue, Request, Response, StatusCode, Version};

use super::body::ResponseBody;
use super::response::{Fault, close_connection, gateway_error};

/// Why a request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The header section is larger than `server.max_header_size`.
    #[error("the request headers ({size} bytes) exceed the limit of {limit} bytes")]
    TooLarge {
        /// The header section's size, as counted by [`header_section_size`].
        size: usize,
        /// `server.max_header_size`.
        limit: usize,
    },
    /// An HTTP/1.1 request without `Host`.
    #[error("the request has no Host header")]
    MissingHost,
    /// More than one `Host` header.
    #[error("the request has more than one Host header")]
    DuplicateHost,
    /// An HTTP/2 `host` header that differs from `:authority`.
    #[error("the Host header differs from the request's :authority")]
    ConflictingHost,
}

impl HeadError {
    /// The client's answer. The connection closes after it on HTTP/1.1: the
    /// rest of such a request is not worth reading.
    pub fn into_response(self) -> Response<ResponseBody> {
        let description = self.to_string();
        let resp = match self {
            HeadError::TooLarge { .. } => gateway_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
                &description,
                Fault::Client,
            ),
            HeadError::MissingHost | HeadError::DuplicateHost | HeadError::ConflictingHost => {
                gateway_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &description,
                    Fault::Client,
                )
            }
        };
        close_connection(resp)
    }
}

/// Check `req`'s head, replacing `Host` by an absolute-form target's authority.
pub fn check<B>(req: &mut Request<B>, max_header_size: usize) -> Result<(), HeadError> {
    let size = header_section_size(req);
    if size > max_header_size {
        return Err(HeadError::TooLarge {
            size,
            limit: max_header_size,
        });
    }
    settle_host(req)
}

/// The size of the request's head as HTTP/1.1 would write it: the request
/// line plus, for each field, its name, value, `": "` and CRLF. An HTTP/2
/// `:authority` without a `host` header counts as one.
pub fn header_section_size<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let request_line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let authority = match (
        req.version() >= Version::HTTP_2,
        req.headers().contains_key(HOST),
    ) {
        (true, false) => uri
            .authority()
            .map_or(0, |a| "host".len() + a.as_str().len() + 4),
        _ => 0,
    };
    request_line + fields + authority + 2
}

fn settle_host<B>(req: &mut Request<B>) -> Result<(), HeadError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HeadError::DuplicateHost);
    }
    let authority = req.uri().authority();
    if req.version() >= Version::HTTP_2 {
        return match (host, authority) {
            (Some(host), Some(authority))
                if !host
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
            {
                Err(HeadError::ConflictingHost)
            }
            _ => Ok(()),
        };
    }
    if host.is_none() && req.version() == Version::HTTP_11 {
        return Err(HeadError::MissingHost);
    }
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
    let replacement = match authority {
        Some(a) if host.map(HeaderValue::as_bytes) != Some(a.as_str().as_bytes()) => {
            HeaderValue::from_str(a.as_str()).ok()
        }
        _ => None,
    };
    if let Some(value) = replacement {
        req.headers_mut().insert(HOST, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn host_rules() {
        use HeadError::*;
        let h1 = Version::HTTP_11;
        let h2 = Version::HTTP_2;
        type Case<'a> = (
            Version,
            &'a str,
            &'a [&'a str],
            Result<Option<&'a str>, HeadError>,
        );
        let cases: &[Case] = &[
            (h1, "/x", &["a.example"], Ok(Some("a.example"))),
            (h1, "/x", &[], Err(MissingHost)),
            (h1, "/x", &["a.example", "b.example"], Err(DuplicateHost)),
            (h1, "/x", &["a.example", "a.example"], Err(DuplicateHost)),
            (
                h1,
                "https://b.example/x",
                &["a.example"],
                Ok(Some("b.example")),
            ),
            (h1, "https://b.example/x", &[], Err(MissingHost)),
            (Version::HTTP_10, "/x", &[], Ok(None)),
            (h2, "https://a.example/x", &[], Ok(None)),
            (
                h2,
                "https://a.example/x",
                &["A.example"],
                Ok(Some("A.example")),
            ),
            (
                h2,
                "https://a.example/x",
                &["b.example"],
                Err(ConflictingHost),
            ),
            (
                h2,
                "https://a.example:8443/x",
                &["a.example"],
                Err(ConflictingHost),
            ),
            (h2, "/x", &["a.example"], Ok(Some("a.example"))),
        ];
        for (version, uri, hosts, want) in cases {
            let mut req = request(*version, uri, hosts);
            let got = check(&mut req, 64 * 1024).map(|()| {
                req.headers()
                    .get(HOST)
                    .map(|v| v.to_str().unwrap_or("?").to_owned())
            });
            let want = want.clone().map(|h| h.map(str::to_owned));
            assert_eq!(got, want, "{version:?} {uri} {hosts:?}");
        }
    }

    #[test]
    fn header_size_counts_the_request_line_and_fields() {
        let req = request(Version::HTTP_11, "/abc", &["a.example"]);
        // "GET /abc HTTP/1.1\r\n" + "host: a.example\r\n" + "\r\n"
        assert_eq!(header_section_size(&req), 19 + 17 + 2);
        let h2 = request(Version::HTTP_2, "https://a.example/abc", &[]);
        assert_eq!(
            header_section_size(&h2),
            "GET https://a.example/abc HTTP/1.1\r\n".len() + 17 + 2
        );
        let mut big = request(Version::HTTP_11, "/", &["a"]);
        let value =
            HeaderValue::from_str(&"v".repeat(2000)).unwrap_or(HeaderValue::from_static(""));
        big.headers_mut().insert("x-big", value);
        assert_eq!(
            check(&mut big, 1024),
            Err(HeadError::TooLarge {
                size: header_section_size(&big),
                limit: 1024
            })
        );
    }

    #[tokio::test]
    async fn refusals_render_as_json() {
        use http_body_util::BodyExt;
        let resp = HeadError::TooLarge { size: 2, limit: 1 }.into_response();
        assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(resp.headers()[http::header::CONNECTION], "close");
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let json: serde_json::Value =
            serde_json::from_slice(&body.unwrap_or_default()).unwrap_or_default();
        assert_eq!(json["error"], "request_header_fields_too_large");
        let resp = HeadError::MissingHost.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}
