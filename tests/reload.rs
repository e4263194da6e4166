//! Reload without a restart (issue 16): a real gateway over TLS, one
//! HTTP/1.1 keep-alive connection and one HTTP/2 connection opened before the
//! reload and used after it; every item a reload swaps (routes, upstreams,
//! clients, APIs, realms, trusted issuers, scripts, the certificate) checked
//! on both; a broken config changing nothing; `passgate reload` against a
//! running `passgate serve`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, Header};
use passgate::clock::SystemClock;
use passgate::identity::password::Hasher;
use passgate::identity::users::Admin;
use passgate::store::SqliteStore;
use passgate::tokens::keys::{SigningKey, generate_into};
use serde_json::{Value, json};

const PARTNERS: &str = "Partners";
const PASSWORD: &str = "correct horse battery";
const TENANT: &str = "https://tenant.example.com/";
const AUD: &str = "https://api.example.com";
const AUD2: &str = "https://api2.example.com";

/// One connection that stays open across the reload, either protocol.
enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!("not JSON: {}", String::from_utf8_lossy(&self.body));
        })
    }
    fn upstream(&self) -> &str {
        self.headers
            .get("x-upstream")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    }
}

impl Conn {
    async fn open(gw: &TestGateway, proto: Proto) -> Conn {
        let alpn: &[&[u8]] = match proto {
            Proto::H1 => &[b"http/1.1"],
            Proto::H2 => &[b"h2"],
        };
        let io = TokioIo::new(gw.tls_connect(alpn).await);
        match proto {
            Proto::H1 => {
                let (send, conn) = http1::handshake(io).await.unwrap();
                tokio::spawn(conn);
                Conn::H1(send)
            }
            Proto::H2 => {
                let (send, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
                tokio::spawn(conn);
                Conn::H2(send)
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Conn::H1(_) => "HTTP/1.1",
            Conn::H2(_) => "HTTP/2",
        }
    }

    async fn send(&mut self, req: http::request::Builder, body: &str) -> Answer {
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await.expect("the HTTP/1.1 connection closed");
                s.send_request(req).await.unwrap()
            }
            Conn::H2(s) => {
                s.ready().await.expect("the HTTP/2 connection closed");
                s.send_request(req).await.unwrap()
            }
        };
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    fn req(&self, method: &str, path: &str) -> http::request::Builder {
        match self {
            Conn::H1(_) => Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost"),
            Conn::H2(_) => Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}")),
        }
    }

    async fn get(&mut self, path: &str, bearer: Option<&str>) -> Answer {
        let mut req = self.req("GET", path);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req, "").await
    }

    async fn token(&mut self, client: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut all = vec![
            ("client_id", client),
            ("client_secret", "app-secret"),
            ("username", "ann"),
            ("password", PASSWORD),
        ];
        all.extend_from_slice(pairs);
        let req = self
            .req("POST", "/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded");
        self.send(req, &serde_urlencoded::to_string(&all).unwrap())
            .await
    }
}

/// The issuer, its store, fast password hashing, the realm, the API and the
/// client `app` every config has.
fn issuer_toml() -> String {
    format!(
        r#"
[issuer]
url = "https://localhost/"
signing_keys = "{{dir}}/signing"
algorithm = "ES256"
default_audience = "{AUD}"
default_realm = "{LOGIN_REALM}"
[store]
path = "{{dir}}/passgate.db"
[passwords]
memory = "64KiB"
iterations = 1
[[apis]]
audience = "{AUD}"
scopes = ["read:items"]
[[realms]]
name = "{LOGIN_REALM}"
"#
    )
}

const GRANTS: &str =
    r#"grant_types = ["password", "http://auth0.com/oauth/grant-type/password-realm"]"#;

/// The config before the reload: `/a/` and `/gone/` to `one`, `/secure/`
/// for tokens of `https://api.example.com`, the client `app`.
fn before(one: &str) -> String {
    format!(
        r#"{issuer}
[[clients]]
id = "app"
secret = "app-secret"
{GRANTS}
realms = ["{LOGIN_REALM}"]

[[routes]]
prefix = "/a/"
upstream = "{one}"
public = true
[[routes]]
prefix = "/gone/"
upstream = "{one}"
public = true
[[routes]]
prefix = "/secure/"
upstream = "{one}"
audience = "{AUD}"
"#,
        issuer = issuer_toml()
    )
}

/// The config after: `/a/` moved to `two`, `/gone/` removed, `/new/` added;
/// a second API, realm and client (`app2`, both realms); a trusted issuer
/// (JWKS file); a rule that denies `app`; a new certificate.
fn after(one: &str, two: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
tls_cert = "{{dir}}/cert2.pem"
tls_key = "{{dir}}/key2.pem"
dev_certificate = true
shutdown_timeout = "5s"
{issuer}
[[apis]]
audience = "{AUD2}"
scopes = ["read:things"]
[[realms]]
name = "{PARTNERS}"
[[clients]]
id = "app"
secret = "app-secret"
{GRANTS}
realms = ["{LOGIN_REALM}"]
[[clients]]
id = "app2"
secret = "app-secret"
{GRANTS}
realms = ["{LOGIN_REALM}", "{PARTNERS}"]

[[trusted_issuers]]
issuer = "{TENANT}"
jwks_file = "{{dir}}/jwks.json"

[[rules]]
name = "deny-app"
script = "{{dir}}/deny-app.js"

[[routes]]
prefix = "/a/"
upstream = "{two}"
public = true
[[routes]]
prefix = "/new/"
upstream = "{one}"
public = true
[[routes]]
prefix = "/secure/"
upstream = "{one}"
audience = "{AUD}"
"#,
        issuer = issuer_toml()
    )
}

const DENY_APP: &str = r#"function (user, context, callback) {
  if (context.clientID === 'app') {
    return callback(new UnauthorizedError('app is retired'));
  }
  callback(null, user, context);
}
"#;

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn tenant_token(key: &SigningKey) -> String {
    let now = passgate::clock::Clock::now(&SystemClock);
    let claims = json!({
        "iss": TENANT, "sub": "tenant-user", "aud": AUD, "azp": "tenant-client",
        "iat": now, "exp": now + 300,
    });
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// Users `ann` in both realms; the tenant's key published in `jwks.json`;
/// the rule file; a second certificate. None of it is read before the reload.
async fn prepare(dir: &Path) -> SigningKey {
    let store = Arc::new(SqliteStore::open(&dir.join("passgate.db")).unwrap());
    let admin = Admin::new(
        store,
        Hasher::new(Default::default(), 1).unwrap(),
        Arc::new(SystemClock),
    );
    for realm in [LOGIN_REALM, PARTNERS] {
        admin.add(realm, "ann", None, PASSWORD).await.unwrap();
    }
    let key = generate_into(&dir.join("tenant-keys"), Algorithm::ES256).unwrap();
    let jwks = json!({ "keys": [key.jwk.clone()] });
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    std::fs::write(dir.join("deny-app.js"), DENY_APP).unwrap();
    assert!(
        passgate::tls::ensure_dev_certificate(&dir.join("cert2.pem"), &dir.join("key2.pem"))
            .unwrap()
    );
    key
}

async fn status(gw: &TestGateway) -> Value {
    let (code, text) = admin_text(gw.admin_addr, "/status").await;
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The leaf certificate a fresh connection is shown, trusting `pem`.
async fn presented(gw: &TestGateway, pem: &[u8]) -> Vec<u8> {
    let config = Arc::new(tls_client_config(pem, &[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_every_item_on_connections_that_stay_open() {
    let one = Upstream::start_named("one").await;
    let two = Upstream::start_named("two").await;
    let gw = TestGateway::builder().toml(&before(&one.url)).start().await;
    let tenant = prepare(gw.dir.path()).await;
    let token = tenant_token(&tenant);
    let mut conns = [
        Conn::open(&gw, Proto::H1).await,
        Conn::open(&gw, Proto::H2).await,
    ];

    for c in &mut conns {
        let n = c.name();
        let r = c.get("/a/x", None).await;
        assert_eq!((r.status, r.upstream()), (StatusCode::OK, "one"), "{n}");
        assert_eq!(c.get("/gone/x", None).await.status, 200, "{n}");
        assert_eq!(c.get("/new/x", None).await.status, 404, "{n}");
        assert_eq!(c.get("/secure/x", Some(&token)).await.status, 401, "{n}");
        let r = c.token("app", &[("grant_type", "password")]).await;
        assert_eq!(r.status, 200, "{n}: {}", String::from_utf8_lossy(&r.body));
        let r = c.token("app2", &[("grant_type", "password")]).await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (StatusCode::UNAUTHORIZED, json!("access_denied")),
            "{n}"
        );
        let r = c
            .token("app", &[("grant_type", "password"), ("audience", AUD2)])
            .await;
        assert!(r.status.is_client_error(), "{n}: {}", r.status);
    }
    let old_cert = gw.cert_pem().to_vec();
    assert_eq!(presented(&gw, &old_cert).await, der(&old_cert));

    gw.reload_with(&after(&one.url, &two.url))
        .await
        .unwrap_or_else(|e| panic!("reload: {e:#}"));

    for c in &mut conns {
        let n = c.name();
        // Routes: one moved to another upstream, one removed, one added.
        let r = c.get("/a/x", None).await;
        assert_eq!((r.status, r.upstream()), (StatusCode::OK, "two"), "{n}");
        let r = c.get("/gone/x", None).await;
        assert_eq!(r.status, 404, "{n}");
        let r = c.get("/new/x", None).await;
        assert_eq!((r.status, r.upstream()), (StatusCode::OK, "one"), "{n}");
        // The trusted issuer's key set.
        let r = c.get("/secure/x", Some(&token)).await;
        assert_eq!(r.status, 200, "{n}: {}", String::from_utf8_lossy(&r.body));
        // The new client, API and realm.
        let r = c
            .token(
                "app2",
                &[
                    (
                        "grant_type",
                        "http://auth0.com/oauth/grant-type/password-realm",
                    ),
                    ("realm", PARTNERS),
                    ("audience", AUD2),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{n}: {}", String::from_utf8_lossy(&r.body));
        let access = claims(r.json()["access_token"].as_str().unwrap());
        assert_eq!(access["aud"], json!(AUD2), "{n}");
        // The new rule.
        let r = c.token("app", &[("grant_type", "password")]).await;
        assert_eq!(r.status, 401, "{n}");
        assert_eq!(
            r.json(),
            json!({"error": "unauthorized", "error_description": "app is retired"}),
            "{n}"
        );
    }
    // New handshakes present the new certificate; the open connections were not disturbed.
    let new_cert = std::fs::read(gw.dir.path().join("cert2.pem")).unwrap();
    assert_ne!(der(&new_cert), der(&old_cert));
    assert_eq!(presented(&gw, &new_cert).await, der(&new_cert));
    for c in &mut conns {
        assert_eq!(c.get("/new/y", None).await.status, 200, "{}", c.name());
    }
    let s = status(&gw).await;
    assert_eq!(s["config"]["generation"], 2, "{s}");
    assert_eq!(s["config"]["last_reload"], "ok", "{s}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_changes_nothing_and_names_every_problem() {
    let one = Upstream::start_named("one").await;
    let gw = TestGateway::builder()
        .toml(&issuer_toml())
        .public_route("/a/", &one.url)
        .start()
        .await;
    let mut conns = [
        Conn::open(&gw, Proto::H1).await,
        Conn::open(&gw, Proto::H2).await,
    ];
    let broken = "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{dir}/cert.pem\"\ntls_key = \"{dir}/key.pem\"\nbogus = 1\n\
         [[routes]]\nprefix = \"/b/\"\nupstream = \"not a url\"\npublic = true\n";
    let err = gw.reload_with(broken).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("bogus"), "{text}");
    assert!(text.contains("routes[0].upstream"), "{text}");

    // A script that does not compile refuses the reload as well.
    std::fs::write(gw.dir.path().join("bad.js"), "function (user, {").unwrap();
    let bad_script = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{{dir}}/cert.pem\"\ntls_key = \"{{dir}}/key.pem\"\n\
         [[routes]]\nprefix = \"/b/\"\nupstream = \"{}\"\npublic = true\n{}\
         [[rules]]\nname = \"bad\"\nscript = \"{{dir}}/bad.js\"\n",
        one.url,
        issuer_toml()
    );
    let err = gw.reload_with(&bad_script).await.unwrap_err();
    assert!(format!("{err:#}").contains("rules[0].script"), "{err:#}");

    // A certificate that is not one refuses it too.
    std::fs::write(gw.dir.path().join("junk.pem"), "not a certificate").unwrap();
    let bad_cert = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{{dir}}/junk.pem\"\ntls_key = \"{{dir}}/key.pem\"\n\
         [[routes]]\nprefix = \"/b/\"\nupstream = \"{}\"\npublic = true\n",
        one.url
    );
    let err = gw.reload_with(&bad_cert).await.unwrap_err();
    assert!(format!("{err:#}").contains("junk.pem"), "{err:#}");

    for c in &mut conns {
        let n = c.name();
        assert_eq!(c.get("/a/x", None).await.status, 200, "{n}");
        assert_eq!(c.get("/b/x", None).await.status, 404, "{n}");
    }
    let fresh = gw.client(Proto::H1);
    assert_eq!(fresh.get("/a/x").await.status, 200);
    let s = status(&gw).await;
    assert_eq!(s["config"]["generation"], 1, "{s}");
    let last = s["config"]["last_reload"].as_str().unwrap();
    assert!(last.contains("junk.pem"), "{s}");
    gw.shutdown().await;
}

fn serve_config(dir: &Path, routes: &str) -> String {
    let d = dir.display();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         tls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\ndev_certificate = true\n\
         pid_file = \"{d}/passgate.pid\"\nworkers = 1\nshutdown_timeout = \"2s\"\n{routes}"
    )
}

fn passgate(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every line the child writes (its log), gathered as it comes.
fn collect_log(child: &mut tokio::process::Child) -> Arc<std::sync::Mutex<String>> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for reader in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = log.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passgate_reload_signals_the_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("passgate.toml");
    let route = |p: &str| {
        format!("[[routes]]\nprefix = \"{p}\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n")
    };
    std::fs::write(&config, serve_config(dir.path(), &route("/a/"))).unwrap();

    // Without a running serve there is nothing to signal.
    let out = passgate(&["reload"], &config);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("passgate.pid"));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = collect_log(&mut child);
    let logged = |text: &'static str| {
        let log = Arc::clone(&log);
        move || log.lock().unwrap().contains(text)
    };
    let pid_file = dir.path().join("passgate.pid");
    wait_for("passgate to listen", logged("passgate listening")).await;
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), child.id().unwrap().to_string());

    // A good config is taken ...
    let both = format!("{}{}", route("/a/"), route("/b/"));
    std::fs::write(&config, serve_config(dir.path(), &both)).unwrap();
    let out = passgate(&["reload"], &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the reload", logged("config reloaded")).await;
    // ... a broken one: `passgate reload` names the problem and signals
    // nothing; a SIGHUP sent by hand is refused by the serve, which goes on.
    std::fs::write(
        &config,
        format!("{}bogus = 1\n", serve_config(dir.path(), &both)),
    )
    .unwrap();
    let out = passgate(&["reload"], &config);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[1].bogus"));
    let pid = child.id().unwrap().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the refusal", logged("reload refused")).await;
    assert!(
        log.lock().unwrap().contains("bogus"),
        "{}",
        log.lock().unwrap()
    );
    assert!(child.try_wait().unwrap().is_none(), "passgate serve exited");

    // SIGTERM: the serve drains, exits, and removes its pid file.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("passgate serve did not exit")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!pid_file.exists(), "the pid file was left behind");
}
