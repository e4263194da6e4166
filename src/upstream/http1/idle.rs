//! The idle connections of a worker's pool: kept newest last, at most
//! `max_idle` per upstream, closed past the idle timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::Conn;

pub(super) struct Idle {
    pub(super) conn: Conn,
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
    /// Keep `conn` for the next request to `key`, when it is ready for one.
    pub(super) fn put_back(self: &Arc<Self>, key: Arc<str>, mut conn: Conn) {
        conn.drive(&mut Context::from_waker(Waker::noop()));
        if conn.done || conn.send.is_closed() || self.max_idle == 0 {
            return;
        }
        if !conn.is_ready() {
            // Still writing the request body, or not yet idle: drive it
            // until it is, for at most the idle timeout.
            let shared = Arc::clone(self);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let ready = tokio::time::timeout(
                        shared.idle_timeout,
                        std::future::poll_fn(|cx| {
                            conn.drive(cx);
                            if conn.done {
                                return Poll::Ready(false);
                            }
                            conn.send.poll_ready(cx).map(|r| r.is_ok())
                        }),
                    )
                    .await;
                    if ready == Ok(true) {
                        shared.keep(key, conn);
                    }
                });
            }
            return;
        }
        self.keep(key, conn);
    }

    fn keep(self: &Arc<Self>, key: Arc<str>, conn: Conn) {
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
