//! Client authentication at the token and revocation endpoints: exactly one of
//! HTTP Basic, `client_id` + `client_secret` in the body, or `client_id` alone
//! for a public client. Secrets are compared in constant time (over their
//! SHA-256, so lengths leak nothing), and an unknown client costs the same
//! comparison as a known one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::OAuthError;
use super::request::Params;
use crate::config::ClientConfig;

/// Defined below the token endpoint, where the protector reads it too.
pub use crate::protect::ClientAuth;

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidRequest(
            "more than one Authorization header".into(),
        ));
    }
    let text = value.to_str().unwrap_or("");
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(OAuthError::InvalidClient { basic: true })?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or(OAuthError::InvalidClient { basic: true })?;
    Ok(Some((id.to_string(), secret.to_string())))
}

fn same_secret(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// Find and authenticate the client of a request.
pub fn authenticate<'c>(
    clients: &'c [ClientConfig],
    headers: &HeaderMap,
    params: &Params,
) -> Result<(&'c ClientConfig, ClientAuth), OAuthError> {
    let basic = basic_credentials(headers)?;
    let is_basic = basic.is_some();
    let (id, secret) = match basic {
        Some((id, secret)) => {
            if params.get("client_secret").is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not Basic and client_secret".into(),
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the Basic credentials".into(),
                ));
            }
            (id, Some(secret))
        }
        None => (
            params.require("client_id")?.to_string(),
            params.get("client_secret").map(str::to_string),
        ),
    };
    let denied = OAuthError::InvalidClient { basic: is_basic };
    let Some(client) = clients.iter().find(|c| c.id == id) else {
        // Spend the same comparison as for a known client.
        let _ = same_secret(
            secret.as_deref().unwrap_or(""),
            "unknown-client-placeholder",
        );
        return Err(denied);
    };
    match (&client.secret, secret) {
        (Some(expected), Some(presented)) if same_secret(&presented, expected.expose()) => {
            Ok((client, ClientAuth::Secret))
        }
        (None, None) => Ok((client, ClientAuth::Public)),
        _ => Err(denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use http::HeaderValue;

    fn clients() -> Vec<ClientConfig> {
        let c = |id: &str, secret: Option<&str>| ClientConfig {
            id: id.into(),
            name: id.into(),
            secret: secret.map(|s| Secret::new(s.into())),
            grant_types: vec!["password".into()],
            realms: vec![],
            trust_forwarded_for: false,
            refresh: Default::default(),
        };
        vec![c("conf", Some("s3cret")), c("pub", None)]
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("x")),
        );
        h
    }

    #[test]
    fn table() {
        let cs = clients();
        let none = HeaderMap::new();
        let p = Params::from_pairs;
        let ok =
            |r: Result<(&ClientConfig, ClientAuth), OAuthError>| r.map(|(c, a)| (c.id.clone(), a));
        assert_eq!(
            ok(authenticate(
                &cs,
                &none,
                &p(&[("client_id", "conf"), ("client_secret", "s3cret")])
            )),
            Ok(("conf".into(), ClientAuth::Secret))
        );
        assert_eq!(
            ok(authenticate(&cs, &basic("conf", "s3cret"), &p(&[]))),
            Ok(("conf".into(), ClientAuth::Secret))
        );
        assert_eq!(
            ok(authenticate(&cs, &none, &p(&[("client_id", "pub")]))),
            Ok(("pub".into(), ClientAuth::Public))
        );
        assert_eq!(
            ok(authenticate(&cs, &none, &p(&[("client_id", "conf")]))),
            Err(OAuthError::InvalidClient { basic: false })
        );
        assert_eq!(
            ok(authenticate(
                &cs,
                &none,
                &p(&[("client_id", "conf"), ("client_secret", "nope")])
            )),
            Err(OAuthError::InvalidClient { basic: false })
        );
        assert_eq!(
            ok(authenticate(&cs, &basic("conf", "nope"), &p(&[]))),
            Err(OAuthError::InvalidClient { basic: true })
        );
        assert_eq!(
            ok(authenticate(
                &cs,
                &none,
                &p(&[("client_id", "ghost"), ("client_secret", "x")])
            )),
            Err(OAuthError::InvalidClient { basic: false })
        );
        assert_eq!(
            ok(authenticate(
                &cs,
                &none,
                &p(&[("client_id", "pub"), ("client_secret", "x")])
            )),
            Err(OAuthError::InvalidClient { basic: false })
        );
        assert!(matches!(
            authenticate(
                &cs,
                &basic("conf", "s3cret"),
                &p(&[("client_secret", "s3cret")])
            ),
            Err(OAuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            authenticate(&cs, &none, &p(&[])),
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
