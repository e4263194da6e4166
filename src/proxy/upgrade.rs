//! WebSocket (and other HTTP/1.1 upgrade) pass-through: once the upstream
//! answers 101, both upgraded connections are joined and bytes copied both
//! ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Join the client's and the upstream's upgraded connections in a task of their own.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, request_id: String) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(request_id, error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(
                request_id,
                bytes_up = up,
                bytes_down = down,
                "upgraded connection closed"
            ),
            Err(e) => {
                tracing::debug!(request_id, error = %e, "upgraded connection ended with an error")
            }
        }
    });
}
