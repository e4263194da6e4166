//! `RawConfig` → `Config`: every problem collected with its key path, then reported at once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

use super::raw::*;
use super::units::{parse_duration, parse_size};
use super::*;

/// The grants passgate knows, as written on the wire.
pub const KNOWN_GRANTS: &[&str] = &[
    "password",
    "http://auth0.com/oauth/grant-type/password-realm",
    "refresh_token",
    "http://auth0.com/oauth/grant-type/mfa-otp",
    "http://auth0.com/oauth/grant-type/mfa-recovery-code",
    "http://auth0.com/oauth/grant-type/mfa-oob",
];

/// Algorithms accepted from a trusted issuer when it lists none.
const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, path: impl AsRef<str>, msg: impl AsRef<str>) {
        self.0.push(format!("{}: {}", path.as_ref(), msg.as_ref()));
    }

    fn duration(&mut self, path: &str, value: &Option<String>, default: Duration) -> Duration {
        match value.as_deref().map(parse_duration) {
            None => default,
            Some(Ok(d)) if d.is_zero() => {
                self.add(path, "must be longer than zero");
                default
            }
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.add(path, e);
                default
            }
        }
    }

    fn positive(&mut self, path: &str, value: Option<i64>, default: u64) -> u64 {
        match value {
            None => default,
            Some(n) if n > 0 => n as u64,
            Some(n) => {
                self.add(path, format!("must be at least 1, found {n}"));
                default
            }
        }
    }
}

pub(super) fn validate(
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut p = Problems(Vec::new());
    let server = server(&mut p, raw.server);
    let log = log(&mut p, raw.log);
    let upstream = upstream(&mut p, raw.upstream);
    let gate = gate(&mut p, raw.gate);
    let issuer = raw.issuer.map(|i| issuer(&mut p, i));
    let store = StoreConfig {
        path: PathBuf::from(
            raw.store
                .and_then(|s| s.path)
                .unwrap_or_else(|| "data/passgate.db".into()),
        ),
    };
    let apis = apis(&mut p, raw.apis);
    let realms = realms(&mut p, raw.realms);
    let clients = clients(&mut p, raw.clients, &realms, env);
    let default_audience = issuer.as_ref().and_then(|i| i.default_audience.clone());
    let routes = routes(&mut p, raw.routes, default_audience.as_deref());
    let trusted_issuers = trusted_issuers(&mut p, raw.trusted_issuers);
    let attack_protection = super::attack::validate(raw.attack_protection, &mut p.0);
    let passwords = passwords(&mut p, raw.passwords);

    if let Some(issuer) = &issuer {
        if let Some(aud) = &issuer.default_audience
            && !apis.iter().any(|a| &a.audience == aud)
        {
            p.add(
                "issuer.default_audience",
                format!(
                    "\"{aud}\" is not the audience of any [[apis]] entry; add one or fix the name"
                ),
            );
        }
        if let Some(realm) = &issuer.default_realm
            && !realms.is_empty()
            && !realms.iter().any(|r| &r.name == realm)
        {
            p.add(
                "issuer.default_realm",
                format!("\"{realm}\" is not the name of any [[realms]] entry"),
            );
        }
        if trusted_issuers.iter().any(|t| t.issuer == issuer.url) {
            p.add(
                "trusted_issuers",
                format!(
                    "\"{}\" is passgate's own issuer; do not list it again",
                    issuer.url
                ),
            );
        }
    }

    if p.0.is_empty() {
        Ok(Config {
            server,
            log,
            upstream,
            gate,
            issuer,
            store,
            apis,
            clients,
            realms,
            routes,
            trusted_issuers,
            attack_protection,
            passwords,
        })
    } else {
        Err(ConfigErrors(p.0))
    }
}

fn passwords(p: &mut Problems, raw: RawPasswords) -> PasswordsConfig {
    let memory = match raw.memory.as_ref().map(parse_size) {
        None => 19 << 20,
        Some(Ok(n)) if (8 << 10..=4 << 30).contains(&n) => n,
        Some(Ok(n)) => {
            p.add(
                "passwords.memory",
                format!("{n} bytes is outside 8KiB..4GiB"),
            );
            19 << 20
        }
        Some(Err(e)) => {
            p.add("passwords.memory", e);
            19 << 20
        }
    };
    let small = |p: &mut Problems, key: &str, v: Option<i64>, default: u64| -> u32 {
        let n = p.positive(key, v, default);
        u32::try_from(n).unwrap_or_else(|_| {
            p.add(key, "is too large");
            default as u32
        })
    };
    let config = PasswordsConfig {
        memory_kib: (memory / 1024) as u32,
        iterations: small(p, "passwords.iterations", raw.iterations, 2),
        parallelism: small(p, "passwords.parallelism", raw.parallelism, 1),
        workers: p.positive("passwords.workers", raw.workers, default_workers() as u64) as usize,
    };
    if argon2::Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .is_err()
    {
        p.add("passwords", "these argon2 parameters are not valid together (memory must be at least 8 KiB per lane)");
    }
    config
}

fn socket_addr(p: &mut Problems, path: &str, text: &str) -> Option<SocketAddr> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                path,
                format!("\"{text}\" is not an address like \"127.0.0.1:8443\""),
            );
            None
        }
    }
}

fn server(p: &mut Problems, raw: RawServer) -> ServerConfig {
    let fallback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8443));
    let listen = match raw.listen {
        Some(text) => socket_addr(p, "server.listen", &text).unwrap_or(fallback),
        None => fallback,
    };
    let admin_listen = raw
        .admin_listen
        .and_then(|text| socket_addr(p, "server.admin_listen", &text));
    if let Some(admin) = admin_listen
        && admin.port() != 0
        && admin.port() == listen.port()
        && (admin.ip() == listen.ip()
            || admin.ip().is_unspecified()
            || listen.ip().is_unspecified())
    {
        p.add(
            "server.admin_listen",
            format!(
                "{admin} overlaps server.listen ({listen}); give the admin listener its own port"
            ),
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        match parse_cidr(cidr) {
            Ok(net) => trusted_proxies.push(net),
            Err(e) => p.add(format!("server.trusted_proxies[{i}]"), e),
        }
    }
    let max_concurrent_streams = p.positive(
        "server.max_concurrent_streams",
        raw.max_concurrent_streams,
        256,
    );
    ServerConfig {
        listen,
        tls_cert: raw
            .tls_cert
            .unwrap_or_else(|| "certs/localhost.pem".into())
            .into(),
        tls_key: raw
            .tls_key
            .unwrap_or_else(|| "certs/localhost-key.pem".into())
            .into(),
        dev_certificate: raw.dev_certificate.unwrap_or(false),
        admin_listen,
        trusted_proxies,
        max_connections: p.positive("server.max_connections", raw.max_connections, 16_384) as usize,
        tls_handshake_timeout: p.duration(
            "server.tls_handshake_timeout",
            &raw.tls_handshake_timeout,
            Duration::from_secs(10),
        ),
        header_read_timeout: p.duration(
            "server.header_read_timeout",
            &raw.header_read_timeout,
            Duration::from_secs(30),
        ),
        idle_timeout: p.duration(
            "server.idle_timeout",
            &raw.idle_timeout,
            Duration::from_secs(60),
        ),
        shutdown_timeout: p.duration(
            "server.shutdown_timeout",
            &raw.shutdown_timeout,
            Duration::from_secs(30),
        ),
        workers: p.positive("server.workers", raw.workers, default_workers() as u64) as usize,
        max_concurrent_streams: u32::try_from(max_concurrent_streams).unwrap_or(u32::MAX),
    }
}

/// One worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.7`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("\"{text}\" is not an address or CIDR like \"10.0.0.0/8\""))
}

fn log(p: &mut Problems, raw: RawLog) -> LogConfig {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.add(
                "log.format",
                format!("\"{other}\" is not one of \"text\", \"json\""),
            );
            LogFormat::Text
        }
    };
    let level = raw.level.unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        p.add("log.level", format!("\"{level}\" is not a log filter: {e}"));
    }
    LogConfig {
        level,
        format,
        access: raw.access.unwrap_or(true),
    }
}

fn upstream(p: &mut Problems, raw: RawUpstream) -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: p.duration(
            "upstream.connect_timeout",
            &raw.connect_timeout,
            Duration::from_secs(5),
        ),
        response_timeout: p.duration(
            "upstream.response_timeout",
            &raw.response_timeout,
            Duration::from_secs(30),
        ),
        pool_idle_timeout: p.duration(
            "upstream.pool_idle_timeout",
            &raw.pool_idle_timeout,
            Duration::from_secs(90),
        ),
        pool_max_idle_per_host: p.positive(
            "upstream.pool_max_idle_per_host",
            raw.pool_max_idle_per_host,
            512,
        ) as usize,
        ca_file: raw.ca_file.map(PathBuf::from),
        unhealthy_cooldown: p.duration(
            "upstream.unhealthy_cooldown",
            &raw.unhealthy_cooldown,
            Duration::from_secs(10),
        ),
    }
}

fn gate(p: &mut Problems, raw: RawGate) -> GateConfig {
    let leeway = match raw.leeway.as_deref().map(parse_duration) {
        None => Duration::from_secs(30),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.add("gate.leeway", e);
            Duration::from_secs(30)
        }
    };
    let cache_bytes = match raw.cache_bytes.as_ref().map(parse_size) {
        None => 64 << 20,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            p.add("gate.cache_bytes", e);
            64 << 20
        }
    };
    let realm = raw.realm.unwrap_or_else(|| "passgate".into());
    if realm.contains('"') || realm.contains('\\') || realm.chars().any(char::is_control) {
        p.add(
            "gate.realm",
            "must not contain quotes, backslashes or control characters",
        );
    }
    GateConfig {
        realm,
        leeway,
        cache_entries: p.positive("gate.cache_entries", raw.cache_entries, 100_000) as usize,
        cache_bytes,
        jwks_refresh: p.duration(
            "gate.jwks_refresh",
            &raw.jwks_refresh,
            Duration::from_secs(3600),
        ),
        jwks_min_refresh: p.duration(
            "gate.jwks_min_refresh",
            &raw.jwks_min_refresh,
            Duration::from_secs(30),
        ),
        jwks_fetch_timeout: p.duration(
            "gate.jwks_fetch_timeout",
            &raw.jwks_fetch_timeout,
            Duration::from_secs(5),
        ),
    }
}

fn issuer(p: &mut Problems, raw: RawIssuer) -> IssuerConfig {
    let url = match raw.url {
        Some(url) => {
            if !url.ends_with('/') {
                p.add(
                    "issuer.url",
                    format!(
                        "\"{url}\" must end with a slash (the iss claim is written with one); write \"{url}/\""
                    ),
                );
            }
            match url.parse::<Uri>() {
                Ok(u) if u.scheme_str() == Some("https") || u.scheme_str() == Some("http") => {}
                _ => p.add("issuer.url", format!("\"{url}\" is not an http(s) URL")),
            }
            url
        }
        None => {
            p.add(
                "issuer.url",
                "missing; write the issuer URL, e.g. \"https://localhost:8443/\"",
            );
            String::new()
        }
    };
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        Some(other) => {
            p.add(
                "issuer.algorithm",
                format!("\"{other}\" is not one of \"RS256\", \"ES256\", \"EdDSA\""),
            );
            Algorithm::RS256
        }
    };
    IssuerConfig {
        url,
        signing_keys: raw
            .signing_keys
            .unwrap_or_else(|| "certs/signing".into())
            .into(),
        algorithm,
        default_audience: raw.default_audience,
        default_realm: raw.default_realm,
    }
}

fn apis(p: &mut Problems, raw: Vec<RawApi>) -> Vec<ApiConfig> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, api) in raw.into_iter().enumerate() {
        let path = format!("apis[{i}]");
        let Some(audience) = api.audience.filter(|a| !a.is_empty()) else {
            p.add(
                format!("{path}.audience"),
                "missing; the API identifier tokens carry as `aud`",
            );
            continue;
        };
        if !seen.insert(audience.clone()) {
            p.add(
                format!("{path}.audience"),
                format!("\"{audience}\" is defined twice"),
            );
        }
        let scopes = api.scopes.unwrap_or_default();
        for (j, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                p.add(
                    format!("{path}.scopes[{j}]"),
                    format!("\"{s}\" is not a scope (no spaces, not empty)"),
                );
            } else if ["openid", "profile", "email", "offline_access"].contains(&s.as_str()) {
                p.add(
                    format!("{path}.scopes[{j}]"),
                    format!("\"{s}\" is an OpenID scope, never an API scope"),
                );
            }
        }
        out.push(ApiConfig {
            audience,
            scopes,
            token_lifetime: p.duration(
                &format!("{path}.token_lifetime"),
                &api.token_lifetime,
                Duration::from_secs(86_400),
            ),
            allow_offline_access: api.allow_offline_access.unwrap_or(false),
        });
    }
    out
}

fn realms(p: &mut Problems, raw: Vec<RawRealm>) -> Vec<RealmConfig> {
    let mut out: Vec<RealmConfig> = Vec::new();
    for (i, realm) in raw.into_iter().enumerate() {
        let Some(name) = realm.name.filter(|n| !n.is_empty()) else {
            p.add(format!("realms[{i}].name"), "missing");
            continue;
        };
        if out.iter().any(|r| r.name == name) {
            p.add(
                format!("realms[{i}].name"),
                format!("\"{name}\" is defined twice"),
            );
        }
        let mfa = match realm.mfa.as_deref() {
            None | Some("off") => MfaPolicy::Off,
            Some("optional") => MfaPolicy::Optional,
            Some("required") => MfaPolicy::Required,
            Some(other) => {
                p.add(
                    format!("realms[{i}].mfa"),
                    format!("\"{other}\" is not one of \"off\", \"optional\", \"required\""),
                );
                MfaPolicy::Off
            }
        };
        out.push(RealmConfig { name, mfa });
    }
    out
}

fn clients(
    p: &mut Problems,
    raw: Vec<RawClient>,
    realms: &[RealmConfig],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<ClientConfig> {
    let mut out: Vec<ClientConfig> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let path = format!("clients[{i}]");
        let Some(id) = c.id.filter(|id| !id.is_empty()) else {
            p.add(format!("{path}.id"), "missing");
            continue;
        };
        if out.iter().any(|o| o.id == id) {
            p.add(format!("{path}.id"), format!("\"{id}\" is defined twice"));
        }
        let secret = match (c.secret, c.secret_env) {
            (Some(_), Some(_)) => {
                p.add(
                    format!("{path}.secret"),
                    "give either secret or secret_env, not both",
                );
                None
            }
            (Some(s), None) if s.is_empty() => {
                p.add(
                    format!("{path}.secret"),
                    "is empty; remove it for a public client",
                );
                None
            }
            (Some(s), None) => Some(Secret::new(s)),
            (None, Some(var)) => match env(&var) {
                Some(s) if !s.is_empty() => Some(Secret::new(s)),
                _ => {
                    p.add(
                        format!("{path}.secret_env"),
                        format!(
                            "the environment variable {var} is not set (or is empty); \
                             set it, or write the secret in `secret`"
                        ),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let grant_types = c.grant_types.unwrap_or_else(|| {
            vec![
                "password".into(),
                "http://auth0.com/oauth/grant-type/password-realm".into(),
            ]
        });
        for (j, g) in grant_types.iter().enumerate() {
            if !KNOWN_GRANTS.contains(&g.as_str()) {
                p.add(
                    format!("{path}.grant_types[{j}]"),
                    format!(
                        "\"{g}\" is not a grant passgate knows; use one of {}",
                        KNOWN_GRANTS
                            .iter()
                            .map(|k| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        let client_realms = c
            .realms
            .unwrap_or_else(|| realms.iter().map(|r| r.name.clone()).collect());
        for (j, r) in client_realms.iter().enumerate() {
            if !realms.iter().any(|known| &known.name == r) {
                p.add(
                    format!("{path}.realms[{j}]"),
                    format!("\"{r}\" is not the name of any [[realms]] entry"),
                );
            }
        }
        let trust_forwarded_for = c.trust_forwarded_for.unwrap_or(false);
        if trust_forwarded_for && secret.is_none() {
            p.add(
                format!("{path}.trust_forwarded_for"),
                "needs a client secret: a public client cannot be trusted",
            );
        }
        let defaults = RefreshPolicy::default();
        let reuse_leeway = match c.refresh_token_reuse_leeway.as_deref().map(parse_duration) {
            None => defaults.reuse_leeway,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                p.add(format!("{path}.refresh_token_reuse_leeway"), e);
                defaults.reuse_leeway
            }
        };
        let refresh = RefreshPolicy {
            rotation: c.refresh_token_rotation.unwrap_or(defaults.rotation),
            reuse_leeway,
            absolute_lifetime: p.duration(
                &format!("{path}.refresh_token_absolute_lifetime"),
                &c.refresh_token_absolute_lifetime,
                defaults.absolute_lifetime,
            ),
            idle_lifetime: p.duration(
                &format!("{path}.refresh_token_idle_lifetime"),
                &c.refresh_token_idle_lifetime,
                defaults.idle_lifetime,
            ),
            max_families: p.positive(
                &format!("{path}.refresh_token_max_families"),
                c.refresh_token_max_families,
                defaults.max_families as u64,
            ) as usize,
        };
        out.push(ClientConfig {
            name: c.name.unwrap_or_else(|| id.clone()),
            id,
            secret,
            grant_types,
            realms: client_realms,
            trust_forwarded_for,
            refresh,
        });
    }
    out
}

/// Parse an upstream base URL: `http(s)://host:port[/base]`, no query or fragment.
pub fn parse_upstream(text: &str) -> Result<UpstreamTarget, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some("http") | Some("https") => uri.scheme().cloned(),
        _ => None,
    }
    .ok_or_else(|| format!("\"{text}\" must start with http:// or https://"))?;
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("\"{text}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "\"{text}\": credentials in an upstream URL are not supported"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("\"{text}\": an upstream URL cannot have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(UpstreamTarget {
        scheme,
        authority,
        base_path,
        url: text.to_string(),
    })
}

fn scope_list(p: &mut Problems, path: &str, scopes: Vec<String>) -> Vec<String> {
    for (j, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(char::is_whitespace) {
            p.add(
                format!("{path}[{j}]"),
                format!("\"{s}\" is not a scope (no spaces, not empty)"),
            );
        }
    }
    scopes
}

fn routes(
    p: &mut Problems,
    raw: Vec<RawRoute>,
    default_audience: Option<&str>,
) -> Vec<RouteConfig> {
    let mut out: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let prefix = match r.prefix {
            Some(prefix) if prefix.starts_with('/') => {
                let normal = crate::http::path::normalize(&prefix);
                match normal {
                    Ok(n) if n == prefix => prefix,
                    Ok(n) => {
                        p.add(
                            format!("{path}.prefix"),
                            format!("\"{prefix}\" is not in normal form; write \"{n}\""),
                        );
                        prefix
                    }
                    Err(e) => {
                        p.add(format!("{path}.prefix"), format!("\"{prefix}\": {e}"));
                        prefix
                    }
                }
            }
            Some(prefix) => {
                p.add(
                    format!("{path}.prefix"),
                    format!("\"{prefix}\" must start with /"),
                );
                prefix
            }
            None => {
                p.add(format!("{path}.prefix"), "missing");
                String::new()
            }
        };
        if let Some(earlier) = out.iter().position(|o| o.prefix == prefix) {
            p.add(
                format!("{path}.prefix"),
                format!("\"{prefix}\" is already the prefix of routes[{earlier}]"),
            );
        }
        for reserved in ["/oauth/", "/mfa/", "/userinfo", "/.well-known/"] {
            if prefix.starts_with(reserved) || prefix == reserved.trim_end_matches('/') {
                p.add(
                    format!("{path}.prefix"),
                    format!("\"{prefix}\" is served by passgate itself ({reserved})"),
                );
            }
        }

        let urls: Vec<(String, String)> = match (r.upstream, r.upstreams) {
            (Some(_), Some(_)) => {
                p.add(
                    format!("{path}.upstream"),
                    "give either upstream or upstreams, not both",
                );
                Vec::new()
            }
            (Some(u), None) => vec![(format!("{path}.upstream"), u)],
            (None, Some(list)) if list.is_empty() => {
                p.add(format!("{path}.upstreams"), "is empty");
                Vec::new()
            }
            (None, Some(list)) => list
                .into_iter()
                .enumerate()
                .map(|(j, u)| (format!("{path}.upstreams[{j}]"), u))
                .collect(),
            (None, None) => {
                p.add(
                    format!("{path}.upstream"),
                    "missing; where requests on this route go",
                );
                Vec::new()
            }
        };
        let mut upstreams = Vec::new();
        for (key, url) in urls {
            match parse_upstream(&url) {
                Ok(u) => upstreams.push(u),
                Err(e) => p.add(key, e),
            }
        }

        let public = r.public.unwrap_or(false);
        let policy = if public {
            if r.audience.is_some() || r.scopes.is_some() || r.methods.is_some() {
                p.add(
                    format!("{path}.public"),
                    "a public route checks no token: remove audience, scopes and methods",
                );
            }
            RoutePolicy::Public
        } else {
            let audience = r.audience.or_else(|| default_audience.map(str::to_string));
            let audience = match audience {
                Some(a) if !a.is_empty() => a,
                _ => {
                    p.add(
                        format!("{path}.audience"),
                        "missing; name the API audience, or set public = true",
                    );
                    String::new()
                }
            };
            let scopes = scope_list(p, &format!("{path}.scopes"), r.scopes.unwrap_or_default());
            let mut methods = HashMap::new();
            for (name, list) in r.methods.unwrap_or_default() {
                let key = format!("{path}.methods.{name}");
                match Method::from_str(&name) {
                    Ok(m) if name.chars().all(|c| c.is_ascii_uppercase()) => {
                        methods.insert(m, scope_list(p, &key, list));
                    }
                    _ => p.add(
                        key,
                        format!("\"{name}\" is not an HTTP method in capitals, like POST"),
                    ),
                }
            }
            RoutePolicy::Protected {
                audience,
                scopes,
                methods,
            }
        };

        let host_header = match r.host_header.as_deref() {
            None | Some("upstream") => HostHeader::Upstream,
            Some("client") => HostHeader::Client,
            Some(other) => {
                p.add(
                    format!("{path}.host_header"),
                    format!("\"{other}\" is not one of \"upstream\", \"client\""),
                );
                HostHeader::Upstream
            }
        };
        let max_body = match r.max_body.as_ref().map(parse_size) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                p.add(format!("{path}.max_body"), e);
                None
            }
        };
        let mut claims_to_headers = Vec::new();
        for (header, claim) in r.claims_to_headers.unwrap_or_default() {
            let key = format!("{path}.claims_to_headers.\"{header}\"");
            match HeaderName::from_str(&header) {
                Ok(name)
                    if crate::http::headers::is_hop_by_hop(&name) || name == http::header::HOST =>
                {
                    p.add(key, "cannot set a hop-by-hop or Host header")
                }
                Ok(name) if claim.is_empty() => p.add(key, format!("no claim named for {name}")),
                Ok(name) => claims_to_headers.push((name, claim)),
                Err(_) => p.add(key, format!("\"{header}\" is not a header name")),
            }
        }
        if public && !claims_to_headers.is_empty() {
            p.add(
                format!("{path}.claims_to_headers"),
                "a public route has no token to read claims from",
            );
        }
        out.push(RouteConfig {
            prefix,
            upstreams,
            policy,
            strip_prefix: r.strip_prefix.unwrap_or(false),
            max_body,
            host_header,
            forward_authorization: r.forward_authorization.unwrap_or(true),
            claims_to_headers,
        });
    }
    out
}

fn trusted_issuers(p: &mut Problems, raw: Vec<RawTrustedIssuer>) -> Vec<TrustedIssuerConfig> {
    let mut out: Vec<TrustedIssuerConfig> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let path = format!("trusted_issuers[{i}]");
        let Some(issuer) = t.issuer.filter(|s| !s.is_empty()) else {
            p.add(
                format!("{path}.issuer"),
                "missing; the exact iss value of its tokens",
            );
            continue;
        };
        if out.iter().any(|o| o.issuer == issuer) {
            p.add(
                format!("{path}.issuer"),
                format!("\"{issuer}\" is listed twice"),
            );
        }
        let given = [
            t.jwks_file.is_some(),
            t.public_key_file.is_some(),
            t.jwks_url.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let source = if given > 1 {
            p.add(
                &path,
                "give at most one key source: jwks_file, public_key_file or jwks_url \
                 (none: keys are found by discovery)",
            );
            None
        } else if let Some(f) = t.jwks_file {
            Some(KeySource::JwksFile(f.into()))
        } else if let Some(f) = t.public_key_file {
            Some(KeySource::PublicKeyFile(f.into()))
        } else if let Some(u) = t.jwks_url {
            fetch_url(p, &format!("{path}.jwks_url"), &u).map(KeySource::JwksUrl)
        } else {
            let base = issuer.trim_end_matches('/');
            fetch_url(
                p,
                &format!("{path}.issuer"),
                &format!("{base}/.well-known/openid-configuration"),
            )
            .map(KeySource::Discovery)
        };
        let algorithms = match t.algorithms {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(list) => {
                let mut algs = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    match Algorithm::from_str(a) {
                        Ok(alg) if DEFAULT_ALGORITHMS.contains(&alg) => algs.push(alg),
                        Ok(_) => p.add(format!("{path}.algorithms[{j}]"), format!("\"{a}\" is a shared-secret algorithm; only public-key algorithms are accepted")),
                        Err(_) => p.add(format!("{path}.algorithms[{j}]"), format!("\"{a}\" is not a JWS algorithm")),
                    }
                }
                if list.is_empty() {
                    p.add(format!("{path}.algorithms"), "is empty");
                }
                algs
            }
        };
        if let Some(source) = source {
            out.push(TrustedIssuerConfig {
                issuer,
                source,
                algorithms,
            });
        }
    }
    out
}

/// A URL keys are fetched from: https, or http on a loopback host only.
fn fetch_url(p: &mut Problems, path: &str, text: &str) -> Option<Uri> {
    let Ok(uri) = text.parse::<Uri>() else {
        p.add(path, format!("\"{text}\" is not a URL"));
        return None;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Some(uri),
        (Some("http"), Some(host)) if is_loopback_host(host) => Some(uri),
        (Some("http"), Some(_)) => {
            p.add(
                path,
                format!(
                    "\"{text}\": keys are fetched over https; plain http is accepted only \
                     for loopback hosts (localhost, 127.0.0.1, [::1])"
                ),
            );
            None
        }
        _ => {
            p.add(path, format!("\"{text}\" is not an http(s) URL"));
            None
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
