//! The config file: the shipped configs parse, every bad config is reported
//! with its key path, all problems at once, and `passgate check-config`
//! answers with the contract's exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use passgate::config::{Config, HostHeader, KeySource, RoutePolicy, UpstreamProtocol};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every problem reported for `text`, with no environment variables set.
fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_with_env(text, &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

// ---------------------------------------------------------------- (a) shipped configs

#[test]
fn example_config_parses() {
    let config = Config::load(&repo("config/example.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.len(), 4);
    assert_eq!(config.trusted_issuers.len(), 4);
    let reports = &config.routes[1];
    assert_eq!(reports.upstreams.len(), 2);
    assert_eq!(reports.host_header, HostHeader::Client);
    assert!(reports.strip_prefix);
    assert!(!reports.forward_authorization);
    assert_eq!(config.routes[0].max_body, Some(10 << 20));
    let grpc = &config.routes[2];
    assert!(grpc.upstreams[0].h2c, "h2c:// upstream");
    assert_eq!(grpc.upstream_protocol, UpstreamProtocol::Auto);
    assert!(matches!(config.routes[3].policy, RoutePolicy::Public));
    assert_eq!(config.gate.cache_bytes, 64 << 20);
    assert!(matches!(
        config.trusted_issuers[3].source,
        KeySource::Discovery(_)
    ));
    assert!(config.clients[1].secret.is_none(), "mobile-app is public");
}

#[test]
fn default_config_parses() {
    let config = Config::load(&repo("config/passgate.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8443");
    assert!(config.issuer.is_some());
}

/// The example documents every key `raw.rs` accepts: each field of each raw
/// struct appears as `key = ...` (possibly commented out, for alternatives) or
/// as a table header.
#[test]
fn example_config_mentions_every_key() {
    let raw = std::fs::read_to_string(repo("src/config/raw.rs")).unwrap();
    let example = std::fs::read_to_string(repo("config/example.toml")).unwrap();
    let lines: Vec<&str> = example
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .collect();
    let mut keys = Vec::new();
    for line in raw.lines().map(str::trim) {
        let Some(field) = line.strip_prefix("pub ") else {
            continue;
        };
        if field.starts_with("struct ") || field.starts_with("fn ") {
            continue;
        }
        if let Some((name, _)) = field.split_once(':') {
            keys.push(name.trim().to_string());
        }
    }
    assert!(keys.len() > 60, "found only {} keys in raw.rs", keys.len());
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            !lines.iter().any(|l| {
                l.starts_with(&format!("{k} ="))
                    || l.starts_with(&format!("[{k}]"))
                    || l.starts_with(&format!("[[{k}]]"))
                    || l.starts_with(&format!("[routes.{k}]"))
                    || l.starts_with(&format!("[mfa.{k}]"))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys not in config/example.toml: {missing:?}"
    );
}

// ---------------------------------------------------------------- (b) one problem each

const PUBLIC_ROUTE: &str =
    "[[routes]]\nprefix = \"/p/\"\nupstream = \"http://127.0.0.1:8081\"\npublic = true\n";

#[test]
fn each_bad_config_names_its_key_and_what_to_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "upstream URL without http(s) or h2c",
            "[[routes]]\nprefix = \"/p/\"\nupstream = \"ftp://files.example\"\npublic = true\n",
            "routes[0].upstream: \"ftp://files.example\" must start with http://, https:// or h2c://",
        ),
        (
            "upstream URL with a query",
            "[[routes]]\nprefix = \"/p/\"\nupstreams = [\"http://a:1\", \"http://b:1/?x=1\"]\npublic = true\n",
            "routes[0].upstreams[1]: \"http://b:1/?x=1\": an upstream URL cannot have a query",
        ),
        (
            "route without upstream",
            "[[routes]]\nprefix = \"/p/\"\npublic = true\n",
            "routes[0].upstream: missing; where requests on this route go",
        ),
        (
            "key-set refresh shorter than its minimum",
            "[gate]\njwks_refresh = \"10s\"\njwks_min_refresh = \"30s\"\n",
            "gate.jwks_refresh: 10s is shorter than gate.jwks_min_refresh (30s), which would win; raise it or lower the minimum",
        ),
        (
            "listen is not an address",
            "[server]\nlisten = \"localhost\"\n",
            "server.listen: \"localhost\" is not an address like \"127.0.0.1:8443\"",
        ),
        (
            "admin listener on the TLS port",
            "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"0.0.0.0:8443\"\n",
            "server.admin_listen: 0.0.0.0:8443 overlaps server.listen (127.0.0.1:8443); give the admin listener its own port",
        ),
        (
            "two store backends",
            "[store]\npath = \"data/x.db\"\nurl = \"postgres://app:hunter2@db/passgate\"\n",
            "store.path: give either path (SQLite) or url/url_env (PostgreSQL), not both",
        ),
        (
            "unknown key",
            "[store]\npaht = \"data/x.db\"\n",
            "store.paht: unknown field `paht`, expected one of `path`, `url`, `url_env`, `pool_size`, `connect_timeout`, `statement_timeout`, `tls_ca`, `encryption_key_file`, `encryption_key_env` (line 2, column 1)",
        ),
        (
            "wrong type",
            "[server]\nlisten = 8443\n",
            "server.listen: invalid type: integer `8443`, expected a string (line 2, column 10)",
        ),
        (
            "wrong type deep inside an array of tables",
            "[[routes]]\nprefix = \"/a/\"\nupstream = \"http://a:1\"\npublic = true\n\n[[routes]]\nprefix = \"/b/\"\nupstream = \"http://a:1\"\naudience = \"x\"\n[routes.methods]\nPOST = \"write\"\n",
            "routes[1].methods.POST: invalid type: string \"write\", expected a sequence (line 11, column 8)",
        ),
        (
            "TOML syntax error",
            "[server\nlisten = \"127.0.0.1:1\"\n",
            "line 1, column 8: unclosed table, expected `]`",
        ),
        (
            "duration without a unit",
            "[server]\nidle_timeout = \"30\"\n",
            "server.idle_timeout: \"30\" has no unit; write e.g. \"30s\" for seconds",
        ),
        (
            "zero duration",
            "[upstream]\nconnect_timeout = \"0s\"\n",
            "upstream.connect_timeout: must be longer than zero",
        ),
        (
            "zero max_connections",
            "[server]\nmax_connections = 0\n",
            "server.max_connections: must be at least 1, found 0",
        ),
        (
            "bad CIDR in trusted_proxies",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
            "server.trusted_proxies[1]: \"10.0.0.0/33\" is not an address or CIDR like \"10.0.0.0/8\"",
        ),
        (
            "bad size",
            "[[routes]]\nprefix = \"/p/\"\nupstream = \"http://a:1\"\npublic = true\nmax_body = \"10 parsecs\"\n",
            "routes[0].max_body: \"10 parsecs\": unknown unit \"parsecs\"; use B, KB, MB, GB, KiB, MiB or GiB",
        ),
        (
            "unknown worker_cpu_affinity",
            "[server]\nworker_cpu_affinity = \"yes\"\n",
            "server.worker_cpu_affinity: \"yes\" is not one of \"off\", \"auto\"",
        ),
        (
            "unknown log format",
            "[log]\nformat = \"xml\"\n",
            "log.format: \"xml\" is not one of \"text\", \"json\"",
        ),
        (
            "public route with scopes",
            "[[routes]]\nprefix = \"/p/\"\nupstream = \"http://a:1\"\npublic = true\nscopes = [\"read\"]\n",
            "routes[0].public: a public route checks no token: remove audience, scopes and methods",
        ),
        (
            "protected route without audience",
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://a:1\"\n",
            "routes[0].audience: missing; name the API audience, or set public = true",
        ),
        (
            "method in lower case",
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://a:1\"\naudience = \"x\"\n[routes.methods]\npost = [\"write\"]\n",
            "routes[0].methods.post: \"post\" is not an HTTP method in capitals, like POST",
        ),
        (
            "unknown host_header",
            "[[routes]]\nprefix = \"/p/\"\nupstream = \"http://a:1\"\npublic = true\nhost_header = \"original\"\n",
            "routes[0].host_header: \"original\" is not one of \"upstream\", \"client\"",
        ),
        (
            "duplicate route prefix",
            &format!("{PUBLIC_ROUTE}{PUBLIC_ROUTE}"),
            "routes[1].prefix: \"/p/\" is already the prefix of routes[0]",
        ),
        (
            "route prefix not normalised",
            "[[routes]]\nprefix = \"/api//v1/\"\nupstream = \"http://a:1\"\npublic = true\n",
            "routes[0].prefix: \"/api//v1/\" is not in normal form; write \"/api/v1/\"",
        ),
        (
            "route prefix without leading slash",
            "[[routes]]\nprefix = \"api/\"\nupstream = \"http://a:1\"\npublic = true\n",
            "routes[0].prefix: \"api/\" must start with /",
        ),
        (
            "route prefix on passgate's own endpoints",
            "[[routes]]\nprefix = \"/oauth\"\nupstream = \"http://a:1\"\npublic = true\n",
            "routes[0].prefix: \"/oauth\" is served by passgate itself (/oauth/)",
        ),
        (
            "both upstream and upstreams",
            "[[routes]]\nprefix = \"/p/\"\nupstream = \"http://a:1\"\nupstreams = [\"http://b:1\"]\npublic = true\n",
            "routes[0].upstream: give either upstream or upstreams, not both",
        ),
        (
            "hop-by-hop claim header",
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://a:1\"\naudience = \"x\"\n[routes.claims_to_headers]\nConnection = \"sub\"\n",
            "routes[0].claims_to_headers.\"Connection\": cannot be set from a claim: connection is a hop-by-hop header",
        ),
        (
            "unknown grant type",
            "[[clients]]\nid = \"app\"\ngrant_types = [\"password\", \"client_credentials\"]\n",
            "clients[0].grant_types[1]: \"client_credentials\" is not a grant passgate knows; use one of \
             \"password\", \"http://auth0.com/oauth/grant-type/password-realm\", \"refresh_token\", \
             \"http://auth0.com/oauth/grant-type/mfa-otp\", \
             \"http://auth0.com/oauth/grant-type/mfa-recovery-code\", \
             \"http://auth0.com/oauth/grant-type/mfa-oob\"",
        ),
        (
            "client secret_env unset",
            "[[clients]]\nid = \"app\"\nsecret_env = \"APP_SECRET\"\n",
            "clients[0].secret_env: the environment variable APP_SECRET is not set (or is empty); \
             set it, or write the secret in `secret`",
        ),
        (
            "client with secret and secret_env",
            "[[clients]]\nid = \"app\"\nsecret = \"s\"\nsecret_env = \"APP_SECRET\"\n",
            "clients[0].secret: give either secret or secret_env, not both",
        ),
        (
            "public client trusting auth0-forwarded-for",
            "[[clients]]\nid = \"app\"\ntrust_forwarded_for = true\n",
            "clients[0].trust_forwarded_for: needs a client secret: a public client cannot be trusted",
        ),
        (
            "client realm that does not exist",
            "[[realms]]\nname = \"users\"\n[[clients]]\nid = \"app\"\nrealms = [\"staff\"]\n",
            "clients[0].realms[0]: \"staff\" is not the name of any [[realms]] entry",
        ),
        (
            "unknown mfa policy",
            "[[realms]]\nname = \"users\"\nmfa = \"always\"\n",
            "realms[0].mfa: \"always\" is not one of \"off\", \"optional\", \"required\"",
        ),
        (
            "trusted issuer with two key sources",
            "[[trusted_issuers]]\nissuer = \"https://t.example/\"\njwks_file = \"a.json\"\njwks_url = \"https://t.example/keys\"\n",
            "trusted_issuers[0]: give at most one key source: jwks_file, public_key_file or jwks_url \
             (none: keys are found by discovery)",
        ),
        (
            "http jwks_url to a non-loopback host",
            "[[trusted_issuers]]\nissuer = \"https://t.example/\"\njwks_url = \"http://t.example/keys\"\n",
            "trusted_issuers[0].jwks_url: \"http://t.example/keys\": keys are fetched over https; \
             plain http is accepted only for loopback hosts (localhost, 127.0.0.1, [::1])",
        ),
        (
            "http issuer discovery to a non-loopback host",
            "[[trusted_issuers]]\nissuer = \"http://t.example/\"\n",
            "trusted_issuers[0].issuer: \"http://t.example/.well-known/openid-configuration\": keys are \
             fetched over https; plain http is accepted only for loopback hosts (localhost, 127.0.0.1, [::1])",
        ),
        (
            "HS256 from a trusted issuer",
            "[[trusted_issuers]]\nissuer = \"https://t.example/\"\njwks_file = \"a.json\"\nalgorithms = [\"RS256\", \"HS256\"]\n",
            "trusted_issuers[0].algorithms[1]: \"HS256\" is a shared-secret algorithm; only public-key \
             algorithms are accepted",
        ),
        (
            "passgate's own issuer listed as trusted",
            "[issuer]\nurl = \"https://gw.example/\"\n[[trusted_issuers]]\nissuer = \"https://gw.example/\"\n",
            "trusted_issuers: \"https://gw.example/\" is passgate's own issuer; do not list it again",
        ),
        (
            "issuer.url without trailing slash",
            "[issuer]\nurl = \"https://gw.example\"\n",
            "issuer.url: \"https://gw.example\" must end with a slash (the iss claim is written with one); \
             write \"https://gw.example/\"",
        ),
        (
            "issuer without url",
            "[issuer]\nalgorithm = \"ES256\"\n",
            "issuer.url: missing; write the issuer URL, e.g. \"https://localhost:8443/\"",
        ),
        (
            "unknown signing algorithm",
            "[issuer]\nurl = \"https://gw.example/\"\nalgorithm = \"HS256\"\n",
            "issuer.algorithm: \"HS256\" is not one of \"RS256\", \"ES256\", \"EdDSA\"",
        ),
        (
            "default_audience not in apis",
            "[issuer]\nurl = \"https://gw.example/\"\ndefault_audience = \"https://api.example\"\n\
             [[apis]]\naudience = \"https://other.example\"\n",
            "issuer.default_audience: \"https://api.example\" is not the audience of any [[apis]] entry; \
             add one or fix the name",
        ),
        (
            "OpenID scope defined by an API",
            "[[apis]]\naudience = \"https://api.example\"\nscopes = [\"read\", \"offline_access\"]\n",
            "apis[0].scopes[1]: \"offline_access\" is an OpenID scope, never an API scope",
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in cases {
        let got = problems(text);
        if got != [expected.to_string()] {
            failures.push(format!(
                "{name}:\n  expected [{expected:?}]\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn secret_env_is_read_from_the_environment() {
    let text = "[[clients]]\nid = \"app\"\nsecret_env = \"APP_SECRET\"\n";
    let env = |name: &str| (name == "APP_SECRET").then(|| "s3cret".to_string());
    let config = Config::from_toml_with_env(text, &env).unwrap_or_else(|e| panic!("{e}"));
    let secret = config.clients[0].secret.as_ref().expect("a secret");
    assert_eq!(secret.expose(), "s3cret");
    assert!(!format!("{:?}", config.clients[0]).contains("s3cret"));
    // An empty variable counts as unset.
    let empty = |_: &str| Some(String::new());
    assert!(Config::from_toml_with_env(text, &empty).is_err());
}

#[test]
fn plain_http_key_urls_are_accepted_for_loopback_hosts() {
    for url in [
        "http://localhost:9000/keys",
        "http://127.0.0.1:9000/keys",
        "http://[::1]:9000/keys",
    ] {
        let text =
            format!("[[trusted_issuers]]\nissuer = \"https://t.example/\"\njwks_url = \"{url}\"\n");
        assert_eq!(problems(&text), Vec::<String>::new(), "{url}");
    }
}

#[test]
fn a_protected_route_takes_the_default_audience() {
    let text = "[issuer]\nurl = \"https://gw.example/\"\ndefault_audience = \"https://api.example\"\n\
                [[apis]]\naudience = \"https://api.example\"\n\
                [[routes]]\nprefix = \"/api/\"\nupstream = \"http://a:1\"\n";
    let config = Config::from_toml_with_env(text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    match &config.routes[0].policy {
        RoutePolicy::Protected { audience, .. } => assert_eq!(audience, "https://api.example"),
        RoutePolicy::Public => panic!("expected a protected route"),
    }
}

// ---------------------------------------------------------------- (c) all at once

const SEVERAL_PROBLEMS: &str = r#"
[server]
listen = "localhost:8443"
max_connections = 0
trusted_proxies = ["not-a-cidr"]

[gate]
leeway = "soon"

[issuer]
url = "https://gw.example"
default_audience = "https://missing.example"

[[clients]]
id = "app"
grant_types = ["implicit"]

[[routes]]
prefix = "/api/"
upstream = "http://a:1"
upstreams = ["http://b:1"]
public = true
scopes = ["read"]

[[trusted_issuers]]
issuer = "https://t.example/"
jwks_url = "http://t.example/keys"
algorithms = ["HS256"]
"#;

const SEVERAL_EXPECTED: &[&str] = &[
    "server.listen: ",
    "server.max_connections: ",
    "server.trusted_proxies[0]: ",
    "gate.leeway: ",
    "issuer.url: ",
    "issuer.default_audience: ",
    "clients[0].grant_types[0]: ",
    "routes[0].upstream: ",
    "routes[0].public: ",
    "trusted_issuers[0].jwks_url: ",
    "trusted_issuers[0].algorithms[0]: ",
];

#[test]
fn every_problem_is_reported_at_once() {
    let got = problems(SEVERAL_PROBLEMS);
    assert_eq!(got.len(), SEVERAL_EXPECTED.len(), "{got:#?}");
    for prefix in SEVERAL_EXPECTED {
        assert!(
            got.iter().any(|p| p.starts_with(prefix)),
            "no problem starting {prefix:?} in {got:#?}"
        );
    }
    let report = Config::from_toml_with_env(SEVERAL_PROBLEMS, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        report.starts_with("11 problems in the config:\n"),
        "{report}"
    );
}

// ---------------------------------------------------------------- (d) check-config

fn check_config(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_passgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PASSGATE_CONFIG")
        .output()
        .expect("run passgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_accepts_the_example() {
    let out = check_config(&["check-config", "--config", "config/example.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "config/example.toml: ok");
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, SEVERAL_PROBLEMS).unwrap();
    let out = check_config(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("11 problems in the config:"), "{stderr}");
    for prefix in SEVERAL_EXPECTED {
        assert!(
            stderr.lines().any(|l| l.trim_start().starts_with(prefix)),
            "{prefix:?} missing from:\n{stderr}"
        );
    }
}

#[test]
fn check_config_reports_toml_errors_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:8443\"\nlsiten = \"x\"\n",
    )
    .unwrap();
    let out = check_config(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("server.lsiten: unknown field `lsiten`"),
        "{stderr}"
    );
    assert!(stderr.contains("(line 3, column 1)"), "{stderr}");
}

#[test]
fn check_config_on_a_missing_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nowhere.toml");
    let out = check_config(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read the config file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_config_usage_errors_exit_2() {
    for args in [
        &["check-config", "--no-such-flag"][..],
        &["check-config", "--config"][..],
        &["no-such-command"][..],
    ] {
        let out = check_config(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Issue 10, finding 16: an unknown key used to hide every other problem,
/// because serde stopped at the first. Unknown keys, type errors and semantic
/// errors are now reported together.
#[test]
fn unknown_keys_type_errors_and_semantic_errors_are_reported_together() {
    let config_text = "bogus_key = 1\n\
                [server]\nmax_connections = \"lots\"\n\
                [[routes]]\nprefix = \"/p/\"\nupstream = \"not a url\"\npublic = true\nbogus_route_key = 2\n\
                [[routes]]\nprefix = 7\nupstream = \"http://127.0.0.1:1\"\npublic = true\n";
    let got = problems(config_text);
    let want = [
        "bogus_key: unknown field `bogus_key`",
        "server.max_connections: invalid type: string \"lots\"",
        "routes[0].bogus_route_key: unknown field `bogus_route_key`",
        "routes[1].prefix: invalid type: integer `7`, expected a string",
        "routes[0].upstream: \"not a url\"",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "{w:?} not in {got:#?}"
        );
    }
    // The removed `routes[1].prefix` is not reported a second time as missing.
    assert_eq!(got.len(), want.len(), "{got:#?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, config_text).unwrap();
    let out = check_config(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("5 problems in the config:"), "{stderr}");
    assert!(
        stderr.contains("bogus_key: unknown field `bogus_key`"),
        "{stderr}"
    );
    assert!(stderr.contains("routes[0].upstream: "), "{stderr}");
}
