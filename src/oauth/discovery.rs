//! `/.well-known/openid-configuration` and `/.well-known/jwks.json`. Both
//! follow the live key ring: the JWKS is rendered once per ring
//! (`tokens/ring.rs`), the discovery document (whose algorithms come from
//! the keys) once per ring and config generation, on its first request.
//! Clients may cache both for [`JWKS_MAX_AGE`], which a rotated key waits
//! out before it signs.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use serde_json::json;

use crate::config::{ClientConfig, IssuerConfig};
use crate::gate::keys::alg_name;
use crate::http::body::ResponseBody;
use crate::http::response::JSON;
use crate::tokens::ring::{JWKS_MAX_AGE, KeyRing};

/// The OpenID discovery document.
pub fn document(issuer: &IssuerConfig, keys: &KeyRing, clients: &[ClientConfig]) -> bytes::Bytes {
    let base = &issuer.url;
    let mut grants: Vec<&str> = clients
        .iter()
        .flat_map(|c| c.grant_types.iter().map(String::as_str))
        .collect();
    grants.sort_unstable();
    grants.dedup();
    let mut algs: Vec<&str> = keys.keys().iter().map(|k| alg_name(k.key.alg)).collect();
    algs.sort_unstable();
    algs.dedup();
    let doc = json!({
        "issuer": base,
        "token_endpoint": format!("{base}oauth/token"),
        "jwks_uri": format!("{base}.well-known/jwks.json"),
        "userinfo_endpoint": format!("{base}userinfo"),
        "revocation_endpoint": format!("{base}oauth/revoke"),
        "mfa_challenge_endpoint": format!("{base}mfa/challenge"),
        "grant_types_supported": grants,
        "response_types_supported": ["token", "id_token"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "nickname", "sub", "updated_at"],
    });
    serde_json::to_vec(&doc).unwrap_or_default().into()
}

/// The discovery document of one config generation, rendered again when
/// the key ring changes. Reading it takes no lock.
#[derive(Debug, Default)]
pub struct Discovery {
    rendered: ArcSwapOption<(Arc<KeyRing>, bytes::Bytes)>,
}

impl Discovery {
    /// The document for `ring` (rendered by `render` unless it already was).
    pub fn for_ring(
        &self,
        ring: Arc<KeyRing>,
        render: impl FnOnce(&KeyRing) -> bytes::Bytes,
    ) -> bytes::Bytes {
        if let Some(done) = &*self.rendered.load()
            && Arc::ptr_eq(&done.0, &ring)
        {
            return done.1.clone();
        }
        let doc = render(&ring);
        self.rendered.store(Some(Arc::new((ring, doc.clone()))));
        doc
    }
}

/// `Cache-Control` of the discovery and JWKS answers: `public, max-age=` [`JWKS_MAX_AGE`].
pub fn cache_control() -> HeaderValue {
    let text = format!("public, max-age={}", JWKS_MAX_AGE.as_secs());
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("public, max-age=300"))
}

/// A cached JSON document as a response.
pub fn json_response(body: bytes::Bytes, cache: &HeaderValue) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    resp.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    resp.headers_mut().insert(CACHE_CONTROL, cache.clone());
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tokens::key_source::new_key;

    #[test]
    fn the_document_is_rendered_once_per_ring() {
        crate::tls::install_crypto_providers();
        let ring = |alg| {
            let k = new_key(alg, 1, 1).unwrap();
            Arc::new(KeyRing::build(&[k], None).unwrap())
        };
        let (a, b) = (
            ring(jsonwebtoken::Algorithm::ES256),
            ring(jsonwebtoken::Algorithm::EdDSA),
        );
        let d = Discovery::default();
        let mut renders = 0;
        let mut get = |r: &Arc<KeyRing>| {
            d.for_ring(Arc::clone(r), |r| {
                renders += 1;
                alg_name(r.keys()[0].key.alg).as_bytes().to_vec().into()
            })
        };
        assert_eq!(get(&a), "ES256");
        assert_eq!(get(&a), "ES256");
        assert_eq!(get(&b), "EdDSA");
        assert_eq!(renders, 2);
        assert_eq!(cache_control(), "public, max-age=300");
    }
}
