//! Default mode's world: a stand-in upstream and a passgate, in-process on
//! loopback ports, on their own tokio runtime (so the load generator's tasks
//! do not queue behind the server's), with a generated config in a temp dir
//! and users created through the library.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use passgate::config::Config;
use passgate::identity::password::{HashParams, Hasher};
use passgate::identity::users::Admin;
use passgate::store::postgres::testing::{self, TestDb};
use passgate::store::{PgStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::args::StoreKind;

/// The generated config's names.
pub const API: &str = "https://api.load.test";
/// The realm users are created in.
pub const REALM: &str = "Username-Password-Authentication";
/// A confidential client trusted to send `auth0-forwarded-for`.
pub const CLIENT_ID: &str = "load-backend";
/// Its secret.
pub const CLIENT_SECRET: &str = "load-backend-secret";
/// Password of every generated user.
pub const PASSWORD: &str = "correct horse battery staple";

/// The name of generated user `i`.
pub fn username(i: usize) -> String {
    format!("load-user-{i}")
}

/// The config of the in-process gateway: dev certificate and signing keys in
/// `dir`, one API (offline access allowed), one trusted confidential client,
/// one realm, a protected `/api/` route and a public `/public/` route; the
/// request-rate limits of `[attack_protection]` raised out of the way.
///
/// `store` is the `[store]` section's body ([`store_toml`]).
pub fn config_toml(dir: &str, upstream: SocketAddr, store: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
tls_cert = "{dir}/cert.pem"
tls_key = "{dir}/key.pem"
dev_certificate = true
shutdown_timeout = "2s"

[log]
access = false

# Throughput runs measure argon2, not the request limiter: the per-IP request
# limit and the per-(user, IP) attempt limit are raised far above what the
# bench sends. Brute-force blocks and suspicious-IP throttling keep their
# defaults, so the flood meets them.
[attack_protection]
request_limit = 1000000
request_period = "1s"
user_ip_burst = 1000000
user_ip_limit = 1000000
user_ip_period = "1s"

[issuer]
url = "https://localhost/"
signing_keys = "{dir}/signing"
default_audience = "{API}"
default_realm = "{REALM}"

[store]
{store}

[[apis]]
audience = "{API}"
scopes = ["read:items", "write:items"]
token_lifetime = "1h"
allow_offline_access = true

[[clients]]
id = "{CLIENT_ID}"
secret = "{CLIENT_SECRET}"
grant_types = ["password", "http://auth0.com/oauth/grant-type/password-realm", "refresh_token"]
trust_forwarded_for = true

[[realms]]
name = "{REALM}"

[[routes]]
prefix = "/api/"
upstream = "http://{upstream}"
scopes = ["read:items"]

[[routes]]
prefix = "/public/"
upstream = "http://{upstream}"
public = true
"#
    )
}

/// The `[store]` keys: the SQLite file in `dir`, or the PostgreSQL
/// database at `url` (with the store key in `dir`, where SQLite would keep it).
pub fn store_toml(dir: &str, url: Option<&str>) -> String {
    match url {
        None => format!("path = \"{dir}/passgate.db\""),
        Some(url) => format!("url = \"{url}\"\nencryption_key_file = \"{dir}/store.key\""),
    }
}

/// `[[actions]]` entries for `--action` files, run on every login.
pub fn actions_toml(actions: &[std::path::PathBuf]) -> String {
    actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let path = a
                .display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            format!("\n[[actions]]\nname = \"bench-{i}\"\nscript = \"{path}\"\n")
        })
        .collect()
}

/// A running upstream + gateway.
pub struct World {
    /// The gateway's TLS address.
    pub addr: SocketAddr,
    /// Its (self-signed) certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// Users created (name, password).
    pub users: Vec<(String, String)>,
    /// Reloads taken and refused while the load ran (`--reload-every`).
    pub reloads: Arc<Reloads>,
    rt: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    /// With `--store postgres`: the run's database, dropped after the gateway stops.
    db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

/// How the reloads of `--reload-every` went.
#[derive(Debug, Default)]
pub struct Reloads {
    /// Reloads that swapped the config in.
    pub taken: AtomicU64,
    /// Reloads refused (none expected: every config written is valid).
    pub refused: AtomicU64,
    /// The longest a reload took, in microseconds.
    pub max_us: AtomicU64,
}

/// Reload every `every`, alternating `base` and `base` with one more route,
/// so each reload really swaps the route table.
async fn keep_reloading(
    reloader: passgate::Reloader,
    file: std::path::PathBuf,
    base: String,
    every: Duration,
    reloads: Arc<Reloads>,
) {
    let extra = format!(
        "{base}\n[[routes]]\nprefix = \"/reloaded/\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n"
    );
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    for i in 0u64.. {
        tick.tick().await;
        let text = if i % 2 == 0 { &extra } else { &base };
        let started = Instant::now();
        let counter = match std::fs::write(&file, text) {
            Ok(()) if reloader.reload().await.is_ok() => &reloads.taken,
            _ => &reloads.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        reloads.max_us.fetch_max(took, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Start everything, on `store`, and create `users` users.
    pub async fn start(
        users: usize,
        metrics: bool,
        actions: &[std::path::PathBuf],
        reload_every: Option<Duration>,
        store: StoreKind,
    ) -> anyhow::Result<World> {
        let scripts = actions_toml(actions);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("passgate-world")
            .enable_all()
            .build()?;
        let dir = tempfile::tempdir()?;
        let dir_text = dir
            .path()
            .to_str()
            .context("temp dir path is not UTF-8")?
            .to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let reloads = Arc::new(Reloads::default());
        let counts = Arc::clone(&reloads);
        // The database's connections are driven by the runtime that makes it.
        let db = match store {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(rt.spawn(TestDb::create()).await?.with_context(|| {
                format!(
                    "--store postgres: no PostgreSQL at {} (set {})",
                    passgate::config::redact_url(&testing::server_url()),
                    testing::URL_ENV
                )
            })?),
        };
        let url = db.as_ref().map(TestDb::url);
        let addr = rt
            .spawn(async move {
                let upstream = start_upstream().await?;
                let store = store_toml(&dir_text, url.as_deref());
                let text = format!(
                    "{}\n[metrics]\nenabled = {metrics}\n{scripts}",
                    config_toml(&dir_text, upstream, &store)
                );
                let config = Config::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("generated config: {e}"))?;
                let gateway = passgate::Gateway::new(config).await?;
                if let Some(every) = reload_every {
                    let file = std::path::Path::new(&dir_text).join("passgate.toml");
                    std::fs::write(&file, &text)?;
                    let reloader = gateway.reloader(file.clone());
                    tokio::spawn(keep_reloading(reloader, file, text, every, counts));
                }
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                tokio::spawn(gateway.serve(listener, async move {
                    let _ = stopped.await;
                }));
                anyhow::Ok(addr)
            })
            .await??;
        let user_store: Arc<dyn Store> = match &db {
            None => Arc::new(SqliteStore::open(&dir.path().join("passgate.db"))?),
            Some(db) => {
                let settings = db.settings().clone();
                Arc::new(
                    rt.spawn(async move { PgStore::connect(&settings).await })
                        .await??,
                )
            }
        };
        let users = create_users(user_store, users).await?;
        let cert_pem = std::fs::read(dir.path().join("cert.pem"))?;
        Ok(World {
            addr,
            cert_pem,
            users,
            reloads,
            rt: Some(rt),
            stop: Some(stop),
            db,
            _dir: dir,
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        // The database goes after the gateway (DROP DATABASE ... WITH (FORCE)).
        drop(self.db.take());
    }
}

async fn create_users(store: Arc<dyn Store>, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let admin = Admin::new(
        store,
        Hasher::new(HashParams::default(), 1)?,
        passgate::clock::system(),
    );
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let name = username(i);
        admin.add(REALM, &name, None, PASSWORD).await?;
        users.push((name, PASSWORD.to_string()));
    }
    Ok(users)
}

/// A plain HTTP/1.1 upstream answering every request 200 with a small JSON body.
async fn start_upstream() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(b"{\"items\":[]}")))
                            .unwrap_or_default(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Password verifications per second this machine sustains with passgate's
/// default argon2 parameters on its default pool (one worker per core): the
/// ceiling of the token endpoint. Runs for `for_how_long` with nothing else.
pub fn argon2_limit(for_how_long: Duration) -> anyhow::Result<f64> {
    let workers = Hasher::default_workers();
    let hasher = Hasher::new(HashParams::default(), workers)?;
    let stored = hasher.hash_blocking(PASSWORD)?;
    let start = Instant::now();
    let end = start + for_how_long;
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0usize;
                    while Instant::now() < end {
                        let _ = hasher.verify_blocking(Some(&stored), PASSWORD);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let c =
            Config::from_toml(&config_toml("/tmp/x", addr, &store_toml("/tmp/x", None))).unwrap();
        assert_eq!(c.clients.len(), 1);
        assert!(c.clients[0].trust_forwarded_for);
        assert_eq!(c.routes.len(), 2);
        assert!(!c.log.access);
        assert!(matches!(
            c.store.backend,
            passgate::config::StoreBackend::Sqlite { .. }
        ));
        let pg = store_toml("/tmp/x", Some("postgres://postgres@127.0.0.1:5432/bench"));
        let c = Config::from_toml(&config_toml("/tmp/x", addr, &pg)).unwrap();
        assert!(matches!(
            c.store.backend,
            passgate::config::StoreBackend::Postgres(_)
        ));
    }
}
