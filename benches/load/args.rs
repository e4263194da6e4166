//! The load generator's command line: what to drive, how hard, for how long,
//! and where the figures go. Scenario-dependent defaults live here too, so the
//! rest of the code reads one resolved [`Plan`]-ready value.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What traffic to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Authorised GETs through the protected route.
    Proxy,
    /// Password logins on /oauth/token.
    Token,
    /// refresh_token exchanges, rotating the refresh token each time.
    Refresh,
    /// Password logins and proxied GETs at the same time.
    Mixed,
    /// A wrong-password storm from many forwarded IPs while proxied GETs are measured.
    Flood,
}

impl Scenario {
    /// The lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Proxy => "proxy",
            Scenario::Token => "token",
            Scenario::Refresh => "refresh",
            Scenario::Mixed => "mixed",
            Scenario::Flood => "flood",
        }
    }

    /// Every scenario, in the order the docs list them.
    pub const ALL: [Scenario; 5] = [
        Scenario::Proxy,
        Scenario::Token,
        Scenario::Refresh,
        Scenario::Mixed,
        Scenario::Flood,
    ];
}

/// The in-process gateway's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite file, in the run's temp dir.
    Sqlite,
    /// A PostgreSQL database of its own on the server of
    /// `PASSGATE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
    /// created for the run and dropped after it.
    Postgres,
}

impl StoreKind {
    /// The lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// HTTP version spoken to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HttpVersion {
    /// HTTP/1.1: one request at a time per connection.
    H1,
    /// HTTP/2: `--streams` concurrent requests per connection.
    H2,
}

fn parse_http(s: &str) -> Result<HttpVersion, String> {
    match s {
        "1" | "1.1" | "h1" | "http1" => Ok(HttpVersion::H1),
        "2" | "h2" | "http2" => Ok(HttpVersion::H2),
        _ => Err(format!("expected 1 or 2, got {s:?}")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 500ms, 1m)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "expected a positive number of requests per second, got {s:?}"
        )),
    }
}

/// `cargo bench --bench load -- [OPTIONS]`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "load",
    about = "End-to-end load generator for passgate (loopback or your own hosts only)",
    after_help = "Without --target it starts a stand-in upstream and a passgate in-process on \
                  127.0.0.1 with a generated config, creates users and logs in by itself."
)]
pub struct Args {
    /// What traffic to drive.
    #[arg(long, value_enum, default_value = "proxy")]
    pub scenario: Scenario,
    /// HTTP version to the gateway: 1 or 2.
    #[arg(long, value_parser = parse_http, default_value = "1")]
    pub http: HttpVersion,
    /// Connections for the main traffic (default: proxy 64, token 8, refresh 8, mixed 32, flood 16).
    #[arg(short = 'c', long)]
    pub connections: Option<usize>,
    /// HTTP/2 only: concurrent requests per connection.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// How long the load runs.
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after this many requests in all (whichever of this and --duration comes first).
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
    /// Open loop: send the main traffic at this fixed rate (requests/s) and measure latency
    /// from each request's intended send time. Without it: closed loop, as fast as it goes.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// mixed: connections doing logins; flood: connections sending wrong passwords.
    #[arg(long)]
    pub login_connections: Option<usize>,
    /// Open loop for the logins of mixed / the wrong passwords of flood (requests/s).
    #[arg(long, value_parser = parse_rate)]
    pub login_rate: Option<f64>,
    /// flood: distinct addresses sent in auth0-forwarded-for.
    #[arg(long, default_value_t = 1000)]
    pub flood_ips: u32,
    /// flood: proxied traffic alone before the storm starts, to measure idle latency
    /// (default: 30 % of --duration).
    #[arg(long, value_parser = parse_duration)]
    pub baseline: Option<Duration>,
    /// Deadline for one request (connect + TLS + answer).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// In-process mode: users to create and spread logins over (each worker also logs in
    /// from its own auth0-forwarded-for address, so per-user/per-IP limits do not turn a
    /// throughput run into a 429 run).
    #[arg(long, default_value_t = 4)]
    pub users: usize,
    /// In-process mode: a post-login action (file with `exports.onExecutePostLogin`)
    /// the gateway runs on every login; repeatable, run in order.
    #[arg(long = "action")]
    pub actions: Vec<std::path::PathBuf>,
    /// In-process mode: where the gateway keeps its state: `sqlite` (a file in the temp dir)
    /// or `postgres` (a database of its own on the server of PASSGATE_TEST_POSTGRES_URL,
    /// default postgres://postgres@127.0.0.1:5432/test, dropped after the run).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// Drive an already-running passgate at https://host:port (loopback or this machine only).
    #[arg(long)]
    pub target: Option<String>,
    /// --target: a bearer token to use for proxied requests (else one is obtained by logging in).
    #[arg(long, env = "LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// --target: username to log in with.
    #[arg(long)]
    pub username: Option<String>,
    /// --target: password to log in with.
    #[arg(long, env = "LOAD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// --target: client_id for logins.
    #[arg(long)]
    pub client_id: Option<String>,
    /// --target: client_secret (needed by flood: the client must have trust_forwarded_for).
    #[arg(long, env = "LOAD_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// --target: audience for logins.
    #[arg(long)]
    pub audience: Option<String>,
    /// --target: accept any server certificate.
    #[arg(long)]
    pub insecure: bool,
    /// --target: PEM file of CA certificates to trust.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Path of the proxied (protected) request.
    #[arg(long, default_value = "/api/items")]
    pub path: String,
    /// JSON results file (default: target/load/<scenario>-h<1|2>.json); the SVG plot goes
    /// beside it with the extension .svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// In-process gateway only: run it with `[metrics] enabled = false`
    /// (to compare the proxied throughput with metrics on and off).
    #[arg(long)]
    pub metrics_off: bool,
    /// In-process gateway only: reload its config at this interval while the
    /// load runs (each reload adds or removes a route); the count of reloads
    /// is printed at the end.
    #[arg(long, value_parser = parse_duration)]
    pub reload_every: Option<Duration>,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Args {
    /// Parse from an argument list (the first item is the program name).
    pub fn parse_from_list<I, T>(items: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(items)?;
        args.check()
            .map_err(|m| clap::Error::raw(clap::error::ErrorKind::ValueValidation, m + "\n"))?;
        Ok(args)
    }

    /// Consistency checks clap cannot express.
    fn check(&self) -> Result<(), String> {
        if self.streams == 0 || self.connections == Some(0) || self.login_connections == Some(0) {
            return Err(
                "--connections, --login-connections and --streams must be at least 1".into(),
            );
        }
        if self.streams > 1 && self.http == HttpVersion::H1 {
            return Err("--streams needs --http 2 (HTTP/1.1 carries one request at a time)".into());
        }
        if self.duration.is_zero() || self.max_requests == 0 {
            return Err("--duration and --max-requests must be above zero".into());
        }
        if self.users == 0 || self.flood_ips == 0 {
            return Err("--users and --flood-ips must be at least 1".into());
        }
        if self.insecure && self.ca.is_some() {
            return Err("give either --insecure or --ca, not both".into());
        }
        if self.target.is_none() {
            let remote_only = [
                (self.token.is_some(), "--token"),
                (self.username.is_some(), "--username"),
                (self.password.is_some(), "--password"),
                (self.client_id.is_some(), "--client-id"),
                (self.client_secret.is_some(), "--client-secret"),
                (self.audience.is_some(), "--audience"),
                (self.insecure, "--insecure"),
                (self.ca.is_some(), "--ca"),
            ];
            if let Some((_, name)) = remote_only.iter().find(|(set, _)| *set) {
                return Err(format!("{name} only applies with --target"));
            }
        } else if self.store != StoreKind::Sqlite {
            return Err(
                "--store picks the in-process gateway's store; a --target has its own".into(),
            );
        }
        if !self.path.starts_with('/') {
            return Err("--path must start with /".into());
        }
        Ok(())
    }

    /// Connections for the main traffic, after the scenario's default.
    pub fn main_connections(&self) -> usize {
        self.connections.unwrap_or(match self.scenario {
            Scenario::Proxy => 64,
            Scenario::Token | Scenario::Refresh => 8,
            Scenario::Mixed => 32,
            Scenario::Flood => 16,
        })
    }

    /// Connections for logins (mixed) or wrong passwords (flood).
    pub fn side_connections(&self) -> usize {
        self.login_connections.unwrap_or(match self.scenario {
            Scenario::Flood => 8,
            _ => 2,
        })
    }

    /// flood: how long proxied traffic runs alone first.
    pub fn baseline(&self) -> Duration {
        self.baseline
            .unwrap_or(self.duration.mul_f64(0.3))
            .min(self.duration)
    }

    /// Where the JSON results go.
    pub fn out_path(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let h = match self.http {
                HttpVersion::H1 => 1,
                HttpVersion::H2 => 2,
            };
            let store = match self.store {
                StoreKind::Sqlite => String::new(),
                other => format!("-{}", other.name()),
            };
            PathBuf::from(format!(
                "target/load/{}-h{h}{store}.json",
                self.scenario.name()
            ))
        })
    }

    /// Where the SVG plot goes: beside the JSON file.
    pub fn svg_path(&self) -> PathBuf {
        self.out_path().with_extension("svg")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Args, clap::Error> {
        Args::parse_from_list(std::iter::once("load").chain(list.iter().copied()))
    }

    #[test]
    fn defaults_and_cargo_bench_flag() {
        let a = parse(&["--bench"]).unwrap();
        assert_eq!(a.scenario, Scenario::Proxy);
        assert_eq!(a.http, HttpVersion::H1);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.main_connections(), 64);
        assert_eq!(a.rate, None);
        assert_eq!(a.out_path(), PathBuf::from("target/load/proxy-h1.json"));
        assert_eq!(a.svg_path(), PathBuf::from("target/load/proxy-h1.svg"));
        assert_eq!(a.store, StoreKind::Sqlite);
    }

    #[test]
    fn the_store_of_the_in_process_gateway() {
        let a = parse(&["--scenario", "refresh", "--store", "postgres"]).unwrap();
        assert_eq!(a.store, StoreKind::Postgres);
        assert_eq!(
            a.out_path(),
            PathBuf::from("target/load/refresh-h1-postgres.json")
        );
        let remote = parse(&[
            "--target",
            "https://127.0.0.1:8443",
            "--insecure",
            "--store",
            "postgres",
        ]);
        assert!(remote.is_err());
        assert!(parse(&["--store", "mysql"]).is_err());
    }

    #[test]
    fn scenario_options() {
        let a = parse(&[
            "--scenario",
            "flood",
            "--http",
            "2",
            "--streams",
            "8",
            "-c",
            "4",
            "--rate",
            "2500",
            "--duration",
            "3s",
            "--max-requests",
            "100",
            "--out",
            "x/f.json",
        ])
        .unwrap();
        assert_eq!(a.scenario, Scenario::Flood);
        assert_eq!(a.http, HttpVersion::H2);
        assert_eq!((a.main_connections(), a.streams), (4, 8));
        assert_eq!(a.rate, Some(2500.0));
        assert_eq!(a.max_requests, 100);
        assert_eq!(a.side_connections(), 8);
        assert_eq!(a.baseline(), Duration::from_millis(900));
        assert_eq!(a.svg_path(), PathBuf::from("x/f.svg"));
    }

    #[test]
    fn refusals() {
        for bad in [
            &["--http", "3"][..],
            &["--rate", "0"],
            &["--rate", "-5"],
            &["--duration", "ten"],
            &["--streams", "4"],
            &["-c", "0"],
            &["--token", "x"],
            &[
                "--target",
                "https://127.0.0.1:1",
                "--insecure",
                "--ca",
                "ca.pem",
            ],
            &["--path", "api"],
            &["--scenario", "nope"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn target_options() {
        let a = parse(&[
            "--target",
            "https://localhost:8443",
            "--username",
            "u",
            "--password",
            "p",
            "--client-id",
            "c",
            "--insecure",
            "--scenario",
            "token",
        ])
        .unwrap();
        assert_eq!(a.target.as_deref(), Some("https://localhost:8443"));
        assert_eq!(a.main_connections(), 8);
        assert!(a.insecure);
    }
}
