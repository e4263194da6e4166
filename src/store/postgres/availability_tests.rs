//! A database that is down, saturated, slow or dropping its connections:
//! `Unavailable` at once, never a hanging call, and recovery by itself;
//! TLS towards the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use super::tests::db;
use super::*;
use crate::store::Store;
use crate::store::protect::ProtectStore;

#[tokio::test]
async fn a_database_that_is_down_answers_unavailable_at_once() {
    // A port nothing listens on: the listener is bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings =
        crate::config::PgSettings::from_url(&format!("postgres://passgate@127.0.0.1:{port}/none"))
            .unwrap();
    settings.connect_timeout = Duration::from_millis(500);
    let store = PgStore::open(&settings).unwrap();
    let started = Instant::now();
    let found = store.get_user("auth0|x").await;
    assert!(
        matches!(found, Err(StoreError::Unavailable(_))),
        "{found:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let connected = PgStore::connect(&settings).await;
    assert!(matches!(connected, Err(StoreError::Unavailable(_))));
}

/// `pg_terminate_backend` on every pooled connection: the calls in flight
/// fail as `Unavailable`, the next ones get new connections; nothing that
/// was acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_replaced() {
    let db = db!();
    let store = db.store().await;
    for i in 0..8 {
        store
            .add_login_failure("user:auth0|k", &format!("ip{i}"), 1, 0)
            .await
            .unwrap();
    }
    let (killer, io) = store.connector().dedicated().await.unwrap();
    let io = tokio::spawn(io);
    let killed = killer
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name()],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty());
    // The pool notices a closed connection at checkout; one whose end has not
    // been read yet fails its statement as Unavailable.
    let mut unavailable = 0;
    let mut done = 0;
    for i in 0..8 {
        match store
            .add_login_failure("user:auth0|k", &format!("ip{i}"), 2, 0)
            .await
        {
            Ok(n) => {
                assert_eq!(n, 2);
                done += 1;
            }
            Err(StoreError::Unavailable(_)) => unavailable += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(done + unavailable, 8);
    let mut at_two = 0;
    for i in 0..8 {
        let st = store
            .attempt_state("user:auth0|k", &format!("ip{i}"))
            .await
            .unwrap();
        let failures = st.streak.map(|s| s.failures);
        assert!(matches!(failures, Some(1 | 2)), "{failures:?}");
        at_two += usize::from(failures == Some(2));
    }
    assert!(
        at_two >= done,
        "an acknowledged write was lost: {at_two} < {done}"
    );
    drop(killer);
    let _ = io.await;
}

/// TLS with `sslmode=require`: encrypted when the server offers it (the test
/// server may not), refused when it does not.
#[tokio::test]
async fn sslmode_require_encrypts_or_refuses() {
    let db = db!();
    let mut settings = db.settings().clone();
    settings.tls = crate::config::PgTls::Require;
    settings
        .connection
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let store = PgStore::open(&settings).unwrap();
    let client = match store.client().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the test server does not offer TLS: {e}");
            return;
        }
    };
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "sslmode=require must encrypt");
}

/// Every connection runs with the configured `statement_timeout`; a
/// statement past it is cancelled by the server and reported unavailable.
#[tokio::test]
async fn statements_past_the_timeout_are_cancelled() {
    let db = db!();
    let mut settings = db.settings().clone();
    settings.statement_timeout = Duration::from_millis(300);
    let store = PgStore::connect(&settings).await.unwrap();
    let client = store.client().await.unwrap();
    let shown: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "300ms");
    let app: String = client
        .query_one("SHOW application_name", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(app, "passgate");
    let started = Instant::now();
    let slow = client
        .batch_execute("SELECT pg_sleep(5)")
        .await
        .map_err(errors::pg);
    assert!(matches!(slow, Err(StoreError::Unavailable(_))), "{slow:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// With every pooled connection busy, a call waits at most
/// `connect_timeout` for one, then fails as unavailable.
#[tokio::test]
async fn a_full_pool_refuses_after_the_connect_timeout() {
    let db = db!();
    let mut settings = db.settings().clone();
    settings.pool_size = 1;
    settings.connect_timeout = Duration::from_millis(300);
    let store = PgStore::connect(&settings).await.unwrap();
    let held = store.client().await.unwrap();
    let started = Instant::now();
    let waited = store.get_user("auth0|x").await;
    assert!(
        matches!(waited, Err(StoreError::Unavailable(_))),
        "{waited:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    drop(held);
    assert!(
        store.get_user("auth0|x").await.unwrap().is_none(),
        "free again"
    );
}
