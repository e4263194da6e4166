//! `[[routes]]`: prefixes, upstreams and token policy.

use std::collections::HashMap;
use std::str::FromStr;

use http::{HeaderName, Method, Uri};

use super::*;

/// Parse an upstream base URL: `http(s)://host:port[/base]` or
/// `h2c://host:port[/base]` (HTTP/2 with prior knowledge), no query or fragment.
pub fn parse_upstream(text: &str) -> Result<UpstreamTarget, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a URL"))?;
    let h2c = uri.scheme_str() == Some("h2c");
    let scheme = match uri.scheme_str() {
        Some("http") | Some("https") => uri.scheme().cloned(),
        Some("h2c") => Some(http::uri::Scheme::HTTP),
        _ => None,
    }
    .ok_or_else(|| format!("\"{text}\" must start with http://, https:// or h2c://"))?;
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
        h2c,
        authority,
        base_path,
        url: text.into(),
    })
}

pub(super) fn scope_list(p: &mut Problems, path: &str, scopes: Vec<String>) -> Vec<String> {
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

pub(super) fn routes(
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
        let upstream_protocol =
            upstream_protocol(p, &path, r.upstream_protocol.as_deref(), &upstreams);
        let max_body = p.parsed(
            format!("{path}.max_body"),
            r.max_body.as_ref().map(parse_size),
        );
        let mut claims_to_headers = Vec::new();
        for (header, claim) in r.claims_to_headers.unwrap_or_default() {
            let key = format!("{path}.claims_to_headers.\"{header}\"");
            match HeaderName::from_str(&header) {
                Ok(name) => match crate::http::hygiene::reserved_for_gateway(&name) {
                    Some(why) => p.add(key, format!("cannot be set from a claim: {name} {why}")),
                    None if claim.is_empty() => p.add(key, format!("no claim named for {name}")),
                    None => claims_to_headers.push((name, claim)),
                },
                Err(_) => p.add(key, format!("\"{header}\" is not a header name")),
            }
        }
        if public && !claims_to_headers.is_empty() {
            p.add(
                format!("{path}.claims_to_headers"),
                "a public route has no token to read claims from",
            );
        }
        let require_mfa = step_up(p, &path, r.require_mfa);
        if public && require_mfa != StepUp::Never {
            p.add(
                format!("{path}.require_mfa"),
                "a public route has no token to check for a second factor",
            );
        }
        let rate_limit = super::ops::rate_limit(p, &path, r.rate_limit, public);
        let health_check = super::ops::health_check(p, &path, r.health_check);
        out.push(RouteConfig {
            prefix,
            upstreams,
            policy,
            strip_prefix: r.strip_prefix.unwrap_or(false),
            max_body,
            host_header,
            upstream_protocol,
            forward_authorization: r.forward_authorization.unwrap_or(true),
            claims_to_headers,
            require_mfa,
            rate_limit,
            health_check,
        });
    }
    out
}

/// `upstream_protocol`: `auto` (the default), `http1` or `http2`; an `h2c://`
/// upstream speaks only HTTP/2.
fn upstream_protocol(
    p: &mut Problems,
    path: &str,
    value: Option<&str>,
    upstreams: &[UpstreamTarget],
) -> UpstreamProtocol {
    let protocol = match value {
        None | Some("auto") => UpstreamProtocol::Auto,
        Some("http1") => UpstreamProtocol::Http1,
        Some("http2") => UpstreamProtocol::Http2,
        Some(other) => {
            p.add(
                format!("{path}.upstream_protocol"),
                format!("\"{other}\" is not one of \"auto\", \"http1\", \"http2\""),
            );
            UpstreamProtocol::Auto
        }
    };
    if protocol == UpstreamProtocol::Http1
        && let Some(u) = upstreams.iter().find(|u| u.h2c)
    {
        p.add(
            format!("{path}.upstream_protocol"),
            format!("\"http1\" cannot reach {}, which speaks only HTTP/2", u.url),
        );
    }
    protocol
}

/// `require_mfa`: `true`/`false`, or a list of methods in capitals.
fn step_up(p: &mut Problems, path: &str, value: Option<toml::Value>) -> StepUp {
    let key = format!("{path}.require_mfa");
    match value {
        None | Some(toml::Value::Boolean(false)) => StepUp::Never,
        Some(toml::Value::Boolean(true)) => StepUp::Always,
        Some(toml::Value::Array(items)) => {
            let mut methods = Vec::new();
            for (j, item) in items.iter().enumerate() {
                match item.as_str().map(|m| (m, Method::from_str(m))) {
                    Some((m, Ok(method))) if m.chars().all(|c| c.is_ascii_uppercase()) => {
                        methods.push(method)
                    }
                    _ => p.add(
                        format!("{key}[{j}]"),
                        "not an HTTP method in capitals, like POST",
                    ),
                }
            }
            if methods.is_empty() && items.is_empty() {
                p.add(&key, "an empty list; use false, or name methods");
            }
            StepUp::Methods(methods)
        }
        Some(_) => {
            p.add(&key, "must be true, false or a list of methods");
            StepUp::Never
        }
    }
}
