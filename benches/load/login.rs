//! `/oauth/token` on the wire: request bodies for the password and
//! refresh_token grants, and what an answer means for the bench.

use serde::Serialize;

/// A confidential or public client and where its logins go.
#[derive(Debug, Clone)]
pub struct Client {
    /// client_id
    pub id: String,
    /// client_secret, when the client has one.
    pub secret: Option<String>,
    /// audience, when not the server's default.
    pub audience: Option<String>,
}

#[derive(Serialize)]
struct PasswordForm<'a> {
    grant_type: &'static str,
    username: &'a str,
    password: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

#[derive(Serialize)]
struct RefreshForm<'a> {
    grant_type: &'static str,
    refresh_token: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
}

/// A `grant_type=password` form body.
pub fn password_form(
    client: &Client,
    username: &str,
    password: &str,
    scope: Option<&str>,
) -> String {
    serde_urlencoded::to_string(PasswordForm {
        grant_type: "password",
        username,
        password,
        client_id: &client.id,
        client_secret: client.secret.as_deref(),
        audience: client.audience.as_deref(),
        scope,
    })
    .unwrap_or_default()
}

/// A `grant_type=refresh_token` form body.
pub fn refresh_form(client: &Client, refresh_token: &str) -> String {
    serde_urlencoded::to_string(RefreshForm {
        grant_type: "refresh_token",
        refresh_token,
        client_id: &client.id,
        client_secret: client.secret.as_deref(),
    })
    .unwrap_or_default()
}

/// What a token-endpoint answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with tokens.
    Tokens {
        /// access_token
        access: String,
        /// refresh_token, when one was issued.
        refresh: Option<String>,
    },
    /// An error answer: its status and its `error` code (`http_<status>` when the body has none).
    Error {
        /// HTTP status.
        status: u16,
        /// The `error` field, or `http_<status>`.
        code: String,
    },
}

/// Read a token-endpoint answer.
pub fn parse_reply(status: u16, body: &[u8]) -> Reply {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (status, field("access_token")) {
        (200, Some(access)) => Reply::Tokens {
            access,
            refresh: field("refresh_token"),
        },
        (200, None) => Reply::Error {
            status,
            code: "no_access_token".into(),
        },
        _ => Reply::Error {
            status,
            code: field("error").unwrap_or_else(|| format!("http_{status}")),
        },
    }
}

/// The address worker `i` logs in from (auth0-forwarded-for), in 198.18.0.0/15
/// (benchmarking addresses).
pub fn worker_ip(i: usize) -> String {
    format!("198.18.{}.{}", (i >> 8) & 0xff, i & 0xff)
}

/// Flood address `k`, in 10.0.0.0/8.
pub fn flood_ip(k: u32) -> String {
    format!("10.{}.{}.{}", (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn client(secret: bool) -> Client {
        Client {
            id: "app".into(),
            secret: secret.then(|| "s&cret".into()),
            audience: Some("https://api.example.com".into()),
        }
    }

    #[test]
    fn forms_are_url_encoded() {
        let f = password_form(&client(true), "a@b.c", "p w=d", Some("offline_access"));
        assert_eq!(
            f,
            "grant_type=password&username=a%40b.c&password=p+w%3Dd&client_id=app&client_secret=s%26cret\
             &audience=https%3A%2F%2Fapi.example.com&scope=offline_access"
        );
        let f = refresh_form(&client(false), "r/t");
        assert_eq!(
            f,
            "grant_type=refresh_token&refresh_token=r%2Ft&client_id=app"
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(
                200,
                br#"{"access_token":"a","refresh_token":"r","token_type":"Bearer"}"#
            ),
            Reply::Tokens {
                access: "a".into(),
                refresh: Some("r".into())
            }
        );
        assert_eq!(
            parse_reply(200, br#"{"access_token":"a"}"#),
            Reply::Tokens {
                access: "a".into(),
                refresh: None
            }
        );
        assert_eq!(
            parse_reply(
                400,
                br#"{"error":"unsupported_grant_type","error_description":"x"}"#
            ),
            Reply::Error {
                status: 400,
                code: "unsupported_grant_type".into()
            }
        );
        assert_eq!(
            parse_reply(502, b"<html>"),
            Reply::Error {
                status: 502,
                code: "http_502".into()
            }
        );
        assert_eq!(
            parse_reply(200, b"{}"),
            Reply::Error {
                status: 200,
                code: "no_access_token".into()
            }
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(worker_ip(0), "198.18.0.0");
        assert_eq!(worker_ip(258), "198.18.1.2");
        assert_eq!(flood_ip(0x010203), "10.1.2.3");
    }
}
