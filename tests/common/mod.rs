//! The end-to-end harness: a real gateway on port 0, a recording upstream, and
//! real TLS clients speaking HTTP/1.1 and HTTP/2.
//!
//! ```ignore
//! let upstream = Upstream::start().await;
//! let gw = TestGateway::builder()
//!     .toml(&format!("[[routes]]\nprefix = \"/public/\"\nupstream = \"{}\"\npublic = true\n", upstream.url))
//!     .start().await;
//! let resp = gw.client(Proto::H2).get("/public/x").await;
//! ```
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use passgate::clock::SharedClock;
use passgate::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ClientBody = BoxBody<Bytes, BoxError>;

/// Logs for a failing test: `RUST_LOG=debug cargo test ...`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

// === impl Upstream ===

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
}

/// A plain-HTTP/1.1 upstream that records what it receives. Behaviour by path:
/// - `.../slow`: answers after 3 s;
/// - `.../stream-bytes/N`: streams N bytes back in 64 KiB chunks;
/// - `.../count-body`: reads the whole body as a stream and answers `{"body_len": n}`;
/// - `.../ws`: a WebSocket echo;
/// - `.../status/NNN`: answers with that status;
/// - anything else: 200 `{"upstream": name, "path": ...}` with header `x-upstream: name`.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub url: String,
    pub name: String,
    records: Arc<Mutex<Vec<Recorded>>>,
    bodies: Arc<Mutex<Vec<BodySeen>>>,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

/// A body `.../count-body` finished reading: how many bytes, and whether it
/// ended cleanly (`false`: the stream broke off before its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodySeen {
    pub len: u64,
    pub complete: bool,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_named("up").await
    }

    pub async fn start_named(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = oneshot::channel::<()>();
        let recs = Arc::clone(&records);
        let seen = Arc::clone(&bodies);
        let name_owned = name.to_string();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => match accepted { Ok(p) => p, Err(_) => continue },
                };
                let recs = Arc::clone(&recs);
                let seen = Arc::clone(&seen);
                let name = name_owned.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        upstream_handle(req, Arc::clone(&recs), Arc::clone(&seen), name.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            url: format!("http://{addr}"),
            name: name.to_string(),
            records,
            bodies,
            stop: Arc::new(Mutex::new(Some(tx))),
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    /// Every body `.../count-body` has finished reading, in order.
    pub fn bodies(&self) -> Vec<BodySeen> {
        self.bodies.lock().unwrap().clone()
    }

    /// Stop accepting (open connections keep running).
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

fn full(b: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(b.into()).boxed()
}

async fn upstream_handle(
    mut req: Request<Incoming>,
    records: Arc<Mutex<Vec<Recorded>>>,
    bodies: Arc<Mutex<Vec<BodySeen>>>,
    name: String,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    records.lock().unwrap().push(Recorded {
        method: req.method().clone(),
        path: path.clone(),
        version: req.version(),
        headers: req.headers().clone(),
    });
    let bare = req.uri().path().to_string();

    if bare.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if bare.ends_with("/ws") {
        let key = req
            .headers()
            .get("sec-websocket-key")
            .cloned()
            .unwrap_or(http::HeaderValue::from_static(""));
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    if ws.send(msg).await.is_err() {
                        return;
                    }
                } else if msg.is_close() {
                    return;
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(full(Bytes::new()))
            .unwrap();
        return Ok(resp);
    }
    if let Some(n) = bare
        .rsplit_once("/stream-bytes/")
        .and_then(|(_, n)| n.parse::<usize>().ok())
    {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = (0..n.div_ceil(64 * 1024)).map(move |i| {
            let len = (n - i * 64 * 1024).min(64 * 1024);
            Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
        });
        let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
        return Ok(Response::new(body));
    }
    if bare.ends_with("/count-body") {
        let mut body = req.into_body();
        let mut n = 0u64;
        let mut complete = true;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        bodies.lock().unwrap().push(BodySeen { len: n, complete });
        return Ok(Response::new(full(format!("{{\"body_len\":{n}}}"))));
    }
    if let Some(code) = bare
        .rsplit_once("/status/")
        .and_then(|(_, c)| c.parse::<u16>().ok())
    {
        let mut resp = Response::new(full("{}"));
        *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        return Ok(resp);
    }
    let body = serde_json::json!({"upstream": name, "path": path});
    let resp = Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", name.as_str())
        // Hop-by-hop headers that must not reach the client.
        .header("connection", "x-upstream-private")
        .header("x-upstream-private", "secret")
        .header("keep-alive", "timeout=5")
        .body(full(body.to_string()))
        .unwrap();
    Ok(resp)
}

// === impl TestGateway ===

/// A running gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`), plain HTTP.
    pub admin_addr: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    pub config: Config,
    /// Reloads from `{dir}/passgate.toml`, which holds the start config.
    pub reloader: passgate::Reloader,
    cert_pem: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Builds a [`TestGateway`]: a base `[server]` (dev certificate in a temp dir,
/// short deadlines) plus what the test adds. `{dir}` in any text is replaced
/// with the gateway's temp dir.
#[derive(Default)]
pub struct Builder {
    server: Vec<String>,
    sections: Vec<String>,
    clock: Option<SharedClock>,
    dir: Option<Arc<tempfile::TempDir>>,
}

impl TestGateway {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A client speaking `proto` to this gateway over TLS.
    pub fn client(&self, proto: Proto) -> TestClient {
        TestClient::new(self.addr, &self.cert_pem, proto)
    }

    /// Ask the gateway to shut down and wait until it has drained.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// The gateway's (self-signed) certificate, PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// A raw TLS connection to the gateway offering `alpn` (e.g. `&[b"h2"]`).
    pub async fn tls_connect(
        &self,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let config = Arc::new(tls_client_config(&self.cert_pem, alpn));
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap()
    }

    /// Write `text` (`{dir}` replaced) as the config file and reload from it.
    pub async fn reload_with(&self, text: &str) -> anyhow::Result<()> {
        let text = text.replace("{dir}", self.dir.path().to_str().unwrap());
        std::fs::write(self.dir.path().join("passgate.toml"), text).unwrap();
        self.reloader.reload().await
    }

    /// Signal shutdown without waiting; returns the serve task.
    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("already shut down")
    }
}

impl Builder {
    /// A `key = value` line in `[server]`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_string());
        self
    }

    /// More TOML after `[server]` (tables, arrays of tables).
    pub fn toml(mut self, text: &str) -> Self {
        self.sections.push(text.to_string());
        self
    }

    /// A public route to `upstream`.
    pub fn public_route(self, prefix: &str, upstream: &str) -> Self {
        self.toml(&format!(
            "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\npublic = true\n"
        ))
    }

    /// Use this clock for token expiry.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Reuse a temp dir (e.g. to restart a gateway on the same files).
    pub fn dir(mut self, dir: Arc<tempfile::TempDir>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// The config text this builder makes, for a given dir.
    pub fn config_text(&self, dir: &str) -> String {
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{dir}/cert.pem\"\ntls_key = \"{dir}/key.pem\"\ndev_certificate = true\nshutdown_timeout = \"5s\"\n"
        );
        for line in &self.server {
            text.push_str(line);
            text.push('\n');
        }
        for section in &self.sections {
            text.push('\n');
            text.push_str(section);
            text.push('\n');
        }
        text.replace("{dir}", dir)
    }

    pub async fn start(self) -> TestGateway {
        init_logs();
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
        let text = self.config_text(dir.path().to_str().unwrap());
        let config =
            Config::from_toml(&text).unwrap_or_else(|e| panic!("test config:\n{text}\n{e}"));
        let gateway = match self.clock {
            Some(clock) => passgate::Gateway::with_clock(config.clone(), clock).await,
            None => passgate::Gateway::new(config.clone()).await,
        }
        .unwrap_or_else(|e| panic!("gateway start: {e:#}"));
        let config_file = dir.path().join("passgate.toml");
        std::fs::write(&config_file, &text).unwrap();
        let reloader = gateway.reloader(config_file);
        // As `passgate serve` binds: each worker gets a socket of its own
        // (SO_REUSEPORT); tests/lifecycle.rs covers a plain listener.
        let listener = passgate::server::listen::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let (stop_admin, admin_stop) = tokio::sync::watch::channel(false);
        tokio::spawn(gateway.admin(admin_listener, admin_stop));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap_or_else(|e| panic!("gateway serve: {e:#}"));
            let _ = stop_admin.send(true);
        });
        let cert_pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
        TestGateway {
            addr,
            admin_addr,
            dir,
            config,
            reloader,
            cert_pem,
            stop: Some(tx),
            task: Some(task),
        }
    }
}

// === impl TestClient ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

/// A TLS client that trusts the gateway's certificate and speaks one protocol.
#[derive(Clone)]
pub struct TestClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, ClientBody>,
    pub base: String,
    pub proto: Proto,
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn tls_roots(cert_pem: &[u8]) -> rustls::RootCertStore {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

pub fn tls_client_config(cert_pem: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    passgate::tls::install_crypto_providers();
    let mut config = rustls::ClientConfig::builder_with_provider(passgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(tls_roots(cert_pem))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    config
}

impl TestClient {
    pub fn new(addr: SocketAddr, cert_pem: &[u8], proto: Proto) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(cert_pem, &[]))
            .https_only();
        let connector = match proto {
            Proto::H1 => builder.enable_http1().build(),
            Proto::H2 => builder.enable_http2().build(),
        };
        let mut client = Client::builder(TokioExecutor::new());
        if proto == Proto::H2 {
            client.http2_only(true);
        }
        TestClient {
            client: client.build(connector),
            base: format!("https://127.0.0.1:{}", addr.port()),
            proto,
        }
    }

    /// A request builder for `path` on this gateway.
    pub fn req(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.req(Method::GET, path).body(empty()).unwrap())
            .await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = self.req(Method::GET, path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(empty()).unwrap()).await
    }

    /// Send and read the whole answer.
    pub async fn send(&self, req: Request<ClientBody>) -> Reply {
        let resp = self
            .try_send(req)
            .await
            .unwrap_or_else(|e| panic!("request failed: {e:#}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    /// Send; the body is left to the caller.
    pub async fn try_send(
        &self,
        req: Request<ClientBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }
}

pub fn empty() -> ClientBody {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

pub fn body(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A streamed body of `total` bytes in 64 KiB chunks, generated as it is sent.
pub fn streamed(total: usize) -> ClientBody {
    let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
    let frames = (0..total.div_ceil(64 * 1024)).map(move |i| {
        let len = (total - i * 64 * 1024).min(64 * 1024);
        Ok::<_, BoxError>(Frame::data(chunk.slice(..len)))
    });
    BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

/// A streamed body of `count` chunks of `size` bytes (no `Content-Length`).
pub fn chunks(size: usize, count: usize) -> ClientBody {
    let chunk = Bytes::from(vec![b'z'; size]);
    let frames = (0..count).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone())));
    BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)))
}

// === a login world ===

/// The realm of [`login_toml`].
pub const LOGIN_REALM: &str = "Username-Password-Authentication";

/// passgate's own issuer (ES256), its store, the API `https://api.example.com`
/// (scope `read:items`), the realm [`LOGIN_REALM`] and a client `app` (secret
/// `app-secret`) allowed the password grant there. Tests append their own
/// sections (`[attack_protection]`, `[passwords]`, ...).
pub fn login_toml() -> String {
    const REALM: &str = LOGIN_REALM;
    format!(
        r#"
[issuer]
url = "https://localhost/"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "https://api.example.com"
default_realm = "{REALM}"
[store]
path = "{{dir}}/passgate.db"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items"]
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password"]
realms = ["{REALM}"]
[[realms]]
name = "{REALM}"
"#
    )
}

/// `GET http://{addr}{path}` on the plain-HTTP admin listener: status and body.
pub async fn admin_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the series `series` (name and labels, exactly as printed) in
/// a `/metrics` text, or 0 when it is absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Add a user to the store in `dir` (`passgate.db`), with light hashing, as an
/// administrator would before a test logs in.
pub async fn add_user(
    dir: &std::path::Path,
    clock: SharedClock,
    realm: &str,
    username: &str,
    email: Option<&str>,
    password: &str,
) {
    let store = Arc::new(passgate::store::SqliteStore::open(&dir.join("passgate.db")).unwrap());
    let hasher = passgate::identity::password::Hasher::new(Default::default(), 1).unwrap();
    passgate::identity::users::Admin::new(store, hasher, clock)
        .add(realm, username, email, password)
        .await
        .unwrap();
}

/// The path of a file under `tests/fixtures/` (scripts, keys), which must exist.
pub fn fixture(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p.display().to_string()
}
