//! `RawConfig` → `Config`: every problem collected with its key path, then reported at once.
//!
//! One file per part of the config: `server.rs` (`[server]`, `[log]`, `[upstream]`, `[gate]`),
//! `auth.rs` (`[issuer]`, `[[apis]]`, `[[realms]]`, `[[clients]]`, `[passwords]`),
//! `routes.rs` (`[[routes]]`), `issuers.rs` (`[[trusted_issuers]]`),
//! `extensibility.rs` (`[extensibility]`, `[[rules]]`, `[[actions]]`),
//! `store.rs` (`[store]`'s backend; its encryption key is in `mfa.rs`), `mfa.rs` (`[mfa]`) and
//! `smtp.rs` (`[mfa.email]`).

use std::time::Duration;

use super::raw::*;
use super::units::{parse_duration, parse_size};
use super::*;

mod auth;
mod extensibility;
mod issuers;
mod mfa;
mod ops;
mod routes;
mod server;
mod smtp;
mod store;

use auth::{apis, audiences_are_not_client_ids, clients, issuer, passwords, realms};
use issuers::trusted_issuers;
#[cfg(test)]
pub use routes::parse_upstream;
use routes::routes;
pub use server::default_workers;
use server::{gate, log, server, upstream};

/// The grants passgate knows, as written on the wire.
pub const KNOWN_GRANTS: &[&str] = &[
    "password",
    "http://auth0.com/oauth/grant-type/password-realm",
    "refresh_token",
    "http://auth0.com/oauth/grant-type/mfa-otp",
    "http://auth0.com/oauth/grant-type/mfa-recovery-code",
    "http://auth0.com/oauth/grant-type/mfa-oob",
];

struct Problems(Vec<String>);

/// What [`Problems::secret`] adds to its problems for one kind of secret.
#[derive(Clone, Copy, Default)]
struct SecretHints {
    /// After "is empty".
    empty: &'static str,
    /// After "the environment variable … is not set (or is empty)".
    unset: &'static str,
}

impl Problems {
    fn add(&mut self, path: impl AsRef<str>, msg: impl AsRef<str>) {
        self.0.push(format!("{}: {}", path.as_ref(), msg.as_ref()));
    }

    /// A parsed optional value: `None` when absent, or when it did not parse (the problem is recorded).
    fn parsed<T>(&mut self, path: impl AsRef<str>, value: Option<Result<T, String>>) -> Option<T> {
        match value? {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(path, e);
                None
            }
        }
    }

    /// A duration longer than zero.
    fn duration(&mut self, path: &str, value: &Option<String>, default: Duration) -> Duration {
        match self.parsed(path, value.as_deref().map(parse_duration)) {
            Some(d) if d.is_zero() => {
                self.add(path, "must be longer than zero");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    /// A secret written in the file (`{at}.{name}`) or named by an
    /// environment variable (`{at}.{name}_env`), at most one of them; `hint`
    /// ends the problem of each unusable form. `Err` once a problem is recorded.
    fn secret(
        &mut self,
        (at, name): (&str, &str),
        (written, var): (Option<String>, Option<String>),
        env: &dyn Fn(&str) -> Option<String>,
        hint: SecretHints,
    ) -> Result<Option<Secret>, ()> {
        match (written, var) {
            (Some(_), Some(_)) => {
                self.add(
                    format!("{at}.{name}"),
                    format!("give either {name} or {name}_env, not both"),
                );
                Err(())
            }
            (Some(s), None) if s.is_empty() => {
                self.add(format!("{at}.{name}"), format!("is empty{}", hint.empty));
                Err(())
            }
            (Some(s), None) => Ok(Some(Secret::new(s))),
            (None, Some(var)) => match env(&var) {
                Some(s) if !s.is_empty() => Ok(Some(Secret::new(s))),
                _ => {
                    self.add(
                        format!("{at}.{name}_env"),
                        format!(
                            "the environment variable {var} is not set (or is empty){}",
                            hint.unset
                        ),
                    );
                    Err(())
                }
            },
            (None, None) => Ok(None),
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
    let store = mfa::store(&mut p, raw.store.unwrap_or_default(), env);
    let mfa = mfa::mfa(&mut p, raw.mfa, env);
    let apis = apis(&mut p, raw.apis);
    let realms = realms(&mut p, raw.realms);
    let clients = clients(&mut p, raw.clients, &realms, env);
    let default_audience = issuer.as_ref().and_then(|i| i.default_audience.clone());
    let routes = routes(&mut p, raw.routes, default_audience.as_deref());
    let trusted_issuers = trusted_issuers(&mut p, raw.trusted_issuers);
    let attack_protection = super::attack::validate(raw.attack_protection, &mut p.0);
    let passwords = passwords(&mut p, raw.passwords);
    let metrics = ops::metrics(raw.metrics);
    let extensibility =
        extensibility::extensibility(&mut p, raw.extensibility, raw.rules, raw.actions, env);
    audiences_are_not_client_ids(&mut p, &apis, &clients, &routes);

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
            mfa,
            metrics,
            extensibility,
        })
    } else {
        Err(ConfigErrors(p.0))
    }
}
