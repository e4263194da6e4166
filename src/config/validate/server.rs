//! `[server]`, `[log]`, `[upstream]` and `[gate]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, header};

use super::*;
use crate::config::units::parse_cidr;

pub(super) fn socket_addr(p: &mut Problems, path: &str, text: &str) -> Option<SocketAddr> {
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

/// A section's durations, from one table of rows (key, value as written,
/// default in seconds): each is parsed, must be longer than zero, and a
/// problem names `section.key`.
fn durations<const N: usize>(
    p: &mut Problems,
    section: &str,
    rows: [(&str, &Option<String>, u64); N],
) -> [Duration; N] {
    rows.map(|(key, value, default)| {
        p.duration(
            &format!("{section}.{key}"),
            value,
            Duration::from_secs(default),
        )
    })
}

pub(super) fn server(p: &mut Problems, raw: RawServer) -> ServerConfig {
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
    let strip_request_headers = strip_request_headers(p, raw.strip_request_headers);
    let [
        tls_handshake_timeout,
        header_read_timeout,
        idle_timeout,
        shutdown_timeout,
        body_read_timeout,
        tunnel_idle_timeout,
    ] = durations(
        p,
        "server",
        [
            ("tls_handshake_timeout", &raw.tls_handshake_timeout, 10),
            ("header_read_timeout", &raw.header_read_timeout, 30),
            ("idle_timeout", &raw.idle_timeout, 60),
            ("shutdown_timeout", &raw.shutdown_timeout, 30),
            ("body_read_timeout", &raw.body_read_timeout, 10),
            ("tunnel_idle_timeout", &raw.tunnel_idle_timeout, 300),
        ],
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
        tls_handshake_timeout,
        header_read_timeout,
        idle_timeout,
        shutdown_timeout,
        workers: p.positive("server.workers", raw.workers, default_workers() as u64) as usize,
        worker_cpu_affinity: worker_cpu_affinity(p, raw.worker_cpu_affinity.as_deref()),
        max_concurrent_streams: u32::try_from(max_concurrent_streams).unwrap_or(u32::MAX),
        allow_underscores_in_headers: raw.allow_underscores_in_headers.unwrap_or(false),
        strip_request_headers,
        body_read_timeout,
        tunnel_idle_timeout,
        max_header_size: max_header_size(p, raw.max_header_size.as_ref()),
        pid_file: pid_file(p, raw.pid_file),
    }
}

/// `server.pid_file`: where `passgate serve` writes its process id (for
/// `passgate reload`); a path, not empty.
fn pid_file(p: &mut Problems, raw: Option<String>) -> Option<std::path::PathBuf> {
    let text = raw?;
    if text.trim().is_empty() {
        p.add("server.pid_file", "must be a file path, not empty");
        return None;
    }
    Some(text.into())
}

/// The smallest and largest `server.max_header_size` accepted.
const HEADER_SIZE_RANGE: (u64, u64) = (1024, 16 << 20);

fn max_header_size(p: &mut Problems, raw: Option<&toml::Value>) -> usize {
    let default = 64 * 1024;
    match p.parsed("server.max_header_size", raw.map(parse_size)) {
        None => default,
        Some(n) if (HEADER_SIZE_RANGE.0..=HEADER_SIZE_RANGE.1).contains(&n) => n as usize,
        Some(n) => {
            p.add(
                "server.max_header_size",
                format!("{n} bytes is outside 1KiB..16MiB"),
            );
            default
        }
    }
}

/// `server.strip_request_headers`: header names; `Host` and `Authorization`
/// are refused, since passgate needs them to route and to check tokens.
fn strip_request_headers(p: &mut Problems, raw: Option<Vec<String>>) -> Vec<HeaderName> {
    let mut names = Vec::new();
    for (i, text) in raw.unwrap_or_default().iter().enumerate() {
        let key = format!("server.strip_request_headers[{i}]");
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) if name == header::HOST || name == header::AUTHORIZATION => p.add(
                key,
                format!(
                    "\"{text}\" cannot be removed: passgate needs it to route and check tokens"
                ),
            ),
            Ok(name) => names.push(name),
            Err(_) => p.add(key, format!("\"{text}\" is not a header name")),
        }
    }
    names
}

fn worker_cpu_affinity(p: &mut Problems, raw: Option<&str>) -> WorkerCpuAffinity {
    match raw {
        None | Some("off") => WorkerCpuAffinity::Off,
        Some("auto") => WorkerCpuAffinity::Auto,
        Some(other) => {
            p.add(
                "server.worker_cpu_affinity",
                format!("\"{other}\" is not one of \"off\", \"auto\""),
            );
            WorkerCpuAffinity::Off
        }
    }
}

/// One worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

pub(super) fn log(p: &mut Problems, raw: RawLog) -> LogConfig {
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

pub(super) fn upstream(p: &mut Problems, raw: RawUpstream) -> UpstreamConfig {
    let [
        connect_timeout,
        response_timeout,
        pool_idle_timeout,
        unhealthy_cooldown,
    ] = durations(
        p,
        "upstream",
        [
            ("connect_timeout", &raw.connect_timeout, 5),
            ("response_timeout", &raw.response_timeout, 30),
            ("pool_idle_timeout", &raw.pool_idle_timeout, 90),
            ("unhealthy_cooldown", &raw.unhealthy_cooldown, 10),
        ],
    );
    UpstreamConfig {
        connect_timeout,
        response_timeout,
        pool_idle_timeout,
        pool_max_idle_per_host: p.positive(
            "upstream.pool_max_idle_per_host",
            raw.pool_max_idle_per_host,
            512,
        ) as usize,
        ca_file: raw.ca_file.map(PathBuf::from),
        unhealthy_cooldown,
    }
}

pub(super) fn gate(p: &mut Problems, raw: RawGate) -> GateConfig {
    let leeway = p
        .parsed("gate.leeway", raw.leeway.as_deref().map(parse_duration))
        .unwrap_or(Duration::from_secs(30));
    let cache_bytes = p
        .parsed("gate.cache_bytes", raw.cache_bytes.as_ref().map(parse_size))
        .unwrap_or(64 << 20);
    let realm = raw.realm.unwrap_or_else(|| "passgate".into());
    if realm.contains('"') || realm.contains('\\') || realm.chars().any(char::is_control) {
        p.add(
            "gate.realm",
            "must not contain quotes, backslashes or control characters",
        );
    }
    let [jwks_refresh, jwks_min_refresh, jwks_fetch_timeout] = durations(
        p,
        "gate",
        [
            ("jwks_refresh", &raw.jwks_refresh, 3600),
            ("jwks_min_refresh", &raw.jwks_min_refresh, 30),
            ("jwks_fetch_timeout", &raw.jwks_fetch_timeout, 5),
        ],
    );
    let config = GateConfig {
        realm,
        leeway,
        cache_entries: p.positive("gate.cache_entries", raw.cache_entries, 100_000) as usize,
        cache_bytes,
        jwks_refresh,
        jwks_min_refresh,
        jwks_fetch_timeout,
    };
    if config.jwks_refresh < config.jwks_min_refresh {
        p.add(
            "gate.jwks_refresh",
            format!(
                "{:?} is shorter than gate.jwks_min_refresh ({:?}), which would win; raise it or lower the minimum",
                config.jwks_refresh, config.jwks_min_refresh
            ),
        );
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_limits_have_defaults_and_name_their_key() {
        let base = "[server]\nlisten = \"127.0.0.1:0\"\n";
        let config = Config::from_toml(base).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.server.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.server.tunnel_idle_timeout, Duration::from_secs(300));
        assert_eq!(config.server.max_header_size, 64 * 1024);

        let set = format!(
            "{base}body_read_timeout = \"300ms\"\ntunnel_idle_timeout = \"1m\"\nmax_header_size = \"8KiB\"\n"
        );
        let config = Config::from_toml(&set).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.server.body_read_timeout, Duration::from_millis(300));
        assert_eq!(config.server.tunnel_idle_timeout, Duration::from_secs(60));
        assert_eq!(config.server.max_header_size, 8 * 1024);

        let bad = format!(
            "{base}body_read_timeout = \"0s\"\ntunnel_idle_timeout = \"soon\"\nmax_header_size = 10\n"
        );
        let text = Config::from_toml(&bad)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        for key in [
            "server.body_read_timeout:",
            "server.tunnel_idle_timeout:",
            "server.max_header_size:",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }
}
