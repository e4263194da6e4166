//! passgate's own authorization server: `[issuer]`, `[[apis]]`, `[[realms]]`, `[[clients]]`, `[passwords]`.

use std::collections::HashSet;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;

use super::*;

pub(super) fn passwords(p: &mut Problems, raw: RawPasswords) -> PasswordsConfig {
    let memory = match p.parsed("passwords.memory", raw.memory.as_ref().map(parse_size)) {
        Some(n) if (8 << 10..=4 << 30).contains(&n) => n,
        Some(n) => {
            p.add(
                "passwords.memory",
                format!("{n} bytes is outside 8KiB..4GiB"),
            );
            19 << 20
        }
        None => 19 << 20,
    };
    let small = |p: &mut Problems, key: &str, v: Option<i64>, default: u64| -> u32 {
        let n = p.positive(key, v, default);
        u32::try_from(n).unwrap_or_else(|_| {
            p.add(key, "is too large");
            default as u32
        })
    };
    let workers = p.positive("passwords.workers", raw.workers, default_workers() as u64) as usize;
    let config = PasswordsConfig {
        memory_kib: (memory / 1024) as u32,
        iterations: small(p, "passwords.iterations", raw.iterations, 2),
        parallelism: small(p, "passwords.parallelism", raw.parallelism, 1),
        workers,
        queue: queue(p, raw.queue, workers),
        verify_floor: verify_floor(p, raw.verify_floor.as_deref()),
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

/// The most `passwords.queue` may be: far past any useful wait.
const MAX_QUEUE: i64 = 1_000_000;

/// `passwords.queue`: checks that may wait for a worker, 0..=1000000;
/// by default [`DEFAULT_QUEUE_PER_WORKER`] per worker.
fn queue(p: &mut Problems, raw: Option<i64>, workers: usize) -> usize {
    let default = workers.saturating_mul(DEFAULT_QUEUE_PER_WORKER);
    match raw {
        None => default,
        Some(n) if (0..=MAX_QUEUE).contains(&n) => n as usize,
        Some(n) => {
            p.add(
                "passwords.queue",
                format!("must be between 0 and {MAX_QUEUE}, found {n}"),
            );
            default
        }
    }
}

/// `passwords.verify_floor`: `"auto"` (the default) or a duration.
fn verify_floor(p: &mut Problems, raw: Option<&str>) -> VerifyFloor {
    const KEY: &str = "passwords.verify_floor";
    match raw {
        None | Some("auto") => VerifyFloor::Auto,
        Some(text) => match parse_duration(text) {
            Ok(d) if d > Duration::from_secs(10) => {
                p.add(
                    KEY,
                    format!("\"{text}\" is longer than 10s; every login would wait that long"),
                );
                VerifyFloor::Auto
            }
            Ok(d) => VerifyFloor::Fixed(d),
            Err(e) => {
                p.add(KEY, format!("{e}, or \"auto\""));
                VerifyFloor::Auto
            }
        },
    }
}

pub(super) fn issuer(p: &mut Problems, raw: RawIssuer) -> IssuerConfig {
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

pub(super) fn apis(p: &mut Problems, raw: Vec<RawApi>) -> Vec<ApiConfig> {
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

pub(super) fn realms(p: &mut Problems, raw: Vec<RawRealm>) -> Vec<RealmConfig> {
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

pub(super) fn clients(
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
        let secret = p
            .secret(
                (&path, "secret"),
                (c.secret, c.secret_env),
                env,
                SecretHints {
                    empty: "; remove it for a public client",
                    unset: "; set it, or write the secret in `secret`",
                },
            )
            .unwrap_or(None);
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
        let reuse_leeway = p
            .parsed(
                format!("{path}.refresh_token_reuse_leeway"),
                c.refresh_token_reuse_leeway.as_deref().map(parse_duration),
            )
            .unwrap_or(defaults.reuse_leeway);
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

/// An audience must never be a client id: passgate's ID tokens carry
/// `aud = <client id>` and share the access tokens' signing key, so an API or
/// a route with such an audience would take a client's ID tokens for access
/// tokens (the gate also refuses own tokens not typed `at+jwt`; this keeps the
/// config from relying on that alone).
pub(super) fn audiences_are_not_client_ids(
    p: &mut Problems,
    apis: &[ApiConfig],
    clients: &[ClientConfig],
    routes: &[RouteConfig],
) {
    let client_index = |aud: &str| clients.iter().position(|c| c.id == aud);
    for (i, api) in apis.iter().enumerate() {
        if let Some(j) = client_index(&api.audience) {
            p.add(
                format!("apis[{i}].audience"),
                format!(
                    "\"{}\" is the id of clients[{j}]; ID tokens carry it as their audience, so it cannot name an API",
                    api.audience
                ),
            );
        }
    }
    for (i, route) in routes.iter().enumerate() {
        if let RoutePolicy::Protected { audience, .. } = &route.policy
            && let Some(j) = client_index(audience)
        {
            p.add(
                format!("routes[{i}].audience"),
                format!(
                    "\"{audience}\" is the id of clients[{j}]; ID tokens carry it as their audience, so it cannot protect a route"
                ),
            );
        }
    }
}
