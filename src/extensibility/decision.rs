//! What a script chain decided, read back from JavaScript and checked here:
//! the JavaScript side is not trusted to enforce anything.
//!
//! - claims named in Auth0's restricted list (plus `scope`) are dropped with
//!   a warning, so no script can fake `amr`, `sid` or `gty`;
//! - only scopes the API defines may be added (others are dropped with a
//!   warning); removing any scope is allowed.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Claims no script may set (Auth0's list, `../shared/spec/protocol.md`), plus `scope`.
pub const RESTRICTED_CLAIMS: &[&str] = &[
    "acr",
    "act",
    "active",
    "amr",
    "at_hash",
    "ath",
    "attest",
    "aud",
    "auth_time",
    "authorization_details",
    "azp",
    "c_hash",
    "client_id",
    "cnf",
    "cty",
    "dest",
    "entitlements",
    "events",
    "exp",
    "groups",
    "gty",
    "htm",
    "htu",
    "iat",
    "internalService",
    "iss",
    "jcard",
    "jku",
    "jti",
    "jwe",
    "jwk",
    "kid",
    "may_act",
    "mky",
    "nbf",
    "nonce",
    "object_id",
    "org_id",
    "org_name",
    "orig",
    "origid",
    "permissions",
    "roles",
    "rph",
    "s_hash",
    "sid",
    "sub",
    "sub_jwk",
    "toe",
    "txn",
    "typ",
    "uuid",
    "vot",
    "vtm",
    "x5t#S256",
    "scope",
];

/// How a chain refused the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `callback(new UnauthorizedError(msg))`: 401 `unauthorized`.
    Unauthorized(String),
    /// An `Error`, a string, a throw, or `api.access.deny`: 403 `access_denied`.
    AccessDenied(String),
    /// `context.redirect` or `api.redirect.sendUserTo`: 400 `interaction_required`.
    Redirect,
}

/// What a chain changes in a login that goes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// The scopes to grant.
    pub scopes: Vec<String>,
    /// Extra access-token claims.
    pub access_claims: Map<String, Value>,
    /// Extra ID-token claims.
    pub id_claims: Map<String, Value>,
    /// The user's whole new `app_metadata`.
    pub app_metadata: Option<Value>,
    /// The user's whole new `user_metadata`.
    pub user_metadata: Option<Value>,
    /// A second factor demanded (the provider named, `"any"` when none).
    pub mfa: Option<String>,
    /// Why something a script asked for was ignored.
    pub warnings: Vec<String>,
    /// What scripts wrote with `console.log`.
    pub logs: Vec<String>,
}

/// A chain's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The login goes on with these changes.
    Continue(Changes),
    /// The login is refused.
    Refused(Refusal),
}

#[derive(Deserialize)]
struct RawOutcome {
    outcome: Option<RawStop>,
    #[serde(default)]
    redirect: bool,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    access: Map<String, Value>,
    #[serde(default)]
    id: Map<String, Value>,
    app_metadata: Option<Value>,
    user_metadata: Option<Value>,
    mfa: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    logs: Vec<String>,
}

#[derive(Deserialize)]
struct RawStop {
    deny: Option<String>,
    message: Option<String>,
}

/// Read the chain's JSON outcome and check it against the login:
/// `granted` are the scopes before any script, `api_scopes` those the API defines.
pub fn read(json: &str, granted: &[String], api_scopes: &[String]) -> Result<Verdict, String> {
    let raw: RawOutcome =
        serde_json::from_str(json).map_err(|e| format!("unreadable outcome: {e}"))?;
    if let Some(stop) = raw.outcome {
        let message = stop.message.unwrap_or_default();
        return Ok(Verdict::Refused(match stop.deny.as_deref() {
            Some("unauthorized") => Refusal::Unauthorized(message),
            _ => Refusal::AccessDenied(message),
        }));
    }
    if raw.redirect {
        return Ok(Verdict::Refused(Refusal::Redirect));
    }
    let mut warnings = raw.warnings;
    let mut scopes: Vec<String> = Vec::new();
    for s in raw.scopes {
        if scopes.contains(&s) {
            continue;
        }
        if granted.contains(&s) || api_scopes.contains(&s) {
            scopes.push(s);
        } else {
            warnings.push(format!("scope \"{s}\" ignored: the API does not define it"));
        }
    }
    let access_claims = unrestricted(raw.access, "access", &mut warnings);
    let id_claims = unrestricted(raw.id, "ID", &mut warnings);
    Ok(Verdict::Continue(Changes {
        scopes,
        access_claims,
        id_claims,
        app_metadata: raw.app_metadata.filter(Value::is_object),
        user_metadata: raw.user_metadata.filter(Value::is_object),
        mfa: raw.mfa,
        warnings,
        logs: raw.logs,
    }))
}

fn unrestricted(
    claims: Map<String, Value>,
    token: &str,
    warnings: &mut Vec<String>,
) -> Map<String, Value> {
    claims
        .into_iter()
        .filter(|(name, _)| {
            let allowed = !RESTRICTED_CLAIMS.contains(&name.as_str());
            if !allowed {
                warnings.push(format!(
                    "{token}-token claim \"{name}\" ignored: it is restricted"
                ));
            }
            allowed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn restricted_claims_and_unknown_scopes_are_dropped_with_warnings() {
        let json = r#"{"outcome":null,"redirect":false,
            "scopes":["openid","read:items","admin:all","read:items"],
            "access":{"amr":["mfa"],"https://x/roles":["a"],"scope":"x","sid":"s"},
            "id":{"gty":"password","n":1},"app_metadata":{"c":1},"user_metadata":null,
            "mfa":null,"warnings":[],"logs":[]}"#;
        let Ok(Verdict::Continue(c)) = read(
            json,
            &strings(&["openid", "read:items"]),
            &strings(&["read:items", "write:items"]),
        ) else {
            panic!("not a continue");
        };
        assert_eq!(c.scopes, strings(&["openid", "read:items"]));
        assert_eq!(
            c.access_claims.keys().collect::<Vec<_>>(),
            ["https://x/roles"]
        );
        assert_eq!(c.id_claims.keys().collect::<Vec<_>>(), ["n"]);
        assert_eq!(c.app_metadata, Some(serde_json::json!({"c": 1})));
        assert_eq!(c.warnings.len(), 5, "{:?}", c.warnings);
    }

    #[test]
    fn refusals() {
        let read = |j: &str| read(j, &[], &[]);
        assert_eq!(
            read(r#"{"outcome":{"deny":"unauthorized","message":"no"}}"#),
            Ok(Verdict::Refused(Refusal::Unauthorized("no".into())))
        );
        assert_eq!(
            read(r#"{"outcome":{"deny":"access_denied","message":"x"}}"#),
            Ok(Verdict::Refused(Refusal::AccessDenied("x".into())))
        );
        assert_eq!(
            read(r#"{"outcome":null,"redirect":true}"#),
            Ok(Verdict::Refused(Refusal::Redirect))
        );
    }
}
