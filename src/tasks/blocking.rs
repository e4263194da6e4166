//! The one helper that runs blocking work (SQLite calls, whole-map sweeps,
//! measuring password checks) on tokio's blocking pool, so no request worker
//! thread waits on it.

/// A blocking call that did not finish: it panicked, or the runtime was
/// shutting down. The panic's payload is in the source.
#[derive(Debug, thiserror::Error)]
#[error("the blocking task did not finish")]
pub struct Unfinished(#[source] pub tokio::task::JoinError);

/// Run `work` on the blocking pool and wait for its answer.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unfinished> {
    tokio::task::spawn_blocking(work).await.map_err(Unfinished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_and_reports_a_panic() {
        assert_eq!(run_blocking(|| 2 + 2).await.ok(), Some(4));
        let failed = run_blocking(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(failed, Err(Unfinished(e)) if e.is_panic()));
    }
}
