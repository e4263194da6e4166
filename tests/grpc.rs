//! gRPC through passgate (issue 14): a real tonic client and a real tonic
//! server (messages by hand with prost's derive), the client on HTTP/2 over
//! TLS to the gateway, the gateway on h2c to the server. Unary calls (with
//! an error status the server sends in trailers), server streaming, client
//! streaming, and calls the gate refuses the gRPC way (HTTP 200,
//! `grpc-status` 16 or 7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, Header};
use passgate::clock::{Clock, SystemClock};
use passgate::tokens::keys::{SigningKey, generate_into};
use serde_json::json;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Greeting {
    #[prost(string, tag = "1")]
    message: String,
}

const SERVICE: &str = "test.Greeter";
const ISS: &str = "https://tenant.example.com/";
const AUD: &str = "https://grpc.example.com";

// === the server ===

/// `Say` (unary: "hello NAME", seeing the request id passgate adds; NotFound
/// for "nobody"), `Count` (server streaming: COUNT greetings), `Sum`
/// (client streaming: the names joined).
#[derive(Clone)]
struct Greeter;

impl tonic::server::NamedService for Greeter {
    const NAME: &'static str = SERVICE;
}

struct Say;
impl tonic::server::UnaryService<Hello> for Say {
    type Response = Greeting;
    type Future = BoxFuture<'static, Result<Response<Greeting>, Status>>;
    fn call(&mut self, req: Request<Hello>) -> Self::Future {
        Box::pin(async move {
            let seen_id = req.metadata().get("x-request-id").is_some();
            let hello = req.into_inner();
            if hello.name == "nobody" {
                return Err(Status::not_found("no such name: nobody"));
            }
            Ok(Response::new(Greeting {
                message: format!("hello {} (request id: {seen_id})", hello.name),
            }))
        })
    }
}

struct Count;
impl tonic::server::ServerStreamingService<Hello> for Count {
    type Response = Greeting;
    type ResponseStream = BoxStream<'static, Result<Greeting, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;
    fn call(&mut self, req: Request<Hello>) -> Self::Future {
        let hello = req.into_inner();
        Box::pin(async move {
            let stream = futures_util::stream::iter((0..hello.count).map(move |i| {
                Ok(Greeting {
                    message: format!("{} #{i}", hello.name),
                })
            }));
            Ok(Response::new(stream.boxed()))
        })
    }
}

struct Sum;
impl tonic::server::ClientStreamingService<Hello> for Sum {
    type Response = Greeting;
    type Future = BoxFuture<'static, Result<Response<Greeting>, Status>>;
    fn call(&mut self, req: Request<Streaming<Hello>>) -> Self::Future {
        Box::pin(async move {
            let mut names = Vec::new();
            let mut stream = req.into_inner();
            while let Some(hello) = stream.message().await? {
                names.push(hello.name);
            }
            Ok(Response::new(Greeting {
                message: names.join("+"),
            }))
        })
    }
}

impl tonic::codegen::Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Greeting, Hello>::default());
            Ok(match req.uri().path() {
                "/test.Greeter/Say" => grpc.unary(Say, req).await,
                "/test.Greeter/Count" => grpc.server_streaming(Count, req).await,
                "/test.Greeter/Sum" => grpc.client_streaming(Sum, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A tonic server on a loopback port; its `h2c://` URL.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Greeter)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("h2c://{addr}")
}

// === the client ===

type Channel =
    Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Body>;

/// A tonic client speaking HTTP/2 over TLS to the gateway.
fn client(gw: &TestGateway) -> tonic::client::Grpc<Channel> {
    let tls = tls_client_config(gw.cert_pem(), &[]);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(https);
    let origin = format!("https://127.0.0.1:{}", gw.addr.port());
    tonic::client::Grpc::with_origin(channel, origin.parse().unwrap())
}

async fn say(
    grpc: &mut tonic::client::Grpc<Channel>,
    prefix: &str,
    name: &str,
    token: Option<&str>,
) -> Result<Greeting, Status> {
    grpc.ready().await.unwrap();
    let mut req = Request::new(Hello {
        name: name.into(),
        count: 0,
    });
    if let Some(token) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = PathAndQuery::try_from(format!("{prefix}Say")).unwrap();
    grpc.unary(req, path, ProstCodec::<Hello, Greeting>::default())
        .await
        .map(Response::into_inner)
}

fn routes(upstream: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"/test.Greeter/\"\nupstream = \"{upstream}\"\npublic = true\n\n\
         [[routes]]\nprefix = \"/locked/\"\nupstream = \"{upstream}\"\nstrip_prefix = true\n\
         audience = \"{AUD}\"\nscopes = [\"greet\"]\n\n\
         [[routes]]\nprefix = \"/stepup/\"\nupstream = \"{upstream}\"\nstrip_prefix = true\n\
         audience = \"{AUD}\"\nrequire_mfa = true\n\n\
         [[trusted_issuers]]\nissuer = \"{ISS}\"\njwks_file = \"{{dir}}/jwks.json\"\n"
    )
}

fn mint(key: &SigningKey, scope: &str) -> String {
    let now = SystemClock.now();
    let claims = json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "scope": scope,
        "iat": now, "exp": now + 300,
    });
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_and_refusals_are_grpc_statuses() {
    let upstream = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    passgate::tls::install_crypto_providers();
    let key = generate_into(&dir.path().join("keys"), Algorithm::RS256).unwrap();
    let jwks = json!({ "keys": [key.jwk.clone()] });
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml(&routes(&upstream))
        .start()
        .await;
    let mut grpc = client(&gw);

    // Unary, with the request id passgate adds reaching the server.
    let reply = say(&mut grpc, "/test.Greeter/", "ada", None).await.unwrap();
    assert_eq!(reply.message, "hello ada (request id: true)");

    // The server's own error status comes back (in trailers) intact.
    let status = say(&mut grpc, "/test.Greeter/", "nobody", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such name: nobody");

    // Server streaming.
    grpc.ready().await.unwrap();
    let req = Request::new(Hello {
        name: "tick".into(),
        count: 5,
    });
    let mut stream = grpc
        .server_streaming(
            req,
            PathAndQuery::from_static("/test.Greeter/Count"),
            ProstCodec::<Hello, Greeting>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(g) = stream.message().await.unwrap() {
        got.push(g.message);
    }
    assert_eq!(
        got,
        (0..5).map(|i| format!("tick #{i}")).collect::<Vec<_>>()
    );

    // Client streaming.
    grpc.ready().await.unwrap();
    let names = ["a", "b", "c"].map(|n| Hello {
        name: n.into(),
        count: 0,
    });
    let reply = grpc
        .client_streaming(
            Request::new(futures_util::stream::iter(names)),
            PathAndQuery::from_static("/test.Greeter/Sum"),
            ProstCodec::<Hello, Greeting>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.message, "a+b+c");

    // Refused by the gate: no token, the wrong scope, no second factor.
    let status = say(&mut grpc, "/locked/test.Greeter/", "ada", None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "a bearer token is required");
    let wrong = mint(&key, "read:items");
    let status = say(&mut grpc, "/locked/test.Greeter/", "ada", Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "the token needs the scope \"greet\"");
    let status = say(&mut grpc, "/stepup/test.Greeter/", "ada", Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "A second factor is required for this request"
    );
    // With the right token the call goes through.
    let good = mint(&key, "greet");
    let reply = say(&mut grpc, "/locked/test.Greeter/", "bob", Some(&good))
        .await
        .unwrap();
    assert_eq!(reply.message, "hello bob (request id: true)");
    gw.shutdown().await;
}
