//! The gateway's background work has one owner: every loop and worker thread
//! runs under the gateway's supervisor while it serves, and none is left once
//! `serve` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use passgate::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_runs_every_task_under_the_supervisor_and_shutdown_leaves_none() {
    init_logs();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = TestGateway::builder()
        .server("workers = 2")
        .public_route("/public/", &upstream.url)
        .toml(&login_toml())
        .config_text(dir.path().to_str().unwrap());
    let config = Config::from_toml(&text).unwrap();
    let gateway = passgate::Gateway::new(config).await.unwrap();
    let tasks = gateway.tasks().clone();
    // The token-cache sweep, the attack-protection sweep, the sessions'
    // revocation feed, the MFA transaction sweep and the signing-key
    // refresh: passgate is its own issuer here.
    assert_eq!(tasks.running(), 5, "background loops before serving");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    let cert = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let reply = TestClient::new(addr, &cert, Proto::H1)
        .get("/public/x")
        .await;
    assert_eq!(reply.status, 200);
    // The first worker serves while the second may still be starting: the
    // supervisor counts a worker once its thread is up.
    let started = std::time::Instant::now();
    while tasks.running() < 7 && started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(tasks.running(), 7, "the loops and two worker threads");

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert_eq!(tasks.running(), 0, "nothing runs after serve returned");
    assert_eq!(tasks.died(), 0);
}
