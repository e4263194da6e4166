//! The claims of a verified access token, parsed once and kept in the cache.

use http::HeaderValue;
use serde_json::{Map, Value};

/// Claims the gate reads, plus the whole claim set for `claims_to_headers`.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `iss`
    pub iss: String,
    /// `sub`
    pub sub: Option<String>,
    /// `aud`, as a list whether the token wrote a string or an array.
    pub aud: Vec<String>,
    /// `exp` (seconds since the epoch); for a legacy own token, no later than
    /// its legacy window allows (see `typ.rs`).
    pub exp: i64,
    /// `nbf`
    pub nbf: Option<i64>,
    /// `azp`, else `client_id`.
    pub client: Option<String>,
    /// Scopes from `scope` (space-separated), else `scp` or `scopes` (array or string).
    pub scopes: Vec<String>,
    /// `sid`: the login session.
    pub sid: Option<String>,
    /// `iat`
    pub iat: Option<i64>,
    /// Every claim.
    pub raw: Map<String, Value>,
}

/// Why a payload is not a usable claim set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsError {
    /// Not a JSON object.
    NotAnObject,
    /// No `iss` string.
    NoIssuer,
    /// No numeric `exp`.
    NoExpiry,
    /// A registered claim has the wrong type.
    BadClaim(&'static str),
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn string_list(v: &Value, split_spaces: bool) -> Option<Vec<String>> {
    match v {
        Value::String(s) if split_spaces => Some(
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

impl Claims {
    /// Read the claims from a decoded JSON payload.
    pub fn from_json(payload: &[u8]) -> Result<Claims, ClaimsError> {
        let raw: Map<String, Value> =
            serde_json::from_slice(payload).map_err(|_| ClaimsError::NotAnObject)?;
        let iss = raw
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(ClaimsError::NoIssuer)?
            .to_string();
        let exp = raw
            .get("exp")
            .and_then(number)
            .ok_or(ClaimsError::NoExpiry)?;
        let nbf = match raw.get("nbf") {
            None => None,
            Some(v) => Some(number(v).ok_or(ClaimsError::BadClaim("nbf"))?),
        };
        let iat = raw.get("iat").and_then(number);
        let aud = match raw.get("aud") {
            None => Vec::new(),
            Some(v) => string_list(v, false).ok_or(ClaimsError::BadClaim("aud"))?,
        };
        let sub = match raw.get("sub") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ClaimsError::BadClaim("sub")),
        };
        let client = ["azp", "client_id"]
            .iter()
            .find_map(|k| raw.get(*k).and_then(Value::as_str))
            .map(str::to_string);
        let scopes = if let Some(v) = raw.get("scope") {
            string_list(v, true).ok_or(ClaimsError::BadClaim("scope"))?
        } else if let Some(v) = raw.get("scp").or_else(|| raw.get("scopes")) {
            string_list(v, true).ok_or(ClaimsError::BadClaim("scp"))?
        } else {
            Vec::new()
        };
        let sid = raw.get("sid").and_then(Value::as_str).map(str::to_string);
        Ok(Claims {
            iss,
            sub,
            aud,
            exp,
            nbf,
            client,
            scopes,
            sid,
            iat,
            raw,
        })
    }

    /// True when every scope in `needed` is granted, each matched as a whole token.
    pub fn has_scopes(&self, needed: &[String]) -> bool {
        needed.iter().all(|n| self.scopes.iter().any(|s| s == n))
    }

    /// True when `amr` contains `mfa`: the login did a second factor.
    pub fn did_mfa(&self) -> bool {
        self.raw
            .get("amr")
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.iter().any(|m| m == "mfa"))
    }

    /// True when the token's audience includes `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.aud.iter().any(|a| a == audience)
    }
}

/// The identity headers of a verified token, computed once per token.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// `X-Auth-Subject`
    pub subject: Option<HeaderValue>,
    /// `X-Auth-Scope`
    pub scope: Option<HeaderValue>,
    /// `X-Auth-Client`
    pub client: Option<HeaderValue>,
}

impl IdentityHeaders {
    /// From the claims; values that cannot be header values are left out.
    pub fn from_claims(claims: &Claims) -> Self {
        let value = |s: &str| HeaderValue::from_bytes(s.as_bytes()).ok();
        Self {
            subject: claims.sub.as_deref().and_then(value),
            scope: (!claims.scopes.is_empty())
                .then(|| value(&claims.scopes.join(" ")))
                .flatten(),
            client: claims.client.as_deref().and_then(value),
        }
    }
}

/// Resolve a claim path: the whole path as a claim name first (so URL-named
/// claims like `https://example.com/roles` work), then dotted steps into nested
/// objects, preferring the longest name that exists at each level.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut cut = path.len();
    while let Some(dot) = path[..cut].rfind('.') {
        if let Some(Value::Object(inner)) = claims.get(&path[..dot])
            && let Some(v) = lookup(inner, &path[dot + 1..])
        {
            return Some(v);
        }
        cut = dot;
    }
    None
}

/// A claim value as header text: strings as they are, arrays comma-joined,
/// numbers and booleans printed, objects as compact JSON.
pub fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Result<Claims, ClaimsError> {
        Claims::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn audience_string_or_array() {
        let c =
            claims(json!({"iss": "i", "exp": 1, "aud": "a"})).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.has_audience("a"));
        let c = claims(json!({"iss": "i", "exp": 1, "aud": ["x", "a"]}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.has_audience("a") && !c.has_audience("b"));
        assert_eq!(
            claims(json!({"iss": "i", "exp": 1, "aud": 5})).err(),
            Some(ClaimsError::BadClaim("aud"))
        );
    }

    #[test]
    fn scopes_from_scope_scp_or_scopes_as_whole_tokens() {
        let c = claims(json!({"iss": "i", "exp": 1, "scope": "read:items superadmin"}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.has_scopes(&["read:items".into()]));
        assert!(
            !c.has_scopes(&["admin".into()]),
            "admin must not match superadmin"
        );
        let c = claims(json!({"iss": "i", "exp": 1, "scp": ["a", "b"]}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.has_scopes(&["a".into(), "b".into()]));
        let c = claims(json!({"iss": "i", "exp": 1, "scopes": "a b"}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.has_scopes(&["b".into()]));
    }

    #[test]
    fn required_claims() {
        assert_eq!(claims(json!({"exp": 1})).err(), Some(ClaimsError::NoIssuer));
        assert_eq!(
            claims(json!({"iss": "i"})).err(),
            Some(ClaimsError::NoExpiry)
        );
        assert_eq!(claims(json!([1])).err(), Some(ClaimsError::NotAnObject));
    }

    #[test]
    fn claim_paths() {
        let c = json!({
            "https://example.com/roles": ["admin", "ops"],
            "app_metadata": {"plan": "gold", "limits": {"rps": 10}},
            "https://example.com/app": {"tier": "b"},
            "n": 3
        });
        let m = c.as_object().cloned().unwrap_or_default();
        let get = |p: &str| lookup(&m, p).and_then(header_text);
        assert_eq!(
            get("https://example.com/roles").as_deref(),
            Some("admin,ops")
        );
        assert_eq!(get("app_metadata.plan").as_deref(), Some("gold"));
        assert_eq!(get("app_metadata.limits.rps").as_deref(), Some("10"));
        assert_eq!(get("https://example.com/app.tier").as_deref(), Some("b"));
        assert_eq!(get("n").as_deref(), Some("3"));
        assert_eq!(get("missing"), None);
        assert_eq!(get("app_metadata.nothing"), None);
    }
}
