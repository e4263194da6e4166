//! `--target`: parse the URL and refuse anything that is not this machine.
//!
//! The load generator is for loopback or the user's own hosts: a target must be
//! `localhost`, a loopback address, or a name whose every address is one of this
//! machine's own (checked by binding a socket to it, which only a local address
//! allows).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{Context, bail};

/// A parsed `https://host:port` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// Host as written (name or IP literal, without brackets).
    pub host: String,
    /// Port (443 when absent).
    pub port: u16,
}

/// Parse `https://host[:port][/]`; anything else is refused.
pub fn parse(url: &str) -> anyhow::Result<TargetUrl> {
    let uri: http::Uri = url.parse().with_context(|| format!("--target {url:?}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("--target must be an https:// URL (passgate serves TLS only), got {url:?}");
    }
    if (uri.path() != "/" && !uri.path().is_empty()) || uri.query().is_some() {
        bail!("--target is scheme, host and port only (use --path for the request path)");
    }
    let host = uri.host().context("--target has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(TargetUrl {
        host,
        port: uri.port_u16().unwrap_or(443),
    })
}

/// True for `localhost` (and `*.localhost`) and loopback IP literals.
pub fn is_loopback_name(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// True when `ip` is loopback or assigned to one of this machine's interfaces.
pub fn is_own_address(ip: IpAddr) -> bool {
    ip.is_loopback() || (!ip.is_unspecified() && UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok())
}

/// Resolve the target and check that every address is this machine's.
pub async fn resolve_own(target: &TargetUrl) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot resolve {}", target.host))?
        .collect();
    if addrs.is_empty() {
        bail!("{} resolves to no address", target.host);
    }
    let loopback = is_loopback_name(&target.host);
    if let Some(foreign) = addrs
        .iter()
        .find(|a| !(is_own_address(a.ip()) || (loopback && a.ip().is_loopback())))
    {
        bail!(
            "refusing --target {}: {} is not a loopback address or one of this machine's own; \
             the load bench is for loopback or your own hosts only (run it on the host itself)",
            target.host,
            foreign.ip()
        );
    }
    Ok(addrs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_urls() {
        assert_eq!(
            parse("https://127.0.0.1:8443").unwrap(),
            TargetUrl {
                host: "127.0.0.1".into(),
                port: 8443
            }
        );
        assert_eq!(parse("https://[::1]:9/").unwrap().host, "::1");
        assert_eq!(parse("https://localhost").unwrap().port, 443);
        assert!(parse("http://127.0.0.1:8443").is_err());
        assert!(parse("https://127.0.0.1:8443/api").is_err());
        assert!(parse("127.0.0.1:8443").is_err());
    }

    #[test]
    fn loopback_names() {
        for ok in [
            "localhost",
            "LOCALHOST",
            "a.localhost",
            "127.0.0.1",
            "127.9.8.7",
            "::1",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for no in [
            "example.com",
            "10.0.0.1",
            "192.0.2.1",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_loopback_name(no), "{no}");
        }
    }

    #[test]
    fn foreign_addresses_are_not_own() {
        assert!(is_own_address("127.0.0.1".parse().unwrap()));
        // TEST-NET-1 is never assigned to a machine.
        assert!(!is_own_address("192.0.2.1".parse().unwrap()));
        assert!(!is_own_address("0.0.0.0".parse().unwrap()));
    }

    #[tokio::test]
    async fn refuses_foreign_targets() {
        let own = resolve_own(&parse("https://127.0.0.1:1").unwrap())
            .await
            .unwrap();
        assert_eq!(own.len(), 1);
        let err = resolve_own(&parse("https://192.0.2.1:443").unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("loopback or your own hosts only"),
            "{err}"
        );
    }
}
