//! The thin path end to end: TLS in, route, forward, answer — over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_route_end_to_end() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .public_route("/public/", &upstream.url)
        .start()
        .await;
    for proto in BOTH {
        let reply = gw.client(proto).get("/public/hello?x=1").await;
        assert_eq!(reply.status, 200, "{proto:?}");
        assert_eq!(
            reply.version,
            if proto == Proto::H1 {
                http::Version::HTTP_11
            } else {
                http::Version::HTTP_2
            }
        );
        assert_eq!(reply.json()["path"], "/public/hello?x=1");
        assert!(reply.header("x-request-id").is_some());
        let seen = upstream.last();
        assert_eq!(seen.version, http::Version::HTTP_11);
    }
    gw.shutdown().await;
}
