//! Client headers an upstream must never see, whatever their spelling.
//!
//! Upstreams believe some request headers because they expect a proxy to
//! have written them: the caller's identity (`X-Auth-*`, claim headers), the
//! client's address (`X-Real-IP`, `True-Client-IP`, `Client-IP`) and the
//! "real" URL (`X-Original-URL`, `X-Rewrite-URL`). A client that sends them
//! itself must not get them through.
//!
//! Spelling matters because CGI-style servers (WSGI, PHP, nginx with
//! `underscores_in_headers on`) turn `X-Auth-Subject` and `X_Auth_Subject`
//! into the same `HTTP_X_AUTH_SUBJECT`. So names are compared as those
//! servers read them ([`cgi_name`]), and, like nginx by default, every header
//! with an underscore is dropped unless `[server] allow_underscores_in_headers`
//! says otherwise. Even then, an underscore spelling of a header passgate
//! writes (`X_Forwarded_For`, `X_Real_IP`, ...) is dropped: it would reach the
//! upstream beside passgate's own value under the same CGI name.
//!
//! Every client copy of a header passgate writes ([`GATEWAY_WRITTEN`]) goes
//! too, in any spelling: passgate's own values are kept beside the client's
//! headers and written after them (`http::written`), so the client's map
//! must hold none of those names. The values passgate derives from the
//! client's (`X-Forwarded-For`, `Forwarded`) are read before this runs.
//!
//! The identity headers themselves are the gate's (`gate::is_identity`, removed in the same pass);
//! this module also says which names a `claims_to_headers` entry may not take
//! ([`reserved_for_gateway`]), so config validation and the proxy agree.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName};

use super::headers::is_hop_by_hop;

/// The prefix of the identity headers passgate writes after a token check.
pub const IDENTITY_PREFIX: &str = "x-auth-";

/// Client headers removed by default: upstream frameworks read them as the
/// client's address or the URL actually requested.
pub const OVERRIDE_HEADERS: &[&str] = &[
    "x-real-ip",
    "true-client-ip",
    "client-ip",
    "x-original-url",
    "x-rewrite-url",
];

/// Headers passgate writes for the upstream itself.
pub const GATEWAY_WRITTEN: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
    "x-real-ip",
    "traceparent",
];

/// Whether a client header read as `name` (see [`cgi_name`]) is one passgate
/// removes whatever the configuration: an override or a name it writes.
fn always_removed(name: &str) -> bool {
    // Each of those names starts with one of these letters, and most of a
    // request's names (`host`, `accept`, `user-agent`, ...) with none of them.
    matches!(name.as_bytes().first(), Some(b'c' | b'f' | b't' | b'x'))
        && (OVERRIDE_HEADERS.contains(&name) || GATEWAY_WRITTEN.contains(&name))
}

/// `name` as a CGI-style server reads it: `_` taken for `-` (header names
/// are already lower case).
pub fn cgi_name(name: &str) -> Cow<'_, str> {
    if name.contains('_') {
        Cow::Owned(name.replace('_', "-"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The client headers removed from every request before it is forwarded.
#[derive(Debug, Clone)]
pub struct RequestHygiene {
    allow_underscores: bool,
    /// The configured names, beside those [`always_removed`] names.
    strip: Vec<HeaderName>,
}

impl RequestHygiene {
    /// Remove [`OVERRIDE_HEADERS`], [`GATEWAY_WRITTEN`] and `extra` (in any
    /// spelling), and every header with an underscore unless `allow_underscores`.
    pub fn new(allow_underscores: bool, extra: &[HeaderName]) -> Self {
        let mut strip: Vec<HeaderName> = Vec::new();
        for name in extra {
            let name = HeaderName::from_bytes(cgi_name(name.as_str()).as_bytes())
                .unwrap_or_else(|_| name.clone());
            if !always_removed(name.as_str()) && !strip.contains(&name) {
                strip.push(name);
            }
        }
        Self {
            allow_underscores,
            strip,
        }
    }

    /// Remove what this policy removes from `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.apply_and(headers, |_| false);
    }

    /// Remove what this policy removes from `headers`, and every header that
    /// `also` refuses by the name a CGI-style server reads ([`cgi_name`]):
    /// the gate's identity headers (`gate::is_identity`), in the same pass
    /// over the names (a second pass cost some 280 instructions of every
    /// proxied request, docs/benchmarks.md).
    pub fn apply_and(&self, headers: &mut HeaderMap, also: impl Fn(&str) -> bool) {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let read_as = cgi_name(name.as_str());
                let underscored = matches!(read_as, Cow::Owned(_));
                self.refuses(&read_as, underscored) || also(&read_as)
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
    }

    /// Whether a header read as `read_as` goes (`underscored`: its name as
    /// sent had an underscore).
    fn refuses(&self, read_as: &str, underscored: bool) -> bool {
        if always_removed(read_as) || self.strip.iter().any(|s| s.as_str() == read_as) {
            return true;
        }
        underscored && (!self.allow_underscores || GATEWAY_WRITTEN.contains(&read_as))
    }
}

impl Default for RequestHygiene {
    /// The defaults of `[server]`: no underscores, no extra names.
    fn default() -> Self {
        Self::new(false, &[])
    }
}

/// Why a `claims_to_headers` entry may not write `name`, or `None` when it may.
///
/// Refused: names with an underscore (they alias other headers and are dropped
/// from requests); hop-by-hop headers and `proxy-*`; anything that frames or
/// describes the body (`content-*`, `expect`), since the upstream would parse
/// the body by it; `host`, `authorization` and `cookie`; the forwarding and
/// tracing headers passgate or its peers write (`forwarded`, `x-forwarded-*`,
/// `via`, `x-request-id`, `traceparent`, `tracestate`); the identity headers
/// (`x-auth-*`); and the address and URL overrides ([`OVERRIDE_HEADERS`]).
pub fn reserved_for_gateway(name: &HeaderName) -> Option<&'static str> {
    let n = name.as_str();
    if n.contains('_') {
        Some("has an underscore, which servers read as \"-\"; write the name with \"-\"")
    } else if is_hop_by_hop(name) || n.starts_with("proxy-") {
        Some("is a hop-by-hop header")
    } else if n.starts_with("content-") || n == "expect" {
        Some("describes the request body, which the upstream would parse by it")
    } else if ["host", "authorization", "cookie"].contains(&n) {
        Some("belongs to the client's request")
    } else if n == "forwarded"
        || n.starts_with("x-forwarded-")
        || ["via", "x-request-id", "traceparent", "tracestate"].contains(&n)
    {
        Some("is a forwarding or tracing header passgate writes")
    } else if n.starts_with(IDENTITY_PREFIX) {
        Some("is one of passgate's identity headers (X-Auth-*)")
    } else if OVERRIDE_HEADERS.contains(&n) {
        Some("is a client address or URL override that passgate removes")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn map(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for n in names {
            if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
                h.append(name, HeaderValue::from_static("v"));
            }
        }
        h
    }

    /// The names left, sorted (a `HeaderMap` has no stable order).
    fn left(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn overrides_and_extras_go_in_any_spelling() {
        let extra = [HeaderName::from_static("x-debug-user")];
        let policy = RequestHygiene::new(true, &extra);
        let mut h = map(&[
            "X-Real-IP",
            "x_real_ip",
            "True-Client-IP",
            "client-ip",
            "X-Original-URL",
            "x_rewrite_url",
            "X-Debug-User",
            "x_debug_user",
            "x-kept",
            "x_kept_too",
        ]);
        policy.apply(&mut h);
        assert_eq!(left(&h), ["x-kept", "x_kept_too"]);
    }

    #[test]
    fn names_passgate_writes_go_in_any_spelling() {
        let mut h = map(&[
            "X-Forwarded-For",
            "x-forwarded-proto",
            "X-Forwarded-Host",
            "Forwarded",
            "X-Request-Id",
            "traceparent",
            "tracestate",
            "accept",
        ]);
        RequestHygiene::new(true, &[]).apply(&mut h);
        assert_eq!(left(&h), ["accept", "tracestate"]);
        // The first-letter shortcut covers every name.
        for name in OVERRIDE_HEADERS.iter().chain(GATEWAY_WRITTEN) {
            assert!(always_removed(name), "{name}");
        }
    }

    #[test]
    fn underscores_are_dropped_unless_allowed() {
        let names = ["x_custom", "x-custom", "x_forwarded_for", "X_Request_Id"];
        let mut h = map(&names);
        RequestHygiene::default().apply(&mut h);
        assert_eq!(left(&h), ["x-custom"]);

        let mut h = map(&names);
        RequestHygiene::new(true, &[]).apply(&mut h);
        assert_eq!(left(&h), ["x-custom", "x_custom"]);
    }

    #[test]
    fn extra_names_written_with_underscores_match_both_spellings() {
        let extra = [HeaderName::from_static("x_debug")];
        let mut h = map(&["x-debug", "x_debug", "x-other"]);
        RequestHygiene::new(true, &extra).apply(&mut h);
        assert_eq!(left(&h), ["x-other"]);
    }

    #[test]
    fn claim_header_names() {
        let refused = [
            "x_user",
            "connection",
            "te",
            "trailer",
            "upgrade",
            "proxy-foo",
            "keep-alive",
            "transfer-encoding",
            "content-length",
            "content-type",
            "content-encoding",
            "expect",
            "host",
            "authorization",
            "cookie",
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-prefix",
            "via",
            "x-request-id",
            "traceparent",
            "tracestate",
            "x-auth-subject",
            "x-auth-roles",
            "x-real-ip",
            "true-client-ip",
            "x-original-url",
        ];
        for n in refused {
            assert!(
                reserved_for_gateway(&HeaderName::from_static(n)).is_some(),
                "{n}"
            );
        }
        for n in [
            "x-user-roles",
            "x-tenant",
            "x-authz-level",
            "accept-language",
        ] {
            assert_eq!(
                reserved_for_gateway(&HeaderName::from_static(n)),
                None,
                "{n}"
            );
        }
    }
}
