//! Each worker accepts on a listening socket of its own when the listener
//! was bound with `passgate::server::listen::bind` (SO_REUSEPORT), as the
//! harness and `passgate serve` bind it; a plain listener is shared by
//! clones (tests/lifecycle.rs). Either way, every connection is answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workers_socket_is_served() {
    init_logs();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .server("workers = 4")
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    // 48 connections, each from its own port: the kernel hashes them over
    // the four workers' sockets (one left without any: odds about 1e-6). A
    // socket no worker accepted on would leave its share unanswered.
    let mut asked = Vec::new();
    for _ in 0..48 {
        let client = gw.client(Proto::H1);
        asked.push(tokio::spawn(
            async move { client.get("/public/x").await.status },
        ));
    }
    for one in asked {
        let status = tokio::time::timeout(Duration::from_secs(30), one)
            .await
            .expect("every connection is accepted and answered")
            .unwrap();
        assert_eq!(status, 200);
    }
    gw.shutdown().await;
}
