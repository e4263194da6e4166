//! `[mfa.email]`: the relay e-mail codes go through, how the connection to it
//! is encrypted, and the login. A password never crosses the network in
//! plain text: credentials need `smtps://` or `starttls = "required"`,
//! unless the relay is on this host.

use std::path::PathBuf;

use super::*;
use crate::config::jwa::is_loopback_host;

/// `mfa.email.timeout` when absent.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn email(
    p: &mut Problems,
    raw: RawMfaEmail,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<MfaEmailConfig> {
    let target = match raw.smtp_url.as_deref() {
        Some(u) => {
            let target = smtp_target(u);
            if target.is_none() {
                p.add(
                    "mfa.email.smtp_url",
                    format!("\"{u}\" must be an smtp://host[:port] or smtps://host[:port] URL"),
                );
            }
            target
        }
        None => {
            p.add("mfa.email.smtp_url", "missing; where e-mail codes are sent");
            None
        }
    };
    let from = match raw.from {
        Some(f) if f.contains('@') && !f.contains(['\r', '\n']) => Some(f),
        Some(f) => {
            p.add(
                "mfa.email.from",
                format!("\"{f}\" is not an e-mail address"),
            );
            None
        }
        None => {
            p.add("mfa.email.from", "missing; the sender of e-mail codes");
            None
        }
    };
    let implicit = target.as_ref().is_some_and(|t| t.implicit_tls);
    let tls = match (raw.starttls.as_deref(), implicit) {
        (None, true) => SmtpTls::Implicit,
        (Some(_), true) => {
            p.add(
                "mfa.email.starttls",
                "smtps:// is encrypted from the first byte; starttls is for smtp:// URLs",
            );
            SmtpTls::Implicit
        }
        (None | Some("off"), false) => SmtpTls::Off,
        (Some("opportunistic"), false) => SmtpTls::Opportunistic,
        (Some("required"), false) => SmtpTls::Required,
        (Some(other), false) => {
            p.add(
                "mfa.email.starttls",
                format!("\"{other}\" must be \"off\", \"opportunistic\" or \"required\""),
            );
            SmtpTls::Off
        }
    };
    let credentials = credentials(p, &raw.username, raw.password, raw.password_env, env);
    if let (Some(_), Some(target)) = (&credentials, &target)
        && !tls.always_encrypted()
        && !is_loopback_host(&target.host)
    {
        p.add(
            "mfa.email.username",
            format!(
                "the password would reach {} unencrypted; use smtps:// or starttls = \"required\"",
                target.host
            ),
        );
    }
    let ca_file = match raw.ca_file {
        Some(f) if f.is_empty() => {
            p.add("mfa.email.ca_file", "is empty");
            None
        }
        Some(_) if tls == SmtpTls::Off => {
            p.add(
                "mfa.email.ca_file",
                "the relay is reached without TLS (smtp:// with starttls = \"off\"); \
                 use smtps:// or starttls, or remove ca_file",
            );
            None
        }
        Some(f) => Some(PathBuf::from(f)),
        None => None,
    };
    let timeout = p.duration("mfa.email.timeout", &raw.timeout, DEFAULT_TIMEOUT);
    let target = target?;
    Some(MfaEmailConfig {
        smtp_url: raw.smtp_url.unwrap_or_default(),
        smtp_host: target.host,
        smtp_port: target.port,
        tls,
        credentials,
        ca_file,
        timeout,
        from: from?,
    })
}

/// `username` with `password` or `password_env`: all or nothing.
fn credentials(
    p: &mut Problems,
    username: &Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SmtpCredentials> {
    let password = p
        .secret(
            ("mfa.email", "password"),
            (password, password_env),
            env,
            SecretHints::default(),
        )
        .ok()?;
    match (username.as_deref(), password) {
        (Some(""), _) => {
            p.add("mfa.email.username", "is empty");
            None
        }
        (Some(u), Some(password)) => Some(SmtpCredentials {
            username: u.to_string(),
            password,
        }),
        (Some(_), None) => {
            p.add(
                "mfa.email.username",
                "needs a password (password or password_env)",
            );
            None
        }
        (None, Some(_)) => {
            p.add("mfa.email.username", "missing; the password needs a user");
            None
        }
        (None, None) => None,
    }
}

/// Where an `smtp_url` points.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `smtps://`.
    implicit_tls: bool,
}

/// `smtp://host[:port]` (port 25) or `smtps://host[:port]` (port 465);
/// nothing else (no credentials, path or query).
fn smtp_target(url: &str) -> Option<Target> {
    let uri: http::Uri = url.parse().ok()?;
    let (implicit_tls, default_port) = match uri.scheme_str()? {
        "smtp" => (false, 25),
        "smtps" => (true, 465),
        _ => return None,
    };
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(Target {
        host: host.to_string(),
        port: authority.port_u16().unwrap_or(default_port),
        implicit_tls,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::Config;

    const FROM: &str = "from = \"passgate@example.com\"\n";

    fn email(body: &str) -> Result<MfaEmailConfig, Vec<String>> {
        let text = format!("[mfa.email]\n{FROM}{body}");
        let env = |n: &str| (n == "SMTP_PASSWORD").then(|| "s3cret".to_string());
        match Config::from_toml_with_env(&text, &env) {
            Ok(c) => Ok(c.mfa.email.expect("an [mfa.email] section")),
            Err(e) => Err(e.0),
        }
    }

    fn problems(body: &str) -> Vec<String> {
        email(body).err().unwrap_or_default()
    }

    #[test]
    fn urls_name_the_encryption_and_the_default_port() {
        for (url, host, port, implicit_tls) in [
            ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, false),
            ("smtp://relay.example.com", "relay.example.com", 25, false),
            ("smtps://relay.example.com", "relay.example.com", 465, true),
            ("smtps://[::1]:1465/", "::1", 1465, true),
        ] {
            let want = Target {
                host: host.into(),
                port,
                implicit_tls,
            };
            assert_eq!(smtp_target(url), Some(want), "{url}");
        }
        for url in [
            "http://relay",
            "smtp://user:pw@relay",
            "smtp://relay?tls=required",
            "smtp://relay/path",
            "relay:25",
        ] {
            assert_eq!(smtp_target(url), None, "{url}");
        }
    }

    #[test]
    fn starttls_and_login_are_read() {
        let c = email("smtp_url = \"smtp://relay.example.com:587\"\nstarttls = \"required\"\nusername = \"passgate\"\npassword_env = \"SMTP_PASSWORD\"\n").unwrap();
        assert_eq!(c.tls, SmtpTls::Required);
        let login = c.credentials.unwrap();
        assert_eq!(login.username, "passgate");
        assert_eq!(login.password.expose(), "s3cret");
        // Debug output (and so any log of the config) hides the password.
        assert!(!format!("{login:?}").contains("s3cret"));

        let c = email("smtp_url = \"smtps://relay.example.com\"\nusername = \"u\"\npassword = \"p\"\nca_file = \"relay-ca.pem\"\n").unwrap();
        assert_eq!((c.tls, c.smtp_port), (SmtpTls::Implicit, 465));
        assert_eq!(c.ca_file, Some(PathBuf::from("relay-ca.pem")));

        let c = email("smtp_url = \"smtp://127.0.0.1:2525\"\n").unwrap();
        assert_eq!(c.tls, SmtpTls::Off);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.credentials.is_none());
        let c = email("smtp_url = \"smtp://relay\"\nstarttls = \"opportunistic\"\n").unwrap();
        assert_eq!(c.tls, SmtpTls::Opportunistic);
        // A relay on this host may take a login without TLS.
        let c = email("smtp_url = \"smtp://localhost:2525\"\nusername = \"u\"\npassword = \"p\"\n")
            .unwrap();
        assert!(c.credentials.is_some());
    }

    #[test]
    fn a_password_never_goes_out_in_plain_text() {
        for body in [
            "smtp_url = \"smtp://relay.example.com\"\nusername = \"u\"\npassword = \"p\"\n",
            "smtp_url = \"smtp://relay.example.com\"\nstarttls = \"opportunistic\"\nusername = \"u\"\npassword = \"p\"\n",
        ] {
            let found = problems(body);
            assert!(
                found.iter().any(|p| p.starts_with(
                    "mfa.email.username: the password would reach relay.example.com unencrypted"
                )),
                "{found:?}"
            );
        }
    }

    #[test]
    fn every_email_problem_is_named() {
        let cases = [
            (
                "smtp_url = \"smtps://r\"\nstarttls = \"required\"\n",
                "mfa.email.starttls",
            ),
            (
                "smtp_url = \"smtp://r\"\nstarttls = \"yes\"\n",
                "mfa.email.starttls",
            ),
            (
                "smtp_url = \"smtp://r\"\nusername = \"u\"\n",
                "mfa.email.username",
            ),
            (
                "smtp_url = \"smtp://r\"\nusername = \"\"\npassword = \"p\"\n",
                "mfa.email.username",
            ),
            (
                "smtp_url = \"smtps://r\"\npassword = \"p\"\n",
                "mfa.email.username",
            ),
            (
                "smtp_url = \"smtps://r\"\nusername = \"u\"\npassword = \"\"\n",
                "mfa.email.password",
            ),
            (
                "smtp_url = \"smtps://r\"\nusername = \"u\"\npassword = \"p\"\npassword_env = \"SMTP_PASSWORD\"\n",
                "mfa.email.password",
            ),
            (
                "smtp_url = \"smtps://r\"\nusername = \"u\"\npassword_env = \"NOPE\"\n",
                "mfa.email.password_env: the environment variable NOPE",
            ),
            (
                "smtp_url = \"smtp://r\"\nca_file = \"ca.pem\"\n",
                "mfa.email.ca_file",
            ),
            (
                "smtp_url = \"smtps://r\"\nca_file = \"\"\n",
                "mfa.email.ca_file",
            ),
            ("smtp_url = \"ftp://r\"\n", "mfa.email.smtp_url"),
            (
                "smtp_url = \"smtp://r\"\ntimeout = \"0s\"\n",
                "mfa.email.timeout",
            ),
        ];
        for (body, key) in cases {
            let found = problems(body);
            assert!(
                found.iter().any(|p| p.starts_with(key)),
                "{key} for {body:?} in {found:?}"
            );
            // The password itself is never part of a problem.
            assert!(found.iter().all(|p| !p.contains("s3cret")), "{found:?}");
        }
    }
}
