//! criterion benches of the functions on the request path: token verification
//! (cold, per algorithm) against a verified-token cache hit, route matching,
//! path normalisation, header rewriting, token issuance without the password
//! hash, and token-request parsing.
//!
//!     cargo bench --bench hot_paths
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, Header};
use passgate::clock::{self, SharedClock};
use passgate::config::{Config, GateConfig};
use passgate::gate::issuers::{IssuerKeys, Issuers};
use passgate::gate::keys::{KeySet, VerifyKey};
use passgate::gate::{Gate, NoRevocations};
use passgate::router::Router;
use passgate::tokens::keys::{KeyRing, generate_into};

const ISS: &str = "https://bench.example/";

fn gate_config() -> GateConfig {
    GateConfig {
        realm: "bench".into(),
        leeway: Duration::from_secs(30),
        cache_entries: 100_000,
        cache_bytes: 64 << 20,
        jwks_refresh: Duration::from_secs(3600),
        jwks_min_refresh: Duration::from_secs(30),
        jwks_fetch_timeout: Duration::from_secs(5),
    }
}

struct Fixture {
    gate: Gate,
    tokens: Vec<(Algorithm, String)>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    passgate::tls::install_crypto_providers();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut verify = Vec::new();
    let mut tokens = Vec::new();
    let now = clock::Clock::now(&clock::SystemClock);
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let key = generate_into(&dir.path().join(format!("{alg:?}")), alg).expect("key");
        let mut header = Header::new(alg);
        header.kid = Some(key.kid.clone());
        let claims = serde_json::json!({
            "iss": ISS, "sub": "auth0|bench", "aud": "https://api.example.com",
            "iat": now, "exp": now + 86_400, "scope": "read:items write:items", "azp": "bench"
        });
        tokens.push((
            alg,
            jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign"),
        ));
        verify.push(VerifyKey::new(
            Some(key.kid.clone()),
            alg,
            key.decoding.clone(),
        ));
    }
    let mut issuers = Issuers::default();
    issuers.insert(IssuerKeys::fixed(ISS.into(), KeySet::new(verify)));
    let clock: SharedClock = clock::system();
    let gate = Gate::new(&gate_config(), issuers, clock, Arc::new(NoRevocations));
    Fixture {
        gate,
        tokens,
        _dir: dir,
    }
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = fixture();
    let mut group = c.benchmark_group("verify");
    for (alg, token) in &f.tokens {
        group.bench_function(format!("cold/{alg:?}"), |b| {
            b.to_async(&rt).iter(|| async {
                f.gate.cache().sweep(i64::MAX);
                black_box(f.gate.verified(token).await.is_ok())
            })
        });
    }
    let (_, token) = &f.tokens[0];
    rt.block_on(async { f.gate.verified(token).await.is_ok() });
    group.bench_function("cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(f.gate.verified(token).await.is_ok()) })
    });
    // The proxy's check of a protected route: the token read from the
    // request's header, looked up, its audience and scopes checked.
    let config = Config::from_toml(
        "[[trusted_issuers]]\nissuer = \"https://bench.example/\"\njwks_url = \"https://bench.example/jwks.json\"\n\
         [[routes]]\nprefix = \"/items\"\nupstream = \"http://127.0.0.1:1\"\n\
         audience = \"https://api.example.com\"\nscopes = [\"read:items\"]\n",
    )
    .expect("config");
    let route = &config.routes[0];
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("value"),
    );
    let checked = rt.block_on(f.gate.check(route, &http::Method::GET, &headers));
    assert!(matches!(checked, Ok(Some(_))), "{checked:?}");
    group.bench_function("check_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let checked = f.gate.check(route, &http::Method::GET, &headers).await;
            black_box(matches!(checked, Ok(Some(_))))
        })
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let mut toml = String::new();
    for i in 0..50 {
        toml.push_str(&format!(
            "[[routes]]\nprefix = \"/svc{i}/v1/\"\nupstream = \"http://127.0.0.1:{}\"\npublic = true\n",
            9000 + i
        ));
    }
    toml.push_str("[[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\npublic = true\n");
    let config = Config::from_toml(&toml).expect("config");
    let router = Router::new(&config.routes, &config.upstream);
    c.bench_function("route/51_routes", |b| {
        b.iter(|| black_box(router.route(black_box("/svc42/v1/items/17")).is_some()))
    });
    c.bench_function("path/normal", |b| {
        b.iter(|| black_box(passgate::http::path::normalize(black_box("/api/items/17")).is_ok()))
    });
    c.bench_function("path/dot_segments", |b| {
        b.iter(|| {
            black_box(
                passgate::http::path::normalize(black_box("/public/%2e%2e//api/./items/17"))
                    .is_ok(),
            )
        })
    });
}

fn headers(c: &mut Criterion) {
    let mut base = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("authorization", "Bearer abc.def.ghi"),
        ("x-forwarded-for", "203.0.113.7"),
    ] {
        base.insert(k, HeaderValue::from_static(v));
    }
    let host = HeaderValue::from_static("api.example.com");
    // Once per connection, as the server does.
    let peer = passgate::http::headers::PeerHeaders::new("192.0.2.1".parse().expect("ip"));
    c.bench_function("headers/rewrite", |b| {
        b.iter(|| {
            let mut h = base.clone();
            passgate::http::headers::strip_hop_by_hop(&mut h, false);
            let mut written = passgate::http::written::Written::new();
            passgate::http::headers::add_forwarded(&h, &peer, Some(&host), &mut written);
            black_box((h.len(), written.len()))
        })
    });
}

fn issuance(c: &mut Criterion) {
    passgate::tls::install_crypto_providers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let user = passgate::store::User {
        user_id: "auth0|bench".into(),
        realm: "db".into(),
        username: Some("bench".into()),
        email: Some("bench@example.com".into()),
        email_verified: true,
        name: None,
        password_hash: None,
        blocked: false,
        app_metadata: serde_json::json!({}),
        user_metadata: serde_json::json!({}),
        created_at: 0,
        updated_at: 0,
        last_login: None,
        logins_count: 0,
    };
    let scopes = vec!["openid".to_string(), "read:items".to_string()];
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let ring = passgate::tokens::ring::LiveRing::new(
            KeyRing::load_or_generate(&dir.path().join(format!("{alg:?}")), alg).expect("keys"),
        );
        let pool = passgate::tokens::pool::SignPool::for_machine().expect("pool");
        let issuer =
            passgate::tokens::issue::TokenIssuer::new(ISS.into(), ring, clock::system(), pool);
        c.bench_function(&format!("issue/access+id/{alg:?}"), |b| {
            b.to_async(&rt).iter(|| async {
                let issued = issuer
                    .issue(passgate::tokens::issue::Grant {
                        user: &user,
                        client_id: "bench",
                        audience: "https://api.example.com",
                        lifetime: Duration::from_secs(3600),
                        scopes: &scopes,
                        gty: "password",
                        sid: "s",
                        access_claims: Default::default(),
                        id_claims: Default::default(),
                    })
                    .await
                    .expect("issue");
                black_box(issued.access_token.len())
            })
        });
    }
}

/// The per-request session check: a cache hit with no session store, against
/// one with 10,000 revoked sessions held in memory (issue: the proxy checks
/// `sid` on every request without a database read).
fn sessions(c: &mut Criterion) {
    use passgate::sessions::{NewSession, Sessions};
    use passgate::store::SqliteStore;
    use passgate::store::sessions::SessionStore;

    passgate::tls::install_crypto_providers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
    let clock: SharedClock = clock::system();
    let sessions = Arc::new(
        rt.block_on(Sessions::load(
            store.clone(),
            ISS.into(),
            Arc::clone(&clock),
        ))
        .expect("sessions"),
    );
    let client: passgate::config::ClientConfig = {
        let config = Config::from_toml(
            "[[clients]]\nid = \"bench\"\nsecret = \"s\"\ngrant_types = [\"password\", \"refresh_token\"]\n",
        )
        .expect("config");
        config.clients[0].clone()
    };
    let now = clock::Clock::now(&clock::SystemClock);
    rt.block_on(async {
        for i in 0..10_000 {
            let sid = format!("revoked-{i}");
            sessions
                .persist(NewSession {
                    sid: sid.clone(),
                    user_id: "auth0|u".into(),
                    client: client.clone(),
                    realm: "db".into(),
                    audience: "https://api.example.com".into(),
                    scopes: vec![],
                    access_expires_at: now + 3600,
                    with_refresh: false,
                    amr: vec!["pwd".into()],
                })
                .await
                .expect("persist");
            store.revoke_session(&sid, now).await.expect("revoke");
        }
        sessions.follow_log().await.expect("log");
    });

    // A token with a live sid, verified once so every iteration is a cache hit.
    let f = fixture();
    let key_dir = tempfile::tempdir().expect("tempdir");
    let key = generate_into(key_dir.path(), Algorithm::ES256).expect("key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let claims = serde_json::json!({"iss": ISS, "sub": "auth0|u", "aud": "https://api.example.com",
        "iat": now, "exp": now + 3600, "scope": "read:items", "sid": "live-session"});
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign");
    let make_gate = |revocations: Arc<dyn passgate::gate::Revocations>| {
        let mut issuers = Issuers::default();
        issuers.insert(IssuerKeys::fixed(
            ISS.into(),
            KeySet::new([VerifyKey::new(
                Some(key.kid.clone()),
                Algorithm::ES256,
                key.decoding.clone(),
            )]),
        ));
        Gate::new(&gate_config(), issuers, clock::system(), revocations)
    };
    drop(f);
    let without = make_gate(Arc::new(NoRevocations));
    let with = make_gate(sessions.clone());
    rt.block_on(async {
        assert!(without.verified(&token).await.is_ok());
        assert!(with.verified(&token).await.is_ok());
    });
    let mut group = c.benchmark_group("session_check");
    group.bench_function("cache_hit/no_sessions", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(without.verified(&token).await.is_ok()) })
    });
    group.bench_function("cache_hit/10k_revoked_sessions", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with.verified(&token).await.is_ok()) })
    });
    group.finish();

    // One refresh exchange with rotation: a read, a retire-and-insert transaction, fsync.
    let mut refresh = rt
        .block_on(sessions.persist(NewSession {
            sid: "refresh-chain".into(),
            user_id: "auth0|u".into(),
            client: client.clone(),
            realm: "db".into(),
            audience: "https://api.example.com".into(),
            scopes: vec!["offline_access".into()],
            access_expires_at: now + 3600,
            with_refresh: true,
            amr: vec!["pwd".into()],
        }))
        .expect("persist")
        .expect("a refresh token");
    c.bench_function("refresh/exchange_with_rotation", |b| {
        b.iter(|| {
            let x = rt
                .block_on(sessions.exchange(&client, &refresh, now + 3600))
                .expect("exchange");
            refresh = x.refresh_token.expect("rotated");
        })
    });
}

/// What metrics add to one proxied request: the route's handles record the
/// request (counter + histogram) and the upstream time; plus a new trace.
fn metrics(c: &mut Criterion) {
    use passgate::telemetry::metrics::{MethodClass, Metrics};
    let m = Metrics::new(true);
    let route = m.route("/api/").expect("enabled");
    let took = Duration::from_micros(850);
    c.bench_function("metrics/record_request", |b| {
        b.iter(|| {
            route.upstream_time(std::hint::black_box(took));
            route.request(
                MethodClass::Read,
                http::StatusCode::OK,
                std::hint::black_box(took),
            );
        })
    });
    c.bench_function("trace/start", |b| {
        b.iter(passgate::http::trace::TraceContext::start)
    });
    c.bench_function("request_id/new", |b| {
        b.iter(passgate::http::headers::new_request_id)
    });
    // As a proxied request uses it: the id goes upstream and on the
    // response, and each copy is dropped.
    c.bench_function("request_id/new_and_two_clones", |b| {
        b.iter(|| {
            let id = passgate::http::headers::new_request_id();
            let upstream = id.clone();
            let response = id.clone();
            (id, upstream, response)
        })
    });
}

/// One proxied request's access-log line, formatted into a reused buffer (as
/// each thread does before adding it to the writer's batch).
fn access_log(c: &mut Criterion) {
    use passgate::config::LogFormat;
    use passgate::http::forwarded::PeerHeaders;
    use passgate::http::trace::TraceContext;
    use passgate::telemetry::AccessLine;

    let (method, trace) = (http::Method::GET, TraceContext::start());
    let client = PeerHeaders::new(std::net::Ipv4Addr::new(192, 0, 2, 17).into());
    let line = AccessLine {
        request_id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        method: &method,
        path: "/plain/items",
        route: "/plain/",
        status: 200,
        upstream: "http://127.0.0.1:18080",
        fault: None,
        trace_id: trace.trace_id(),
        duration: Duration::from_micros(523),
        client: &client,
    };
    let mut buffer = Vec::new();
    for (name, format) in [("text", LogFormat::Text), ("json", LogFormat::Json)] {
        c.bench_function(&format!("access_log/format_{name}"), |b| {
            b.iter(|| {
                buffer.clear();
                black_box(&line).write(format, &mut buffer);
                buffer.len()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = verification, routing, headers, issuance, sessions, metrics, access_log
}
criterion_main!(benches);
