//! The typed values of `[store]`: which backend holds passgate's state
//! (the embedded SQLite file, or a PostgreSQL database shared by several
//! instances) and how to reach PostgreSQL. Validated in `validate/store.rs`.
//!
//! The PostgreSQL URL may hold a password: it is never shown. Messages and
//! `Debug` use [`redact_url`], which keeps everything else of the URL.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[store] pool_size` when not set.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// `[store] connect_timeout` when not set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `[store] statement_timeout` when not set.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where passgate keeps its state.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded SQLite file (`[store] path`, the default).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database (`[store] url` or `url_env`).
    Postgres(Box<PgSettings>),
}

impl StoreBackend {
    /// The key and where it points, for messages: `store.path data/passgate.db`
    /// or `store.url postgres://app:***@db/passgate` (never the password).
    pub fn describe(&self) -> String {
        match self {
            StoreBackend::Sqlite { path } => format!("store.path {}", path.display()),
            StoreBackend::Postgres(pg) => format!("store.url {}", pg.redacted_url),
        }
    }
}

/// How the connection to PostgreSQL is encrypted: `sslmode` in the URL,
/// and `[store] tls_ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// `sslmode=disable`: plain TCP.
    Disable,
    /// `sslmode=prefer` or none: TLS when the server offers it, without
    /// verifying its certificate (as libpq does); plain TCP otherwise.
    Prefer,
    /// `sslmode=require`: TLS or no connection; the certificate is not verified.
    Require,
    /// `[store] tls_ca` (also `sslmode=verify-ca` / `verify-full`): TLS, the
    /// server's chain verified against this CA only and its name against the
    /// URL's host.
    VerifyFull {
        /// PEM file with the CA certificate(s).
        ca: PathBuf,
    },
}

/// Everything needed to open connections to PostgreSQL.
#[derive(Clone)]
pub struct PgSettings {
    /// The connection parameters from the URL (host, port, user, password,
    /// database, options). `sslmode` is in [`PgSettings::tls`].
    pub connection: tokio_postgres::Config,
    /// The URL with its password replaced by `***`, for messages.
    pub redacted_url: String,
    /// TLS towards the server.
    pub tls: PgTls,
    /// Most connections the pool holds.
    pub pool_size: usize,
    /// Deadline for opening a connection, and for waiting for a free one.
    pub connect_timeout: Duration,
    /// Each statement is cancelled by the server after this long.
    pub statement_timeout: Duration,
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.redacted_url)
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl PgSettings {
    /// Settings for `url` with every other value at its default; `url` must
    /// be a `postgres://` or `postgresql://` URL. The error names what is
    /// wrong and never shows the password.
    pub fn from_url(url: &str) -> Result<PgSettings, String> {
        let (connection, sslmode) = parse_url(url)?;
        let tls = match sslmode {
            SslMode::Disable => PgTls::Disable,
            SslMode::Prefer => PgTls::Prefer,
            SslMode::Require => PgTls::Require,
            SslMode::Verify => {
                return Err(format!(
                    "sslmode={} needs store.tls_ca, the CA to verify the server against",
                    sslmode_value(url).unwrap_or_default()
                ));
            }
        };
        Ok(PgSettings {
            connection,
            redacted_url: redact_url(url),
            tls,
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        })
    }

    /// The same settings, verifying the server against the CA in `ca`; an
    /// error when the URL says `sslmode=disable`.
    pub fn with_tls_ca(mut self, ca: PathBuf) -> Result<PgSettings, String> {
        if self.tls == PgTls::Disable {
            return Err("sslmode=disable in the URL contradicts tls_ca; remove one".into());
        }
        self.tls = PgTls::VerifyFull { ca };
        Ok(self)
    }
}

/// What `sslmode` asks for, before `tls_ca` is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    Disable,
    Prefer,
    Require,
    /// `verify-ca` or `verify-full`: both are verify-full here.
    Verify,
}

/// Parse a PostgreSQL URL into connection parameters and its `sslmode`.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, SslMode), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "\"{}\" is not a PostgreSQL URL (postgres://user@host:5432/database)",
            redact_url(url)
        ));
    }
    let sslmode = match sslmode_value(url).as_deref() {
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-ca" | "verify-full") => SslMode::Verify,
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    // tokio-postgres knows disable/prefer/require only; the mode is ours
    // anyway (PgTls), so the parameter is taken out before it parses.
    let without = without_param(url, "sslmode");
    let mut connection: tokio_postgres::Config = without
        .parse()
        .map_err(|e| format!("\"{}\" is not a valid PostgreSQL URL: {e}", redact_url(url)))?;
    if connection.get_hosts().is_empty() {
        return Err(format!("\"{}\" names no host", redact_url(url)));
    }
    connection.ssl_mode(match sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::Verify => tokio_postgres::config::SslMode::Require,
    });
    Ok((connection, sslmode))
}

/// The query part of `url`, if any.
fn query(url: &str) -> Option<&str> {
    url.split_once('?').map(|(_, q)| q)
}

/// The value of `sslmode` in the URL's query.
fn sslmode_value(url: &str) -> Option<String> {
    query(url)?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "sslmode").then(|| v.to_string())
    })
}

/// `url` without the query parameter `name`.
fn without_param(url: &str, name: &str) -> String {
    let Some((base, q)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    }
}

/// `url` with any password (in the user part or as a `password=` query
/// parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, q) = match url.split_once('?') {
        Some((base, q)) => (base, Some(q)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{hosts}"),
                    None => authority.to_string(),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    match q {
        None => base,
        Some(q) => {
            let pairs: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/passgate?sslmode=require"),
            "postgres://app:***@db.example:5432/passgate?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://app@h/db?password=hunter2&sslmode=disable"),
            "postgresql://app@h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        let s =
            PgSettings::from_url("postgres://app:hunter2@h/db").unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
        let e = PgSettings::from_url("postgres://app:hunter2@h:notaport/db").err();
        assert!(
            e.as_deref().is_some_and(|e| !e.contains("hunter2")),
            "{e:?}"
        );
    }

    #[test]
    fn sslmode_maps_to_tls() {
        let tls = |url: &str| PgSettings::from_url(url).map(|s| s.tls);
        assert_eq!(tls("postgres://u@h/db"), Ok(PgTls::Prefer));
        assert_eq!(tls("postgres://u@h/db?sslmode=prefer"), Ok(PgTls::Prefer));
        assert_eq!(tls("postgres://u@h/db?sslmode=disable"), Ok(PgTls::Disable));
        assert_eq!(
            tls("postgres://u@h/db?application_name=x&sslmode=require"),
            Ok(PgTls::Require)
        );
        assert!(tls("postgres://u@h/db?sslmode=verify-full").is_err_and(|e| e.contains("tls_ca")));
        assert!(tls("postgres://u@h/db?sslmode=allow").is_err_and(|e| e.contains("sslmode=allow")));
        assert!(PgSettings::from_url("postgres://u@h/db?sslmode=verify-ca").is_err());
        let with_ca = |url: &str| {
            let (connection, mode) = parse_url(url).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(mode == SslMode::Verify, url.contains("verify"));
            connection.get_ssl_mode()
        };
        assert_eq!(
            with_ca("postgres://u@h/db?sslmode=verify-full"),
            tokio_postgres::config::SslMode::Require
        );
        let ca = PgSettings::from_url("postgres://u@h/db")
            .and_then(|s| s.with_tls_ca("ca.pem".into()))
            .map(|s| s.tls);
        assert_eq!(
            ca,
            Ok(PgTls::VerifyFull {
                ca: "ca.pem".into()
            })
        );
        assert!(
            PgSettings::from_url("postgres://u@h/db?sslmode=disable")
                .and_then(|s| s.with_tls_ca("ca.pem".into()))
                .is_err()
        );
    }

    #[test]
    fn only_postgres_urls_parse() {
        for bad in [
            "mysql://u@h/db",
            "host=localhost user=postgres",
            "postgres://u@h:99999/db",
            "postgres:///db",
        ] {
            assert!(PgSettings::from_url(bad).is_err(), "{bad}");
        }
        let s = PgSettings::from_url("postgresql://app:pw@db.example:6543/passgate")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.connection.get_ports(), [6543]);
        assert_eq!(s.connection.get_dbname(), Some("passgate"));
        assert_eq!(s.connection.get_user(), Some("app"));
        assert_eq!(s.connection.get_password(), Some(&b"pw"[..]));
    }
}
