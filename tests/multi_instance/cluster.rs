//! Two real `passgate serve` processes on one PostgreSQL database (over TLS,
//! `sslmode=require`), an echo upstream, the CLI against the same config,
//! and a TCP relay in front of PostgreSQL that a test can cut and restore.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use passgate::store::postgres::testing::{TestDb, server_url};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Proto, Reply, TestClient, Upstream, body};

pub const REALM: &str = "Username-Password-Authentication";
pub const PASSWORD: &str = "correct horse battery";

/// One `passgate serve` child.
pub struct Instance {
    pub name: &'static str,
    /// Killed when the instance is dropped.
    _child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    pub admin: SocketAddr,
    pub client: TestClient,
}

/// Two instances on one database.
pub struct Cluster {
    pub a: Instance,
    pub b: Instance,
    pub config: PathBuf,
    pub db: TestDb,
    pub relay: Option<Relay>,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// The parts of a `postgres://user[:pw]@host:port/db?query` URL.
fn split_url(url: &str) -> (String, SocketAddr) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (user, host) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let host = host.replace("localhost", "127.0.0.1");
    let host = if host.contains(':') {
        host
    } else {
        format!("{host}:5432")
    };
    let addr = host.parse().expect("the test server is IP:port");
    (user.to_string(), addr)
}

/// The database's URL for passgate: the test server, this database,
/// encrypted (`sslmode=require`), through `via` when given.
fn database_url(db: &TestDb, via: Option<SocketAddr>) -> String {
    let (user, server) = split_url(&server_url());
    let host = via.unwrap_or(server);
    format!("postgres://{user}@{host}/{}?sslmode=require", db.name())
}

fn config_text(dir: &Path, url: &str, admin: SocketAddr, upstream: &str, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
tls_cert = "{d}/cert.pem"
tls_key = "{d}/key.pem"
dev_certificate = true
admin_listen = "{admin}"
workers = 1
shutdown_timeout = "2s"
[issuer]
url = "https://localhost/"
signing_keys = "{d}/signing"
algorithm = "ES256"
default_audience = "https://api.example.com"
default_realm = "{REALM}"
[store]
url = "{url}"
connect_timeout = "1s"
statement_timeout = "2s"
encryption_key_file = "{d}/store.key"
[passwords]
memory = "64KiB"
iterations = 1
verify_floor = "0s"
[[apis]]
audience = "https://api.example.com"
scopes = ["read:items"]
token_lifetime = "1h"
allow_offline_access = true
[[clients]]
id = "app"
secret = "app-secret"
grant_types = ["password", "refresh_token"]
realms = ["{REALM}"]
[[realms]]
name = "{REALM}"
[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "https://api.example.com"
scopes = ["read:items"]
{extra}
"#
    )
}

/// A free loopback port (bound, read, released).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Cluster {
    /// Two instances on a fresh database, with `alice` added through the
    /// CLI; `None` when there is no PostgreSQL (outside CI). `extra` is
    /// appended to both configs; `relayed` puts a cuttable relay in front
    /// of the database.
    pub async fn start(extra: &str, relayed: bool) -> Option<Cluster> {
        crate::common::init_logs();
        let db = TestDb::create().await?;
        let relay = match relayed {
            true => Some(Relay::start(split_url(&server_url()).1).await),
            false => None,
        };
        let url = database_url(&db, relay.as_ref().map(|r| r.addr));
        let upstream = Upstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut configs = Vec::new();
        for name in ["a", "b"] {
            let path = dir.path().join(format!("{name}.toml"));
            let text = config_text(dir.path(), &url, free_port(), &upstream.url, extra);
            std::fs::write(&path, text).expect("config");
            configs.push(path);
        }
        // The first start makes the certificate, the keys and the schema.
        let a = Instance::start("a", &configs[0], dir.path()).await;
        let b = Instance::start("b", &configs[1], dir.path()).await;
        let cluster = Cluster {
            a,
            b,
            config: configs[0].clone(),
            db,
            relay,
            _upstream: upstream,
            _dir: dir,
        };
        cluster.cli(
            &[
                "users",
                "add",
                "--realm",
                REALM,
                "--username",
                "alice",
                "--password-stdin",
            ],
            PASSWORD,
        );
        Some(cluster)
    }

    /// Run `passgate ARGS --config <a's config>`, feeding `stdin`; panics on failure.
    pub fn cli(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("passgate CLI");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("CLI output");
        assert!(
            out.status.success(),
            "passgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Instance {
    async fn start(name: &'static str, config: &Path, dir: &Path) -> Instance {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_passgate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("passgate serve");
        let log = Arc::new(Mutex::new(String::new()));
        for reader in [
            Box::new(child.stdout.take().expect("stdout"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut all = log.lock().expect("log");
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = {
                let text = log.lock().expect("log");
                text.split("passgate listening on https://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
            };
            if let Some(addr) = found {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited ({status}):\n{}", log.lock().expect("log"));
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not start:\n{}",
                log.lock().expect("log")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let text = std::fs::read_to_string(config).expect("config");
        let admin = text
            .lines()
            .find_map(|l| l.strip_prefix("admin_listen = "))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .expect("admin_listen");
        let cert = std::fs::read(dir.join("cert.pem")).expect("cert");
        let client = TestClient::new(addr, &cert, Proto::H1);
        Instance {
            name,
            _child: child,
            log,
            admin,
            client,
        }
    }

    /// What the instance logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// A POST of form pairs to `/oauth/token` (or `path`).
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Reply {
        let req = self
            .client
            .req(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body(serde_urlencoded::to_string(pairs).expect("form")))
            .expect("request");
        self.client.send(req).await
    }

    /// alice's password login (with a refresh token).
    pub async fn login(&self, password: &str) -> Reply {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", password),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
                ("scope", "offline_access read:items"),
            ],
        )
        .await
    }

    /// A refresh-token exchange.
    pub async fn refresh(&self, token: &str) -> Reply {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "app"),
                ("client_secret", "app-secret"),
            ],
        )
        .await
    }

    /// `GET /api/x` with `access` as the bearer token: the status.
    pub async fn proxied(&self, access: &str) -> u16 {
        self.client
            .get_with("/api/x", &[("authorization", &format!("Bearer {access}"))])
            .await
            .status
            .as_u16()
    }

    /// `GET http://admin{path}`: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        crate::common::admin_text(self.admin, path).await
    }
}

/// The access and refresh tokens of a 200 token answer.
pub fn tokens(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = r.json();
    (
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        v["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
    )
}

/// Poll `check` every 10 ms until it holds; how long it took, or `None`
/// after `limit`.
pub async fn until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// A TCP relay to PostgreSQL that can be cut (every connection closed, new
/// ones refused) and restored, to play a database that goes away.
pub struct Relay {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let open = Arc::new(AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (is_open, cuts) = (Arc::clone(&open), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { addr, open, cut }
    }

    /// Close every relayed connection and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Relay again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
