//! The suite on PostgreSQL: each case in a database of its own on the server
//! named by `PASSGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), created for the case and
//! dropped after it. Without a reachable server a case fails under
//! `CI=true`, and otherwise is skipped with a loud note
//! (`passgate::store::postgres::testing::TestDb::create`).
//!
//! Included from `tests/store_suite.rs` (`mod postgres;`) once the
//! PostgreSQL store (branch `pg`) is merged.

/// One test per case, on its own database.
macro_rules! postgres_tests {
    ($($module:ident :: $case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(db) = passgate::store::postgres::testing::TestDb::create().await else {
                return;
            };
            let store = db.store().await;
            // The store (its pool) goes with the case, before the database.
            crate::$module::$case(std::sync::Arc::new(store)).await;
        }
    )*};
}

for_each_case!(postgres_tests);
