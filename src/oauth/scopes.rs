//! Which scopes a token gets, and for which audience (docs/architecture.md, "The token endpoint").
//!
//! When the request names no scope of the audience's API, the token gets all
//! of the API's scopes (the implied trust of the password flow); when it names
//! some, it gets those the API defines, unknown ones dropped, and none left is
//! `invalid_scope`. The OpenID scopes are never API scopes: they are kept when
//! asked for.

use super::error::OAuthError;
use crate::config::ApiConfig;

/// The OpenID Connect scopes.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The scopes granted for a request's `scope` parameter against `api`.
pub fn resolve(requested: Option<&str>, api: &ApiConfig) -> Result<Vec<String>, OAuthError> {
    let asked: Vec<&str> = requested
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let mut granted: Vec<String> = OIDC_SCOPES
        .iter()
        .filter(|o| asked.contains(o))
        .map(|s| s.to_string())
        .collect();
    let asked_api: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|s| !OIDC_SCOPES.contains(s))
        .collect();
    if asked_api.is_empty() {
        granted.extend(api.scopes.iter().cloned());
    } else {
        let mut known: Vec<String> = Vec::new();
        for s in asked_api {
            if api.scopes.iter().any(|a| a == s) && !known.iter().any(|k| k == s) {
                known.push(s.to_string());
            }
        }
        if known.is_empty() {
            return Err(OAuthError::InvalidScope(format!(
                "none of the requested scopes is defined by the API {}",
                api.audience
            )));
        }
        granted.extend(known);
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn api() -> ApiConfig {
        ApiConfig {
            audience: "https://api".into(),
            scopes: vec!["read:items".into(), "write:items".into()],
            token_lifetime: Duration::from_secs(60),
            allow_offline_access: true,
        }
    }

    #[test]
    fn table() {
        let cases: &[(Option<&str>, Result<&str, ()>)] = &[
            (None, Ok("read:items write:items")),
            (Some("openid"), Ok("openid read:items write:items")),
            (
                Some("profile openid email"),
                Ok("openid profile email read:items write:items"),
            ),
            (Some("read:items"), Ok("read:items")),
            (Some("openid read:items unknown"), Ok("openid read:items")),
            (Some("unknown"), Err(())),
            (Some("read:items read:items"), Ok("read:items")),
        ];
        for (asked, want) in cases {
            let got = resolve(*asked, &api()).map(|v| v.join(" ")).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), *want, "{asked:?}");
        }
    }
}
