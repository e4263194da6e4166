//! Which IP a login attempt comes from, and the key it is counted under.
//!
//! The TLS peer, unless it is one of `server.trusted_proxies`: then the
//! nearest untrusted hop of `X-Forwarded-For`. On top of that, the
//! `auth0-forwarded-for` header of a backend that authenticated with its
//! secret and is marked `trust_forwarded_for`; from anyone else it is ignored.
//! Counters key IPv4 by address and IPv6 by its /64, the smallest block one
//! subscriber usually gets.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::config::ClientConfig;
use crate::http::headers::X_FORWARDED_FOR;

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// With its secret (Basic or body).
    Secret,
    /// A public client: no secret.
    Public,
}

/// `auth0-forwarded-for`: the end user's IP, sent by a trusted backend.
pub const AUTH0_FORWARDED_FOR: &str = "auth0-forwarded-for";

/// The key an IP is counted under: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpKey {
    /// An IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl IpKey {
    /// The key of `ip`; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(u32::from(v4)),
                None => IpKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for IpKey {
    /// `203.0.113.9` or `2001:db8:1:2::/64`: the form stored and logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpKey::V4(n) => write!(f, "{}", std::net::Ipv4Addr::from(n)),
            IpKey::V6(hi) => write!(f, "{}/64", Ipv6Addr::from(u128::from(hi) << 64)),
        }
    }
}

/// The address of the connection's client: the peer, or, when the peer is a
/// trusted proxy, the nearest address in `X-Forwarded-For` (read right to
/// left across every header line) that is not itself a trusted proxy.
pub fn network_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut ip = canonical(peer.ip());
    if !is_trusted(ip, trusted) {
        return ip;
    }
    let hops: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(hop) = parse_ip(hop) else {
            // A hop we cannot read: believe nothing further left.
            return ip;
        };
        ip = hop;
        if !is_trusted(hop, trusted) {
            return hop;
        }
    }
    ip
}

/// The IP attack protection counts: `network` unless the client
/// authenticated with its secret, is marked `trust_forwarded_for`, and sent
/// a readable `auth0-forwarded-for`.
pub fn effective_ip(
    network: IpAddr,
    headers: &HeaderMap,
    client: &ClientConfig,
    auth: ClientAuth,
) -> IpAddr {
    if auth != ClientAuth::Secret || !client.trust_forwarded_for {
        return network;
    }
    let mut values = headers.get_all(AUTH0_FORWARDED_FOR).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok().and_then(parse_ip).unwrap_or(network),
        _ => network,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.parse::<IpAddr>()
        .or_else(|_| t.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a = IpKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = IpKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let c = IpKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            IpKey::of(ip("::ffff:192.0.2.7")),
            IpKey::of(ip("192.0.2.7"))
        );
        assert_eq!(IpKey::of(ip("192.0.2.7")).to_string(), "192.0.2.7");
        assert_ne!(IpKey::of(ip("192.0.2.7")), IpKey::of(ip("192.0.2.8")));
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                X_FORWARDED_FOR.clone(),
                HeaderValue::from_str(l).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = ["10.0.0.0/8"
            .parse::<IpNet>()
            .unwrap_or_else(|e| panic!("{e}"))];
        let peer = |s: &str| SocketAddr::new(ip(s), 443);
        let cases: &[(&str, &[&str], &str)] = &[
            ("198.51.100.1", &["203.0.113.9"], "198.51.100.1"),
            ("10.0.0.1", &["203.0.113.9"], "203.0.113.9"),
            (
                "10.0.0.1",
                &["6.6.6.6, 203.0.113.9, 10.0.0.2"],
                "203.0.113.9",
            ),
            ("10.0.0.1", &["6.6.6.6", "203.0.113.9"], "203.0.113.9"),
            ("10.0.0.1", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("10.0.0.1", &["203.0.113.9, garbage"], "10.0.0.1"),
            ("10.0.0.1", &[], "10.0.0.1"),
            ("10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ];
        for (p, lines, want) in cases {
            assert_eq!(
                network_ip(peer(p), &xff(lines), &trusted),
                ip(want),
                "{p} {lines:?}"
            );
        }
    }

    #[test]
    fn auth0_forwarded_for_needs_a_trusted_secret_client() {
        let client = |trust| ClientConfig {
            id: "b".into(),
            name: "b".into(),
            secret: None,
            grant_types: vec![],
            realms: vec![],
            trust_forwarded_for: trust,
            refresh: Default::default(),
        };
        let mut h = HeaderMap::new();
        h.insert(AUTH0_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        let net = ip("198.51.100.1");
        assert_eq!(
            effective_ip(net, &h, &client(true), ClientAuth::Secret),
            ip("203.0.113.9")
        );
        assert_eq!(
            effective_ip(net, &h, &client(false), ClientAuth::Secret),
            net
        );
        assert_eq!(
            effective_ip(net, &h, &client(true), ClientAuth::Public),
            net
        );
        h.insert(AUTH0_FORWARDED_FOR, HeaderValue::from_static("nonsense"));
        assert_eq!(
            effective_ip(net, &h, &client(true), ClientAuth::Secret),
            net
        );
    }
}
