//! For tests (unit tests and `tests/`): a database of its own per test on
//! the server named by `PASSGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the guard goes.
//!
//! When the server cannot be reached, [`TestDb::create`] fails the test
//! under `CI=true` and otherwise says loudly on stderr that the test was
//! skipped, and returns `None`.

use std::time::Duration;

use crate::config::{PgSettings, redact_url};

use super::{Connector, PgStore};

/// The variable naming the test server.
pub const URL_ENV: &str = "PASSGATE_TEST_POSTGRES_URL";
/// The test server when the variable is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database created for one test; dropped (with its connections) when
/// this goes out of scope.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    admin: Connector,
    settings: PgSettings,
}

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

impl TestDb {
    /// A fresh, empty database named `passgate_t_<random hex>`, or `None`
    /// (after a loud note) when no server is reachable outside CI.
    pub async fn create() -> Option<TestDb> {
        let url = server_url();
        let mut settings = match PgSettings::from_url(&url) {
            Ok(s) => s,
            Err(e) => panic!("{URL_ENV}: {e}"),
        };
        settings.pool_size = 4;
        settings.connect_timeout = Duration::from_secs(5);
        let admin = match Connector::new(&settings) {
            Ok(c) => c,
            Err(e) => panic!("{URL_ENV}: {e}"),
        };
        let name = format!("passgate_t_{:016x}", rand::random::<u64>());
        match Self::run(&admin, &format!("CREATE DATABASE {name}")).await {
            Ok(()) => {}
            Err(e) if under_ci() => panic!(
                "no PostgreSQL at {} (CI=true, so this is a failure, not a skip): {e}",
                redact_url(&url)
            ),
            Err(e) => {
                eprintln!(
                    "\n*** skipped: no PostgreSQL at {} ({e}); set {URL_ENV} or start the server ***\n",
                    redact_url(&url)
                );
                return None;
            }
        }
        settings.connection.dbname(&name);
        Some(TestDb {
            name,
            admin,
            settings,
        })
    }

    /// Settings that reach this database.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of this database (the server's URL with its database replaced),
    /// for a config file.
    pub fn url(&self) -> String {
        with_database(&server_url(), &self.name)
    }

    /// A store on this database, its schema up to date.
    pub async fn store(&self) -> PgStore {
        match PgStore::connect(&self.settings).await {
            Ok(s) => s,
            Err(e) => panic!("opening the test database {}: {e}", self.name),
        }
    }

    /// Run `sql` on the server's own database (not this test's).
    async fn run(admin: &Connector, sql: &str) -> Result<(), String> {
        let (client, connection) = admin.dedicated().await.map_err(|e| e.to_string())?;
        let io = tokio::spawn(connection);
        let done = client
            .batch_execute(sql)
            .await
            .map_err(|e| super::describe(&e));
        drop(client);
        let _ = io.await;
        done
    }
}

/// `url` naming the database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let host_at = base.find("://").map_or(0, |i| i + 3);
    let end = base[host_at..]
        .find('/')
        .map_or(base.len(), |i| host_at + i);
    let mut out = format!("{}/{name}", &base[..end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself:
        // a thread of its own with a runtime of its own drops the database.
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            // A dedicated connection is driven by the runtime awaiting it.
            runtime.block_on(async move { Self::run(&admin, &sql).await })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping test database {}: {e}", self.name),
            Err(_) => eprintln!("dropping test database {}: the thread panicked", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=require", "t2"),
            "postgresql://u:p@h/t2?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
    }
}
