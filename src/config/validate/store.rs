//! `[store]`'s backend: `path` selects the embedded SQLite file (the
//! default), `url` or `url_env` a PostgreSQL database with its pool,
//! timeouts and TLS. The encryption key beside them is `mfa.rs`'s.

use std::path::PathBuf;

use super::super::store::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT, PgSettings, StoreBackend,
};
use super::*;

/// The most connections `pool_size` may ask for.
const MAX_POOL_SIZE: i64 = 1_000;

/// The backend `raw` selects; every problem is recorded in `p`.
pub(super) fn backend(
    p: &mut Problems,
    raw: &RawStore,
    path: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> StoreBackend {
    let sqlite = StoreBackend::Sqlite {
        path: path.to_path_buf(),
    };
    let url = match (&raw.url, &raw.url_env) {
        (Some(_), Some(_)) => {
            p.add(
                "store.url_env",
                "give either url or url_env (a variable holding the URL), not both",
            );
            None
        }
        (Some(url), None) => Some(("store.url", url.clone())),
        (None, Some(name)) => match env(name) {
            Some(url) if !url.trim().is_empty() => Some(("store.url_env", url.trim().to_string())),
            _ => {
                p.add("store.url_env", format!("${name} is not set"));
                None
            }
        },
        (None, None) => None,
    };
    let postgres_given = raw.url.is_some() || raw.url_env.is_some();
    if !postgres_given {
        for (key, given) in [
            ("store.pool_size", raw.pool_size.is_some()),
            ("store.connect_timeout", raw.connect_timeout.is_some()),
            ("store.statement_timeout", raw.statement_timeout.is_some()),
            ("store.tls_ca", raw.tls_ca.is_some()),
        ] {
            if given {
                p.add(
                    key,
                    "applies to PostgreSQL only; set store.url or store.url_env",
                );
            }
        }
        return sqlite;
    }
    if raw.path.is_some() {
        p.add(
            "store.path",
            "give either path (SQLite) or url/url_env (PostgreSQL), not both",
        );
    }
    let pool_size = match raw.pool_size {
        None => DEFAULT_POOL_SIZE,
        Some(n) if (1..=MAX_POOL_SIZE).contains(&n) => n as usize,
        Some(n) => {
            p.add(
                "store.pool_size",
                format!("must be from 1 to {MAX_POOL_SIZE}, found {n}"),
            );
            DEFAULT_POOL_SIZE
        }
    };
    let connect_timeout = p.duration(
        "store.connect_timeout",
        &raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let statement_timeout = p.duration(
        "store.statement_timeout",
        &raw.statement_timeout,
        DEFAULT_STATEMENT_TIMEOUT,
    );
    let tls_ca = match raw.tls_ca.as_deref() {
        Some("") => {
            p.add("store.tls_ca", "is empty");
            None
        }
        other => other.map(PathBuf::from),
    };
    let Some((key, url)) = url else {
        return sqlite;
    };
    let settings = PgSettings::from_url(&url).and_then(|s| match tls_ca {
        Some(ca) => s.with_tls_ca(ca),
        None => Ok(s),
    });
    match settings {
        Ok(settings) => StoreBackend::Postgres(Box::new(PgSettings {
            pool_size,
            connect_timeout,
            statement_timeout,
            ..settings
        })),
        Err(e) => {
            p.add(key, e);
            sqlite
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, PgTls, StoreBackend};

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_with_env(text, &|n| {
            (n == "PG_URL").then(|| "postgres://app:hunter2@db:5432/passgate".to_string())
        }) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn path_selects_sqlite_by_default() {
        let c = Config::from_toml("").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&c.store.backend, StoreBackend::Sqlite { path } if path.ends_with("data/passgate.db"))
        );
    }

    #[test]
    fn url_selects_postgres_with_defaults_and_overrides() {
        let c =
            Config::from_toml("[store]\nurl = \"postgres://app@db/passgate?sslmode=require\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let StoreBackend::Postgres(pg) = &c.store.backend else {
            panic!("{:?}", c.store.backend)
        };
        assert_eq!(
            (
                pg.pool_size,
                pg.connect_timeout.as_secs(),
                pg.statement_timeout.as_secs()
            ),
            (16, 5, 5)
        );
        assert_eq!(pg.tls, PgTls::Require);
        let c = Config::from_toml_with_env(
            "[store]\nurl_env = \"PG_URL\"\npool_size = 4\nconnect_timeout = \"2s\"\nstatement_timeout = \"250ms\"\ntls_ca = \"certs/pg-ca.pem\"\n",
            &|n| (n == "PG_URL").then(|| "postgres://app:hunter2@db/passgate".to_string()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let StoreBackend::Postgres(pg) = &c.store.backend else {
            panic!("{:?}", c.store.backend)
        };
        assert_eq!(
            (
                pg.pool_size,
                pg.connect_timeout.as_millis(),
                pg.statement_timeout.as_millis()
            ),
            (4, 2000, 250)
        );
        assert_eq!(
            pg.tls,
            PgTls::VerifyFull {
                ca: "certs/pg-ca.pem".into()
            }
        );
        let shown = format!("{:?}", c.store);
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn every_store_problem_is_named() {
        let found = problems(
            "[store]\npath = \"x.db\"\nurl = \"postgres://u:hunter2@h:notaport/db\"\nurl_env = \"PG_URL\"\npool_size = 0\nconnect_timeout = \"0s\"\nstatement_timeout = \"soon\"\n",
        );
        for key in [
            "store.path",
            "store.url_env",
            "store.pool_size",
            "store.connect_timeout",
            "store.statement_timeout",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(key)),
                "{key} in {found:?}"
            );
        }
        let found = problems("[store]\nurl = \"mysql://u:hunter2@h/db\"\n");
        assert!(
            found.iter().any(|p| p.starts_with("store.url:")),
            "{found:?}"
        );
        assert!(found.iter().all(|p| !p.contains("hunter2")), "{found:?}");
        let found = problems("[store]\nurl_env = \"UNSET\"\n");
        assert!(
            found.iter().any(|p| p.starts_with("store.url_env: $UNSET")),
            "{found:?}"
        );
        let found = problems("[store]\npool_size = 4\ntls_ca = \"ca.pem\"\n");
        assert!(
            found.iter().any(|p| p.starts_with("store.pool_size"))
                && found.iter().any(|p| p.starts_with("store.tls_ca")),
            "{found:?}"
        );
        let found =
            problems("[store]\nurl = \"postgres://h/db?sslmode=disable\"\ntls_ca = \"ca.pem\"\n");
        assert!(
            found.iter().any(|p| p.starts_with("store.url:")),
            "{found:?}"
        );
    }
}
