//! The end-to-end load generator behind `cargo bench --bench load`.
//!
//! [`run`] sets up the world (an in-process upstream + passgate, or a
//! `--target`), logs in, drives a scenario for a bounded time, and writes the
//! JSON results and the SVG plot. Included both from `benches/load.rs` and
//! from `tests/load_bench.rs`, so `cargo test` runs the unit tests of every
//! module here.
#![allow(dead_code)]

pub mod args;
pub mod client;
pub mod login;
pub mod report;
pub mod scenarios;
pub mod schedule;
pub mod stats;
pub mod svg;
pub mod target;
pub mod world;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http::Method;
use http_body_util::Full;

use args::{Args, HttpVersion, Scenario, StoreKind};
use client::{Endpoint, Lane, SharedH2, Trust};
use login::Reply;
use report::Report;
use scenarios::Setup;

/// Where the results were written.
#[derive(Debug)]
pub struct Written {
    /// The figures.
    pub report: Report,
    /// The JSON file.
    pub json: std::path::PathBuf,
    /// The SVG plot.
    pub svg: std::path::PathBuf,
    /// With `--reload-every`: reloads taken and refused during the run.
    pub reloads: Option<(u64, u64)>,
}

/// Run the bench `args` describes and write its results.
pub async fn run(args: &Args) -> anyhow::Result<Written> {
    // Keeps the in-process world alive until the run is over.
    let mut world = None;
    let (setup, target, trust) = match &args.target {
        None => {
            let w = world::World::start(
                args.users,
                !args.metrics_off,
                &args.actions,
                args.reload_every,
                args.store,
            )
            .await
            .context("starting the in-process gateway")?;
            let trust = Trust::Pem(w.cert_pem.clone());
            let ep = Endpoint::new(w.addr, "localhost", w.addr.port(), args.http, &trust)?;
            let setup = Setup {
                ep: Arc::new(ep),
                client: login::Client {
                    id: world::CLIENT_ID.into(),
                    secret: Some(world::CLIENT_SECRET.into()),
                    audience: None,
                },
                users: w.users.clone(),
                token: None,
                spread_ips: true,
                path: args.path.clone(),
                flood_ips: args.flood_ips,
                timeout: args.timeout,
            };
            world = Some(w);
            let target = match args.store {
                StoreKind::Sqlite => "in-process".to_string(),
                other => format!("in-process ({})", other.name()),
            };
            (setup, target, trust)
        }
        Some(_) if args.reload_every.is_some() => {
            bail!("--reload-every reloads the in-process gateway; it cannot reload a --target")
        }
        Some(url) => {
            let t = target::parse(url)?;
            let addrs = target::resolve_own(&t).await?;
            let trust = match (&args.ca, args.insecure) {
                (Some(ca), _) => Trust::from_file(ca)?,
                (None, true) => Trust::Any,
                (None, false) => {
                    bail!("--target needs --ca FILE (the CA of its certificate) or --insecure")
                }
            };
            let ep = Endpoint::new(addrs[0], &t.host, t.port, args.http, &trust)?;
            let users = match (&args.username, &args.password) {
                (Some(u), Some(p)) => vec![(u.clone(), p.clone())],
                _ => Vec::new(),
            };
            let setup = Setup {
                ep: Arc::new(ep),
                client: login::Client {
                    id: args.client_id.clone().unwrap_or_default(),
                    secret: args.client_secret.clone(),
                    audience: args.audience.clone(),
                },
                users,
                token: args.token.clone(),
                spread_ips: false,
                path: args.path.clone(),
                flood_ips: args.flood_ips,
                timeout: args.timeout,
            };
            (setup, url.clone(), trust)
        }
    };
    let mut setup = setup;
    check_setup(args, &setup)?;
    let needs_token = matches!(
        args.scenario,
        Scenario::Proxy | Scenario::Mixed | Scenario::Flood
    );
    if needs_token && setup.token.is_none() {
        setup.token = Some(first_token(&setup, &trust).await?);
    }
    let argon2_limit = if world.is_some() && args.scenario == Scenario::Token {
        let d = args.duration.min(Duration::from_secs(2));
        Some(tokio::task::spawn_blocking(move || world::argon2_limit(d)).await??)
    } else {
        None
    };
    let run = scenarios::drive(Arc::new(setup), args).await;
    let reloads = world
        .as_ref()
        .filter(|_| args.reload_every.is_some())
        .map(|w| {
            use std::sync::atomic::Ordering::Relaxed;
            let counts = (
                w.reloads.taken.load(Relaxed),
                w.reloads.refused.load(Relaxed),
            );
            eprintln!(
                "reloads during the run: {} taken, {} refused, the longest took {} ms",
                counts.0,
                counts.1,
                w.reloads.max_us.load(Relaxed) / 1000
            );
            counts
        });
    drop(world);
    let report = Report::new(args, target, &run, argon2_limit);
    let json = args.out_path();
    let svg = args.svg_path();
    report
        .write_json(&json)
        .with_context(|| format!("writing {}", json.display()))?;
    if let Some(dir) = svg.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&svg, svg::render(&report))
        .with_context(|| format!("writing {}", svg.display()))?;
    Ok(Written {
        report,
        json,
        svg,
        reloads,
    })
}

/// What a target run needs before it starts.
fn check_setup(args: &Args, setup: &Setup) -> anyhow::Result<()> {
    let logs_in = !matches!(args.scenario, Scenario::Proxy) || setup.token.is_none();
    if logs_in && (setup.users.is_empty() || setup.client.id.is_empty()) {
        bail!(
            "scenario {} against --target needs --username, --password and --client-id{}",
            args.scenario.name(),
            if args.scenario == Scenario::Proxy {
                " (or --token)"
            } else {
                ""
            }
        );
    }
    if args.scenario == Scenario::Flood && setup.client.secret.is_none() {
        bail!(
            "flood needs --client-secret: auth0-forwarded-for is only honoured from a trusted client with a secret"
        );
    }
    Ok(())
}

/// Log in once (over HTTP/1.1) for the bearer token of proxied requests.
async fn first_token(setup: &Setup, trust: &Trust) -> anyhow::Result<String> {
    let ep = Arc::new(setup.ep.with_http(HttpVersion::H1, trust)?);
    let mut lane = Lane::new(Arc::clone(&ep), Arc::new(SharedH2::default()));
    let (user, password) = setup.users.first().context("no user to log in as")?;
    let form = login::password_form(&setup.client, user, password, None);
    let mut req = ep.request(Method::POST, "/oauth/token").header(
        http::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded",
    );
    if setup.spread_ips {
        req = req.header("auth0-forwarded-for", login::worker_ip(65_535));
    }
    let req = req.body(Full::new(bytes::Bytes::from(form)))?;
    let answer = tokio::time::timeout(setup.timeout, lane.send(req))
        .await
        .map_err(|_| anyhow::anyhow!("the login for a bearer token timed out"))?
        .map_err(|f| anyhow::anyhow!("the login for a bearer token failed: {}", f.kind()))?;
    match login::parse_reply(answer.status, &answer.body) {
        Reply::Tokens { access, .. } => Ok(access),
        Reply::Error { status, code } => {
            bail!("the login for a bearer token was refused: {status} {code}")
        }
    }
}
