//! Opening connections to PostgreSQL: the connection parameters with
//! passgate's per-connection settings (`statement_timeout`, the connect
//! timeout, `application_name`), the TLS connector, and the runtime that
//! drives every pooled connection.
//!
//! passgate runs one event loop per worker thread; a store call may come
//! from any of them. Each pooled connection's I/O task runs on the runtime
//! that opened the store, so a connection never depends on the worker that
//! happened to check it out first.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_postgres::Socket;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgSettings;

use super::super::StoreError;
use super::errors::pg;
use super::tls::connector;

/// A connection for the caller to drive itself (`LISTEN`: its messages
/// carry the notifications).
pub type PgConnection =
    tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Everything needed to open one more connection.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    connect_timeout: Duration,
    runtime: Handle,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres's Config prints its password as `_`.
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// `options` with `-c name=value` added, keeping what the URL set.
fn with_option(options: Option<&str>, name: &str, value: &str) -> String {
    let set = format!("-c {name}={value}");
    match options {
        Some(o) if !o.trim().is_empty() => format!("{o} {set}"),
        _ => set,
    }
}

impl Connector {
    /// The connector for `settings`, whose pooled connections' I/O runs on
    /// the current runtime. Fails when the CA file cannot be used, or when
    /// called outside a tokio runtime.
    pub fn new(settings: &PgSettings) -> Result<Self, StoreError> {
        let mut config = settings.connection.clone();
        let millis = settings.statement_timeout.as_millis().max(1).to_string();
        let options = with_option(config.get_options(), "statement_timeout", &millis);
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("passgate");
        }
        config.connect_timeout(settings.connect_timeout);
        Ok(Self {
            config,
            tls: connector(&settings.tls).map_err(StoreError::PgTls)?,
            connect_timeout: settings.connect_timeout,
            runtime: Handle::try_current().map_err(StoreError::NoRuntime)?,
        })
    }

    /// The connection parameters, with the per-connection settings applied.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The same connector for another database of the server (tests, tools).
    pub fn for_database(&self, dbname: &str) -> Self {
        let mut other = self.clone();
        other.config.dbname(dbname);
        other
    }

    /// Open a connection the caller drives (poll the [`PgConnection`] or
    /// spawn it), within the connect timeout.
    pub async fn dedicated(&self) -> Result<(tokio_postgres::Client, PgConnection), StoreError> {
        let connecting = self.config.connect(self.tls.clone());
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(connected) => connected.map_err(pg),
            Err(_) => Err(StoreError::Unavailable(super::Unreachable::Timeout(
                self.connect_timeout,
            ))),
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl deadpool_postgres::Connect for Connector {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error>>
    {
        let (config, tls) = (config.clone(), self.tls.clone());
        // The socket is opened on the store's runtime too: a socket belongs
        // to the reactor of the runtime that opened it.
        let opening = self.runtime.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            let io = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(
                        target: "passgate::store",
                        error = %super::describe(&e),
                        "a PostgreSQL connection ended"
                    );
                }
            });
            Ok((client, io))
        });
        Box::pin(async move {
            match opening.await {
                Ok(opened) => opened,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The store's runtime is shutting down: no connection will
                // come; the pool's create timeout ends the wait.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeout_joins_the_urls_options() {
        assert_eq!(
            with_option(None, "statement_timeout", "5000"),
            "-c statement_timeout=5000"
        );
        assert_eq!(
            with_option(Some("-c search_path=app"), "statement_timeout", "250"),
            "-c search_path=app -c statement_timeout=250"
        );
    }
}
