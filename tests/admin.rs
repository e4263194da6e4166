//! The admin listener: health, readiness and Prometheus metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn admin_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let upstream = Upstream::start().await;
    let mut gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    assert_eq!(
        admin_get(gw.admin_addr, "/healthz").await,
        (200, "ok\n".into())
    );
    assert_eq!(admin_get(gw.admin_addr, "/readyz").await.0, 200);

    let c = gw.client(Proto::H1);
    for _ in 0..3 {
        assert_eq!(c.get("/public/x").await.status, 200);
    }
    assert_eq!(c.get("/nowhere").await.status, 404);
    let (status, metrics) = admin_get(gw.admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "passgate_http_requests_total{route=\"/public/\",method=\"read\",code=\"2xx\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("passgate_http_requests_total{route=\"-\",method=\"read\",code=\"4xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE passgate_token_cache_entries gauge"),
        "{metrics}"
    );
    assert_eq!(admin_get(gw.admin_addr, "/nope").await.0, 404);

    // While draining, /readyz says so (a slow request keeps the drain going).
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.get("/public/slow").await.status }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let task = gw.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(admin_get(gw.admin_addr, "/readyz").await.0, 503);
    assert_eq!(slow.await.unwrap(), 200);
    task.await.unwrap();
}
