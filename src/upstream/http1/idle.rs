//! The idle connections of a worker's pool: kept newest last, at most
//! `max_idle` per upstream, closed past the idle timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::wire::Conn;

pub(super) struct Idle {
    pub(super) conn: Box<Conn>,
    pub(super) since: Instant,
}

#[derive(Default)]
pub(super) struct Idles {
    /// By upstream URL (the key is shared with the connections out on
    /// loan), the idle connections, oldest first. foldhash: a few
    /// instructions per lookup where SipHash took hundreds; the keys come
    /// from the config, not from clients.
    pub(super) by_upstream: HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>,
    sweeping: bool,
}

pub(super) struct Shared {
    pub(super) idle: Mutex<Idles>,
    pub(super) max_idle: usize,
    pub(super) idle_timeout: Duration,
}

impl Shared {
    /// Keep `conn`, whose response has been read to its end and allowed it,
    /// for the next request to `key`, unless it failed or holds bytes no
    /// request asked for.
    pub(super) fn put_back(self: &Arc<Self>, key: Arc<str>, mut conn: Box<Conn>) {
        if self.max_idle == 0 || conn.broken || !conn.read.is_empty() {
            return;
        }
        if conn.sent() {
            self.keep(key, conn);
            return;
        }
        // The upstream answered before it had the whole request body: send
        // the rest, for at most the idle timeout, then keep the connection.
        let shared = Arc::clone(self);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let sent = tokio::time::timeout(
                    shared.idle_timeout,
                    std::future::poll_fn(|cx| conn.poll_send(cx)),
                )
                .await;
                if matches!(sent, Ok(Ok(()))) && conn.reusable() {
                    shared.keep(key, conn);
                }
            });
        }
    }

    fn keep(self: &Arc<Self>, key: Arc<str>, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.by_upstream.entry(key).or_default();
        if list.len() >= self.max_idle {
            // Drop the oldest: the newest are the likeliest to stay open.
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
        if !idle.sweeping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            idle.sweeping = true;
            runtime.spawn(sweep(Arc::downgrade(self)));
        }
    }
}

/// Close idle connections past the idle timeout, every half timeout, while
/// any are idle; the next return starts it again.
async fn sweep(shared: Weak<Shared>) {
    let every = match shared.upgrade() {
        Some(s) => (s.idle_timeout / 2).max(Duration::from_millis(50)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let timeout = shared.idle_timeout;
        let mut left = 0;
        for list in idle.by_upstream.values_mut() {
            list.retain(|i| now.duration_since(i.since) < timeout);
            left += list.len();
        }
        if left == 0 {
            idle.sweeping = false;
            return;
        }
    }
}
