//! The gate: a request reaches an upstream only with a bearer token valid for
//! its route — signature, issuer, expiry, session, audience and the scopes the
//! route needs for the method. On success the upstream learns who is calling
//! through `X-Auth-*` headers (and any configured claim headers), after every
//! copy the client sent has been removed.
//!
//! Files: `bearer` (the header), `verify` (one JWT), `keys` + `issuers` +
//! `fetch` (who signs, and their keys), `typ` (own access tokens versus ID
//! tokens), `cache` (verified tokens), `claims`,
//! `error` (RFC 6750 responses).

pub mod bearer;
pub mod cache;
pub mod claims;
pub mod error;
mod fetch;
pub mod issuers;
pub mod keys;
pub mod typ;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::clock::SharedClock;
use crate::config::{GateConfig, RouteConfig, RoutePolicy};
use crate::http::hygiene::IDENTITY_PREFIX;
use crate::http::written::Written;
use crate::tasks::{Supervisor, run_blocking};
use cache::{TokenCache, Verified};
use claims::Claims;
pub use error::{GateError, is_grpc};
use issuers::Issuers;
use verify::TokenProblem;

/// `X-Auth-Subject`
pub static X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// `X-Auth-Scope`
pub static X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");
/// `X-Auth-Client`
pub static X_AUTH_CLIENT: HeaderName = HeaderName::from_static("x-auth-client");

/// Tells the gate whether a token's login session was revoked. The session
/// store plugs in here; it must answer from memory (no I/O on the proxy path).
pub trait Revocations: Send + Sync + std::fmt::Debug {
    /// True when tokens with these claims must be refused.
    fn is_revoked(&self, claims: &Claims) -> bool;
}

/// No sessions are ever revoked (no session store).
#[derive(Debug, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {
    fn is_revoked(&self, _claims: &Claims) -> bool {
        false
    }
}

/// The gate.
#[derive(Debug)]
pub struct Gate {
    issuers: Issuers,
    cache: Arc<TokenCache>,
    revocations: Arc<dyn Revocations>,
    clock: SharedClock,
    leeway: i64,
    realm: String,
}

impl Gate {
    /// A gate over `issuers`.
    pub fn new(
        config: &GateConfig,
        issuers: Issuers,
        clock: SharedClock,
        revocations: Arc<dyn Revocations>,
    ) -> Self {
        let leeway = config.leeway.as_secs() as i64;
        Self {
            issuers,
            cache: Arc::new(TokenCache::new(
                config.cache_entries,
                config.cache_bytes,
                leeway,
            )),
            revocations,
            clock,
            leeway,
            realm: config.realm.clone(),
        }
    }

    /// The issuers, e.g. to start their background refresh.
    pub fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// The `realm` of `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Sweep expired cache entries every `every`, under `tasks`, until
    /// shutdown or until the cache is dropped.
    pub fn start_sweeper(&self, tasks: &Supervisor, every: Duration) {
        let cache = Arc::downgrade(&self.cache);
        let clock = Arc::clone(&self.clock);
        tasks.spawn("token cache sweep", async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(cache) = cache.upgrade() else {
                    return Ok(());
                };
                let now = clock.now();
                // The sweep walks the whole map: keep it off the request workers.
                run_blocking(move || cache.sweep(now)).await?;
            }
        });
    }

    /// Check a request against `route`'s policy. `Ok(None)` for public routes.
    pub async fn check(
        &self,
        route: &RouteConfig,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Verified>>, GateError> {
        let RoutePolicy::Protected {
            audience,
            scopes,
            methods,
        } = &route.policy
        else {
            return Ok(None);
        };
        let token = match bearer::unchecked_bytes(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(GateError::MissingToken),
            Err(why) => return Err(GateError::InvalidRequest(why)),
        };
        let now = self.clock.now();
        // Looked up as it came (every key is a b64token): only a token the
        // cache does not know is read as text and checked.
        let verified = match self.cache.get(token, now) {
            Some(hit) => hit,
            None => {
                let token = bearer::token_text(token).map_err(GateError::InvalidRequest)?;
                // Boxed: a miss (a signature check, maybe a key fetch) is
                // rare, and inline its state would size every proxied
                // request's future (docs/benchmarks.md, the handler's size).
                Box::pin(self.verify_and_remember(token, now))
                    .await
                    .map_err(GateError::InvalidToken)?
            }
        };
        let verified = self
            .unless_revoked(verified)
            .map_err(GateError::InvalidToken)?;
        let claims = &verified.claims;
        if !claims.has_audience(audience) {
            return Err(GateError::InvalidToken(TokenProblem::WrongAudience));
        }
        let needed = methods.get(method).unwrap_or(scopes);
        if !claims.has_scopes(needed) {
            return Err(GateError::InsufficientScope(needed.join(" ")));
        }
        if route.require_mfa.applies_to(method) && !claims.did_mfa() {
            return Err(GateError::InsufficientUserAuthentication);
        }
        Ok(Some(verified))
    }

    /// The verified claims of `token`: from the cache, or by verifying it.
    pub async fn verified(&self, token: &str) -> Result<Arc<Verified>, TokenProblem> {
        let now = self.clock.now();
        let verified = match self.cache.get(token.as_bytes(), now) {
            Some(hit) => hit,
            None => self.verify_and_remember(token, now).await?,
        };
        self.unless_revoked(verified)
    }

    /// Verify a token the cache does not hold, and remember it.
    async fn verify_and_remember(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<Verified>, TokenProblem> {
        let (claims, key) = verify::verify(token, &self.issuers, now, self.leeway).await?;
        let verified = Arc::new(Verified::new(claims, token.len()).by_key(key));
        // Only a single b64token is remembered, so that `check` may skip that
        // check for a token it finds here (a compact JWT always is one).
        if bearer::check_token(token).is_ok() {
            self.cache.insert(token, Arc::clone(&verified), now);
        }
        Ok(verified)
    }

    /// `verified`, unless its session or token has been revoked.
    fn unless_revoked(&self, verified: Arc<Verified>) -> Result<Arc<Verified>, TokenProblem> {
        match self.revocations.is_revoked(&verified.claims) {
            true => Err(TokenProblem::Revoked),
            false => Ok(verified),
        }
    }
}

/// Every header name any route's `claims_to_headers` writes, once each.
///
/// A client may send none of them on any route: a public route often shares
/// its upstream with a protected one, which reads the header as a claim.
pub fn claim_headers(routes: &[RouteConfig]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = routes
        .iter()
        .flat_map(|r| r.claims_to_headers.iter().map(|(name, _)| name.clone()))
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// Whether a client header is an identity header, by the name a CGI-style
/// server reads (`read_as`, `http::hygiene::cgi_name`): any `X-Auth-*` and any
/// of `claim_headers` (see [`claim_headers`]), in any spelling that reads as
/// the same name (`X_Auth_Subject` is `X-Auth-Subject` to WSGI, PHP and nginx
/// with `underscores_in_headers on`). The proxy removes them from every
/// request, on public routes too, in the same pass over the names as its
/// other hygiene (`RequestHygiene::apply_and`).
pub fn is_identity(read_as: &str, claim_headers: &[HeaderName]) -> bool {
    read_as.starts_with(IDENTITY_PREFIX) || claim_headers.iter().any(|c| c.as_str() == read_as)
}

/// Tell the upstream who is calling: the identity headers among the fields
/// passgate writes (`headers` holds none of them: see [`is_identity`]),
/// and the token itself gone unless the route forwards it.
pub fn add_identity(
    headers: &mut HeaderMap,
    written: &mut Written,
    route: &RouteConfig,
    verified: &Verified,
) {
    let id = &verified.identity;
    for (name, value) in [
        (&X_AUTH_SUBJECT, &id.subject),
        (&X_AUTH_SCOPE, &id.scope),
        (&X_AUTH_CLIENT, &id.client),
    ] {
        if let Some(v) = value {
            written.push(name, v.clone());
        }
    }
    for (name, path) in &route.claims_to_headers {
        let text = claims::lookup(&verified.claims.raw, path).and_then(claims::header_text);
        if let Some(v) = text.and_then(|t| HeaderValue::from_bytes(t.as_bytes()).ok()) {
            written.set(name, v);
        }
    }
    if !route.forward_authorization {
        headers.remove(AUTHORIZATION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::hygiene::RequestHygiene;

    #[test]
    fn identity_headers_go_in_any_spelling() {
        let mut h = HeaderMap::new();
        for name in [
            "X-Auth-Subject",
            "x_auth_scope",
            "X_AUTH_ANYTHING",
            "x-user-roles",
            "X_User_Roles",
            "x-user-rolesx",
            "x-authz",
        ] {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                h.append(name, HeaderValue::from_static("forged"));
            }
        }
        let claim_headers = [HeaderName::from_static("x-user-roles")];
        RequestHygiene::new(true, &[]).apply_and(&mut h, |n| is_identity(n, &claim_headers));
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-authz", "x-user-rolesx"]);
    }
}
