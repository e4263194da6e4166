//! Whether the database can be reached, as the last connection attempts
//! found it. While it cannot, calls fail at once with
//! [`StoreError::Unavailable`] instead of each waiting out the connect
//! timeout; one call every [`PROBE_EVERY`] still tries, so the first
//! success (a request, or the revocation feed's once-a-second read) ends
//! the outage by itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::StoreError;
use super::errors::Unreachable;

/// While the database is down, how often a call may try it.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The database's reachability.
#[derive(Debug, Default)]
pub struct Health {
    down: Mutex<Option<Down>>,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    reason: String,
    last_try: Instant,
}

impl Health {
    /// May a call try the database now? `Err` (at once) while it is known
    /// to be down and another call tried it less than [`PROBE_EVERY`] ago.
    pub fn admit(&self) -> Result<(), StoreError> {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match down.as_mut() {
            Some(d) if d.last_try.elapsed() < PROBE_EVERY => {
                Err(StoreError::Unavailable(Unreachable::Down(d.reason.clone())))
            }
            Some(d) => {
                d.last_try = Instant::now();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Record how a connection attempt ended.
    pub fn record<T>(&self, outcome: &Result<T, StoreError>) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(_) => {
                if let Some(d) = down.take() {
                    let secs = d.since.elapsed().as_secs();
                    tracing::warn!(down_for_s = secs, "the database is reachable again");
                }
            }
            Err(e @ StoreError::Unavailable(u)) if u.means_down() => {
                if down.is_none() {
                    tracing::error!(error = %crate::telemetry::ErrorChain(e), "the database is unreachable; /oauth/token answers 503 until it is back");
                }
                let since = down.as_ref().map_or_else(Instant::now, |d| d.since);
                *down = Some(Down {
                    since,
                    reason: e.to_string(),
                    last_try: Instant::now(),
                });
            }
            Err(_) => {}
        }
    }

    /// True while the database is known to be down.
    pub fn is_down(&self) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// `None` while reachable; else since when and why not.
    pub fn unavailable(&self) -> Option<String> {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.as_ref().map(|d| {
            let secs = d.since.elapsed().as_secs();
            format!("unreachable for {secs} s: {}", d.reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_pool_is_not_a_down_database() {
        let h = Health::default();
        h.record(&Err::<(), _>(StoreError::Unavailable(Unreachable::Pool(
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait),
        ))));
        assert_eq!(h.unavailable(), None);
        assert!(h.admit().is_ok());
    }

    fn refused() -> Result<(), StoreError> {
        Err(StoreError::Unavailable(Unreachable::Timeout(
            Duration::from_secs(1),
        )))
    }

    #[test]
    fn a_down_database_is_tried_once_per_probe_interval_and_comes_back() {
        let h = Health::default();
        assert!(h.admit().is_ok());
        h.record(&refused());
        assert!(
            h.unavailable()
                .is_some_and(|why| why.contains("no connection within"))
        );
        // Right after a failed try, calls fail at once ...
        assert!(matches!(
            h.admit(),
            Err(StoreError::Unavailable(Unreachable::Down(_)))
        ));
        // ... until the probe interval passes: then one call may try.
        std::thread::sleep(PROBE_EVERY);
        assert!(h.admit().is_ok());
        assert!(
            h.admit().is_err(),
            "a second call in the same interval waits"
        );
        h.record(&Ok::<(), StoreError>(()));
        assert_eq!(h.unavailable(), None);
        assert!(h.admit().is_ok());
    }
}
