//! `/.well-known/openid-configuration` and `/.well-known/jwks.json`, rendered
//! once at start (the documents only change with the config or a key rotation,
//! which both need a restart).

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use serde_json::json;

use crate::config::{ClientConfig, IssuerConfig};
use crate::gate::keys::alg_name;
use crate::http::body::ResponseBody;
use crate::http::response::JSON;
use crate::tokens::keys::KeyRing;

/// The OpenID discovery document.
pub fn document(issuer: &IssuerConfig, keys: &KeyRing, clients: &[ClientConfig]) -> bytes::Bytes {
    let base = &issuer.url;
    let mut grants: Vec<&str> = clients
        .iter()
        .flat_map(|c| c.grant_types.iter().map(String::as_str))
        .collect();
    grants.sort_unstable();
    grants.dedup();
    let mut algs: Vec<&str> = keys.keys().iter().map(|k| alg_name(k.alg)).collect();
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

/// A cached JSON document as a response.
pub fn json_response(body: &bytes::Bytes, cache: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body.clone()));
    resp.headers_mut().insert(CONTENT_TYPE, JSON.clone());
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}
