//! What Rules and Actions cost a login: one trivial action through the script
//! pool, beside one argon2 password check (the production cost, 19 MiB, 2
//! passes) measured in the same run; and the memory each worker's runtime
//! holds.
//!
//!     cargo bench --bench scripts
//!
//! Besides criterion's estimates it prints p50/p99 of 2,000 chains and 50
//! password checks, and the runtime memory per worker.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use passgate::config::{ExtensibilityConfig, ScriptConfig};
use passgate::extensibility::{LoginFacts, Protocol, RequestFacts, Scripts};
use passgate::identity::password::{HashParams, Hasher};
use serde_json::json;

fn scripts(workers: usize) -> Scripts {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/actions/trivial.js");
    let config = ExtensibilityConfig {
        workers,
        actions: vec![ScriptConfig {
            name: "trivial".into(),
            script,
            key: "actions[0]".into(),
            values: Default::default(),
        }],
        ..ExtensibilityConfig::default()
    };
    Scripts::start(&config).expect("compile").expect("scripts")
}

fn facts() -> LoginFacts {
    LoginFacts {
        user: json!({"user_id": "auth0|bench", "email": "b@example.com", "app_metadata": {"roles": ["a"]}, "user_metadata": {}}),
        client: json!({"client_id": "bench", "name": "Bench", "metadata": {}}),
        connection: json!({"name": "Username-Password-Authentication", "strategy": "auth0"}),
        request: RequestFacts::default(),
        protocol: Protocol::Password,
        requested_scopes: vec![],
        scopes: vec!["openid".into(), "read:items".into()],
        audience: "https://api.example.com".into(),
        logins_count: 1,
        methods: vec![json!({"name": "pwd"})],
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(rt: &tokio::runtime::Runtime) {
    let s = scripts(2);
    let f = facts();
    let api = vec!["read:items".to_string()];
    let mut chain = Vec::new();
    for _ in 0..2_000 {
        let t = Instant::now();
        rt.block_on(s.run(&f, &api)).expect("run");
        chain.push(t.elapsed());
    }
    let hasher = Hasher::new(HashParams::default(), 1).expect("hasher");
    let hash = hasher.hash_blocking("correct horse battery").expect("hash");
    let mut argon = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert!(
            hasher
                .verify_blocking(Some(&hash), "correct horse battery")
                .ok
        );
        argon.push(t.elapsed());
    }
    let memory: Vec<u64> = s
        .stats()
        .memory
        .iter()
        .map(|m| m.load(Ordering::Relaxed))
        .collect();
    println!(
        "scripts: one trivial action through the pool: p50 {:?}, p99 {:?} (2000 chains)",
        percentile(chain.clone(), 0.5),
        percentile(chain, 0.99)
    );
    println!(
        "scripts: argon2id password check (19 MiB, 2 passes): p50 {:?}, p99 {:?} (50 checks)",
        percentile(argon.clone(), 0.5),
        percentile(argon, 0.99)
    );
    println!(
        "scripts: runtime memory per worker after the runs: {} KiB",
        memory
            .iter()
            .map(|b| (b / 1024).to_string())
            .collect::<Vec<_>>()
            .join(" KiB, ")
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    report(&rt);
    let s = scripts(1);
    let f = facts();
    let api = vec!["read:items".to_string()];
    c.bench_function("scripts/trivial_action_chain", |b| {
        b.iter(|| rt.block_on(s.run(&f, &api)).expect("run"))
    });
    let hasher = Hasher::new(HashParams::default(), 1).expect("hasher");
    let hash = hasher.hash_blocking("correct horse battery").expect("hash");
    c.bench_function("scripts/argon2_verify_beside", |b| {
        b.iter(|| hasher.verify_blocking(Some(&hash), "correct horse battery"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
