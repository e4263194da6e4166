//! `LISTEN` for what other instances (and the CLI) announce. Triggers
//! announce every revocation (migration 5) and every new signing key
//! (migration 7) on [`CHANNEL`] when their transaction commits, so an
//! instance reads the revocation log or the keys at once instead of at its
//! next poll. The connection is a dedicated one: notifications
//! arrive as its messages. When it drops, the listener reconnects (backing
//! off up to [`MAX_BACKOFF`]) and reports [`Announcement::Reconnected`], on
//! which the caller reads the log from where it stopped, so nothing
//! announced while the listener was away is missed.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::Connector;
use crate::telemetry::ErrorChain;

/// The notification channel.
pub const CHANNEL: &str = "passgate_events";
/// Longest wait between two reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What was announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A session was revoked somewhere: read the revocation log.
    Revocation,
    /// A signing key was added somewhere (`keys rotate`): read the keys.
    Keys,
    /// The listener (re)connected: anything may have been missed while it
    /// was away, so read everything that announces would have said.
    Reconnected,
    /// A payload this build does not know (a newer instance's): ignored by
    /// callers, logged at debug.
    Other(String),
}

impl Announcement {
    fn parse(payload: &str) -> Announcement {
        match payload.split(':').next() {
            Some("revocation") => Announcement::Revocation,
            Some("keys") => Announcement::Keys,
            _ => Announcement::Other(payload.to_string()),
        }
    }
}

/// Listen on [`CHANNEL`] through `connector` for as long as the task runs
/// (the caller's supervisor ends it), calling `on` for every announcement.
pub async fn listen(connector: Connector, on: impl Fn(Announcement) + Send + Sync + 'static) {
    let mut backoff = FIRST_BACKOFF;
    let mut outage_logged = false;
    loop {
        match connector.dedicated().await {
            Ok((client, connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                // The connection's messages carry the notifications; the
                // stream ends (and `tx` drops) when the connection does.
                let driver = tokio::spawn(async move {
                    let mut connection = connection;
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_string()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(target: "passgate::store", error = %ErrorChain(&e), "the LISTEN connection failed");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        if outage_logged {
                            tracing::warn!(target: "passgate::store", "listening for announcements again");
                        }
                        outage_logged = false;
                        backoff = FIRST_BACKOFF;
                        on(Announcement::Reconnected);
                        while let Some(payload) = rx.recv().await {
                            let announced = Announcement::parse(&payload);
                            if let Announcement::Other(p) = &announced {
                                tracing::debug!(target: "passgate::store", payload = %p, "an announcement this build does not know");
                            }
                            on(announced);
                        }
                        tracing::warn!(target: "passgate::store", "the LISTEN connection ended; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(target: "passgate::store", error = %ErrorChain(&e), "LISTEN failed; reconnecting");
                    }
                }
                drop(client);
                driver.abort();
            }
            Err(e) => {
                if !outage_logged {
                    tracing::warn!(target: "passgate::store", error = %ErrorChain(&e), "cannot open the LISTEN connection; revocations from other instances arrive by polling until it is back");
                    outage_logged = true;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::postgres::testing::TestDb;

    #[test]
    fn payloads() {
        assert_eq!(
            Announcement::parse("revocation:42"),
            Announcement::Revocation
        );
        assert_eq!(Announcement::parse("keys:abc"), Announcement::Keys);
        assert_eq!(
            Announcement::parse("news"),
            Announcement::Other("news".into())
        );
    }

    /// A revocation committed through the store reaches a listener; the
    /// listener says it connected first, so the caller catches up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_revocation_is_announced() {
        use crate::store::sessions::{Session, SessionStore};
        let Some(db) = TestDb::create().await else {
            return;
        };
        let store = db.store().await;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = Arc::clone(&heard);
        let task = tokio::spawn(listen(store.connector().clone(), move |a| {
            sink.lock().unwrap().push(a.clone());
            let _ = tx.send(a);
        }));
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(first.unwrap(), Some(Announcement::Reconnected));
        let session = Session {
            sid: "s1".into(),
            user_id: "auth0|u".into(),
            client_id: "app".into(),
            realm: "r".into(),
            audience: "aud".into(),
            scope: "".into(),
            created_at: 1,
            expires_at: 4_000_000_000,
            revoked_at: None,
            has_refresh: false,
            amr: "pwd".into(),
        };
        store.create_session(&session, None, 5, 1).await.unwrap();
        assert!(store.revoke_session("s1", 2).await.unwrap());
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(next.unwrap(), Some(Announcement::Revocation));
        task.abort();
    }
}
