//! The accept loop. It never dies on an accept error (it sleeps a second when
//! the process is out of file descriptors), takes a connection permit for each
//! accepted socket so at most `max_connections` are served, and hands each
//! socket to its own task, where the TLS handshake happens under a deadline.
//!
//! Each worker thread runs this loop on its own listening socket (`listen.rs`).
//! Shutdown: stop accepting, tell every connection to finish its in-flight
//! requests and close, then wait until all have closed or the drain deadline passes.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::conn::{self, ConnShared};
use super::listen;

/// Accept connections on `listener` until `stop` turns true. The permits are
/// shared by every worker of the gateway: together they hold at most
/// `max_connections` connections. `open` counts the accepted ones until each
/// ends.
pub async fn accept_until_stopped(
    listener: TcpListener,
    shared: Arc<ConnShared>,
    permits: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    if *stop.borrow() {
        return;
    }
    loop {
        // Accept first, then wait for a permit with the connection in hand.
        // Each worker accepts on a socket of its own (`listen.rs`), and the
        // kernel has already queued a connection on one of them: a worker
        // that took the last permit before accepting would sit in accept on
        // its own empty socket while the connection waits in another's
        // queue, never served once the permit frees. So at most one accepted
        // connection per worker waits here, beyond `max_connections`.
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                _ = stop.changed() => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            },
        };
        if let Err(e) = listen::accepted(&tcp) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let counted = Open::count(&open);
        // Spawned as it is: an async block around it would hold a second
        // copy of the connection's whole state (docs/benchmarks.md).
        tokio::spawn(conn::serve(
            Arc::clone(&shared),
            tcp,
            peer,
            stop.clone(),
            permit,
            counted,
        ));
    }
    // Stop accepting: this worker's handle on the socket closes now.
    drop(listener);
}

/// One accepted connection in `open` (what shutdown reports as
/// `open_connections`), until its task ends: the count shutdown reports,
/// kept apart from the permits, which are the limit.
pub struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wait until every connection (of every worker) has closed, or `drain_timeout`
/// has passed. True when all closed.
pub async fn wait_drained(
    permits: &Semaphore,
    max_connections: usize,
    drain_timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + drain_timeout;
    while permits.available_permits() < max_connections {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn accept_error(e: io::Error) {
    match e.kind() {
        // The peer went away between SYN and accept: nothing wrong with us.
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => {}
        _ => {
            // EMFILE / ENFILE / ENOMEM and friends: back off instead of spinning.
            tracing::error!(error = %e, "accept failed; retrying in 1s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
