//! What shutdown reports as `open_connections`: the connections a client
//! has open, not the connection permits the workers hold while they wait in
//! accept. Alone in its binary: it reads the process's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use passgate::config::LogFormat;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The `shutting down` lines logged so far.
    fn shutdown_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("shutting down"))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_counts_accepted_connections_only() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry().with(
        passgate::telemetry::layer(LogFormat::Text, move || writer.clone(), false)
            .with_filter(tracing_subscriber::EnvFilter::new("info")),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let upstream = Upstream::start().await;

    // No client: two workers wait in accept, each holding a permit.
    let gw = TestGateway::builder()
        .server("workers = 2")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    assert_eq!(gw.client(Proto::H1).get("/public/a").await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let lines = logs.shutdown_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("open_connections=0"), "{lines:?}");

    // One client connection held open through the shutdown.
    let mut gw = TestGateway::builder()
        .server("workers = 2")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    let held = gw.tls_connect(&[b"http/1.1"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.begin_shutdown().await.unwrap();
    let lines = logs.shutdown_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("open_connections=1"), "{lines:?}");
    drop(held);
}
