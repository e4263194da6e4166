//! Rules about signing algorithms and key URLs that the config check and
//! the gate must agree on, written once.

use http::Uri;
use jsonwebtoken::Algorithm;

/// Every public-key algorithm passgate verifies; a trusted issuer that lists
/// none accepts these. Shared-secret (`HS*`) algorithms are never accepted.
/// The RSA ones come first, so [`RSA_ALGORITHMS`] is a prefix of this list.
pub const PUBLIC_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The RSA algorithms, PKCS#1 v1.5 and PSS: what an RSA key can verify.
pub const RSA_ALGORITHMS: &[Algorithm] = PUBLIC_KEY_ALGORITHMS.split_at(6).0;

/// The JWS name of an algorithm, as written in a token header.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// True for `localhost` and loopback addresses (`127.0.0.1`, `[::1]`).
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Keys are fetched over https, or plain http from a loopback host only.
pub fn key_url_allowed(uri: &Uri) -> bool {
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => is_loopback_host(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_is_a_subset_of_the_public_key_algorithms() {
        assert_eq!(RSA_ALGORITHMS.len(), 6);
        assert!(
            RSA_ALGORITHMS
                .iter()
                .all(|a| alg_name(*a).starts_with(['R', 'P']))
        );
        assert!(
            RSA_ALGORITHMS
                .iter()
                .all(|a| PUBLIC_KEY_ALGORITHMS.contains(a))
        );
        assert!(!PUBLIC_KEY_ALGORITHMS.contains(&Algorithm::HS256));
    }

    #[test]
    fn key_urls_must_be_https_or_loopback() {
        let ok = |u: &str| key_url_allowed(&u.parse().unwrap_or_else(|e| panic!("{u}: {e}")));
        assert!(ok("https://tenant.example.com/.well-known/jwks.json"));
        assert!(ok("http://127.0.0.1:8080/jwks.json"));
        assert!(ok("http://[::1]:8080/jwks.json"));
        assert!(ok("http://localhost/jwks.json"));
        assert!(!ok("http://tenant.example.com/jwks.json"));
        assert!(!ok("http://10.0.0.1/jwks.json"));
        assert!(!ok("/relative/jwks.json"));
        assert!(!ok("ftp://127.0.0.1/jwks.json"));
    }
}
