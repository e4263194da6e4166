//! Is a `Host` header (or HTTP/2 `:authority`) a plain `host[:port]`?
//!
//! passgate repeats the client's host to upstreams (`X-Forwarded-Host`,
//! `Forwarded: host=`, and `Host` itself on `host_header = "client"` routes),
//! which build absolute URLs, pick tenants and check origins from it. A value
//! that is not an authority — spaces, quotes, userinfo (`user@evil.example`),
//! a path, a port that is not a number — is refused before it gets that far.
//!
//! The grammar is RFC 3986 §3.2.2 without userinfo, as RFC 9110 §7.2 has it
//! for `Host`: a reg-name (unreserved, percent-encoded or sub-delims
//! characters), an IPv4 address, or an IPv6 address in brackets; then
//! optionally `:` and 1 to 5 digits no larger than 65535. Deliberately
//! narrower than the RFC: the host and the port, when a `:` is written, are
//! never empty, and IPvFuture (`[v1.x]`) and IPv6 zone ids are refused.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

/// Why a host was refused, for the client's error description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// Nothing before the port.
    Empty,
    /// `user@host`: credentials have no place in a Host.
    Userinfo,
    /// A character no host may contain (space, `@`, `/`, quote...).
    BadCharacter,
    /// `[...]` that is not an IPv6 address.
    BadIpv6,
    /// Not 1-5 digits, or above 65535.
    BadPort,
}

impl HostError {
    /// A short description for the client.
    pub fn describe(self) -> &'static str {
        match self {
            HostError::Empty => "the Host header names no host",
            HostError::Userinfo => "the Host header must not carry user information",
            HostError::BadCharacter => "the Host header is not a host name or address",
            HostError::BadIpv6 => "the Host header has a malformed IPv6 address",
            HostError::BadPort => "the Host header's port is not a number from 0 to 65535",
        }
    }
}

/// Check that `text` is `host[:port]` (see the module docs).
pub fn check_host(text: &str) -> Result<(), HostError> {
    if text.contains('@') {
        return Err(HostError::Userinfo);
    }
    let (host, port) = split_port(text)?;
    if let Some(port) = port {
        check_port(port)?;
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::BadIpv6)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| HostError::BadIpv6);
    }
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    // A dotted IPv4 address is also a valid reg-name, so one check covers both.
    check_reg_name(host)
}

/// The host a connection's requests keep naming, once [`check_host`]
/// accepted it: the same bytes again need no second check (a request would
/// otherwise spend as long checking its `Host` as on the rest of its headers).
#[derive(Debug, Default)]
pub struct AcceptedHost(OnceLock<Box<[u8]>>);

impl AcceptedHost {
    /// [`check_host`], skipped for the host this connection already had accepted.
    pub fn check(&self, text: &str) -> Result<(), HostError> {
        if self.0.get().is_some_and(|seen| **seen == *text.as_bytes()) {
            return Ok(());
        }
        check_host(text)?;
        let _ = self.0.set(text.as_bytes().into());
        Ok(())
    }
}

/// `(host, port)`: the port is what follows the last `:` outside brackets.
fn split_port(text: &str) -> Result<(&str, Option<&str>), HostError> {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => {
                let (host, rest) = text.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(port) => Ok((host, Some(port))),
                    None if rest.is_empty() => Ok((host, None)),
                    None => Err(HostError::BadIpv6),
                }
            }
            None => Err(HostError::BadIpv6),
        };
    }
    Ok(match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

fn check_port(port: &str) -> Result<(), HostError> {
    let digits = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u32>() {
        Ok(n) if digits && n <= 65535 => Ok(()),
        _ => Err(HostError::BadPort),
    }
}

/// RFC 3986 reg-name: unreserved / pct-encoded / sub-delims.
fn check_reg_name(host: &str) -> Result<(), HostError> {
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(HostError::BadCharacter)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(HostError::BadCharacter);
            }
            i += 3;
            continue;
        }
        if !REG_NAME[usize::from(b)] {
            return Err(HostError::BadCharacter);
        }
        i += 1;
    }
    Ok(())
}

/// The characters a reg-name may hold besides `%` escapes: unreserved
/// (`A-Z a-z 0-9 - . _ ~`) and sub-delims (`! $ & ' ( ) * + , ; =`), one
/// lookup a byte on every request's Host.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~')
            || matches!(
                c,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reg_name_table_is_rfc_3986s() {
        for b in 0..=255u8 {
            let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            let sub_delim = b"!$&'()*+,;=".contains(&b);
            assert_eq!(
                REG_NAME[usize::from(b)],
                unreserved || sub_delim,
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn hosts_and_ports() {
        use HostError::*;
        let cases: &[(&str, Result<(), HostError>)] = &[
            ("api.example.com", Ok(())),
            ("API.Example.COM", Ok(())),
            ("localhost:8443", Ok(())),
            ("127.0.0.1", Ok(())),
            ("127.0.0.1:0", Ok(())),
            ("example.com:65535", Ok(())),
            ("[::1]", Ok(())),
            ("[::1]:443", Ok(())),
            ("[2001:db8::ffff:192.0.2.1]:8080", Ok(())),
            ("xn--bcher-kva.example", Ok(())),
            ("caf%C3%A9.example", Ok(())),
            ("under_score.example", Ok(())),
            ("", Err(Empty)),
            (":443", Err(Empty)),
            ("evil example", Err(BadCharacter)),
            ("user@evil.example", Err(Userinfo)),
            ("evil.example/path", Err(BadCharacter)),
            ("evil\"example", Err(BadCharacter)),
            ("evil.example\\", Err(BadCharacter)),
            ("bad%zz.example", Err(BadCharacter)),
            ("bad%4", Err(BadCharacter)),
            ("café.example", Err(BadCharacter)),
            ("evil.example:", Err(BadPort)),
            ("evil.example:80a", Err(BadPort)),
            ("evil.example:65536", Err(BadPort)),
            ("evil.example:99999", Err(BadPort)),
            ("evil.example:000080", Err(BadPort)),
            ("evil.example:+80", Err(BadPort)),
            ("user:pw@evil.example", Err(Userinfo)),
            ("a:b:c", Err(BadPort)),
            ("::1", Err(BadCharacter)),
            ("[::1", Err(BadIpv6)),
            ("[::1]x", Err(BadIpv6)),
            ("[not-v6]:443", Err(BadIpv6)),
            ("[v1.future]", Err(BadIpv6)),
            ("[fe80::1%25eth0]", Err(BadIpv6)),
            ("[::1]:", Err(BadPort)),
            ("[::1]:70000", Err(BadPort)),
        ];
        for (text, want) in cases {
            assert_eq!(check_host(text), *want, "{text:?}");
        }
    }

    #[test]
    fn every_error_has_a_description() {
        for e in [
            HostError::Empty,
            HostError::Userinfo,
            HostError::BadCharacter,
            HostError::BadIpv6,
            HostError::BadPort,
        ] {
            assert!(!e.describe().is_empty());
        }
    }

    #[test]
    fn a_connection_s_accepted_host_is_not_checked_again_but_others_are() {
        let accepted = AcceptedHost::default();
        assert_eq!(accepted.check("bad host"), Err(HostError::BadCharacter));
        assert_eq!(accepted.check("api.example.com:8443"), Ok(()));
        assert_eq!(accepted.check("api.example.com:8443"), Ok(()));
        // Another host, good or bad, is checked as any first one.
        assert_eq!(accepted.check("other.example.com"), Ok(()));
        assert_eq!(
            accepted.check("api.example.com:99999"),
            Err(HostError::BadPort)
        );
        assert_eq!(
            accepted.check("user@api.example.com:8443"),
            Err(HostError::Userinfo)
        );
        assert_eq!(
            accepted.check("api.example.com:8443 "),
            Err(HostError::BadPort)
        );
    }
}
