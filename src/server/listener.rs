//! The accept loop. It never dies on an accept error (it sleeps a second when
//! the process is out of file descriptors), takes a connection permit before
//! accepting so at most `max_connections` are open, and hands each socket to
//! its own task, where the TLS handshake happens under a deadline.
//!
//! Shutdown: stop accepting, tell every connection to finish its in-flight
//! requests and close, then wait until all have closed or the drain deadline passes.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::conn::{self, ConnShared};

/// Accept connections on `listener` until `shutdown` completes, then drain.
pub async fn run(
    listener: TcpListener,
    shared: Arc<ConnShared>,
    max_connections: usize,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(conn::serve(
            Arc::clone(&shared),
            tcp,
            peer,
            stop_rx.clone(),
            permit,
        ));
    }

    // Stop accepting: the socket closes now, so new connections are refused.
    drop(listener);
    let open = max_connections - permits.available_permits();
    tracing::info!(
        open_connections = open,
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(drain_timeout, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            still_open = max_connections - permits.available_permits(),
            "drain deadline passed; closing the remaining connections"
        ),
    }
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
