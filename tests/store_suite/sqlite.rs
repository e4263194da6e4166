//! The suite on SQLite: each case on a fresh file store in a temporary
//! folder (not in memory, so reads go to the reader threads and their own
//! connections while the writer thread commits).

/// One test per case, on its own SQLite file.
macro_rules! sqlite_tests {
    ($($module:ident :: $case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let path = dir.path().join("passgate.db");
            let store = passgate::store::SqliteStore::open(&path).expect("open the store");
            crate::$module::$case(std::sync::Arc::new(store)).await;
        }
    )*};
}

for_each_case!(sqlite_tests);
