//! Reading a token-endpoint request body: `application/x-www-form-urlencoded`
//! or `application/json`, at most 16 KiB, read through `Limited` (the only
//! body passgate ever collects), each wait for the client bounded by
//! `server.body_read_timeout`. Empty values and JSON `null` count as absent;
//! a form parameter given twice is an invalid request (RFC 6749 §3.2).

use std::collections::HashMap;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::error::OAuthError;
use crate::http::connection::ConnContext;
use crate::http::read_timeout::{BodyReadTimeout, Progress, TimedBody};

/// The body limit of the token and revocation endpoints.
pub const MAX_BODY: usize = 16 * 1024;

/// The parameters of a request, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// A present, non-empty parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter the request must have: `missing <name> parameter` otherwise.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("missing {name} parameter")))
    }

    /// Every parameter, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Build from pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Params(
            pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Form,
    Json,
}

fn kind(headers: &HeaderMap) -> Result<Kind, OAuthError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match ct.as_deref() {
        Some("application/x-www-form-urlencoded") => Ok(Kind::Form),
        Some("application/json") => Ok(Kind::Json),
        _ => Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded or application/json".into(),
        )),
    }
}

/// Read and parse the body of `req`.
pub async fn read(req: Request<Incoming>) -> Result<(http::request::Parts, Params), OAuthError> {
    let kind = kind(req.headers())?;
    let (parts, bytes) = read_bytes(req).await?;
    Ok((parts, parse(kind, &bytes)?))
}

/// Read a JSON body of `req` (size cap, read deadline) into `T`.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, T), OAuthError> {
    if !matches!(kind(req.headers())?, Kind::Json) {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/json".into(),
        ));
    }
    let (parts, bytes) = read_bytes(req).await?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| OAuthError::InvalidRequest(format!("the JSON body is malformed: {e}")))?;
    Ok((parts, value))
}

async fn read_bytes(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, bytes::Bytes), OAuthError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(OAuthError::TooLarge(MAX_BODY));
    }
    let read_timeout = ConnContext::of(&parts.extensions).map(|c| c.body_read_timeout);
    let body = TimedBody::new(body, read_timeout, Progress::new());
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(OAuthError::TooLarge(MAX_BODY));
        }
        Err(e) if e.is::<BodyReadTimeout>() => return Err(OAuthError::RequestTimeout),
        Err(_) => {
            return Err(OAuthError::InvalidRequest(
                "the request body could not be read".into(),
            ));
        }
    };
    Ok((parts, bytes))
}

/// Parse a token-endpoint body the way [`read`] does once it has the bytes:
/// the `Content-Type` of `headers` picks form or JSON. The entry point of the
/// fuzz target and its corpus replay (`fuzz/`, `tests/fuzz_corpus.rs`).
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Params, OAuthError> {
    parse(kind(headers)?, bytes)
}

fn parse(kind: Kind, bytes: &[u8]) -> Result<Params, OAuthError> {
    let mut map = HashMap::new();
    match kind {
        Kind::Form => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
                .map_err(|_| OAuthError::InvalidRequest("the form body is malformed".into()))?;
            for (k, v) in pairs {
                if map.contains_key(&k) {
                    return Err(OAuthError::InvalidRequest(format!(
                        "the {k} parameter is given more than once"
                    )));
                }
                if !v.is_empty() {
                    map.insert(k, v);
                }
            }
        }
        Kind::Json => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|_| OAuthError::InvalidRequest("the JSON body is malformed".into()))?;
            let Value::Object(obj) = value else {
                return Err(OAuthError::InvalidRequest(
                    "the JSON body must be an object".into(),
                ));
            };
            for (k, v) in obj {
                let text = match v {
                    Value::Null => continue,
                    Value::String(s) if s.is_empty() => continue,
                    Value::String(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    Value::Array(_) | Value::Object(_) => {
                        return Err(OAuthError::InvalidRequest(format!(
                            "the {k} parameter must be a string"
                        )));
                    }
                };
                map.insert(k, text);
            }
        }
    }
    Ok(Params(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_agree_and_absent_means_absent() {
        let form = parse(
            Kind::Form,
            b"grant_type=password&username=a%40b.c&scope=&audience=x",
        )
        .unwrap_or_default();
        let json = parse(
            Kind::Json,
            br#"{"grant_type":"password","username":"a@b.c","scope":"","realm":null,"audience":"x"}"#,
        )
        .unwrap_or_default();
        assert_eq!(form, json);
        assert_eq!(form.get("username"), Some("a@b.c"));
        assert_eq!(form.get("scope"), None);
        assert_eq!(
            form.require("password"),
            Err(OAuthError::InvalidRequest(
                "missing password parameter".into()
            ))
        );
    }

    #[test]
    fn bad_bodies() {
        assert!(parse(Kind::Form, b"a=1&a=2").is_err());
        assert!(parse(Kind::Json, b"[1]").is_err());
        assert!(parse(Kind::Json, b"{\"a\": {}}").is_err());
        assert!(parse(Kind::Json, b"nope").is_err());
        let mut h = HeaderMap::new();
        assert!(kind(&h).is_err());
        h.insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(kind(&h), Ok(Kind::Json));
        h.insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        assert!(kind(&h).is_err());
    }
}
