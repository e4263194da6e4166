//! `[[trusted_issuers]]`: other issuers whose tokens routes accept.

use std::str::FromStr;

use http::Uri;
use jsonwebtoken::Algorithm;

use crate::config::jwa::{PUBLIC_KEY_ALGORITHMS, is_loopback_host};

use super::*;

pub(super) fn trusted_issuers(
    p: &mut Problems,
    raw: Vec<RawTrustedIssuer>,
) -> Vec<TrustedIssuerConfig> {
    let mut out: Vec<TrustedIssuerConfig> = Vec::new();
    for (i, t) in raw.into_iter().enumerate() {
        let path = format!("trusted_issuers[{i}]");
        let Some(issuer) = t.issuer.filter(|s| !s.is_empty()) else {
            p.add(
                format!("{path}.issuer"),
                "missing; the exact iss value of its tokens",
            );
            continue;
        };
        if out.iter().any(|o| o.issuer == issuer) {
            p.add(
                format!("{path}.issuer"),
                format!("\"{issuer}\" is listed twice"),
            );
        }
        let given = [
            t.jwks_file.is_some(),
            t.public_key_file.is_some(),
            t.jwks_url.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let source = if given > 1 {
            p.add(
                &path,
                "give at most one key source: jwks_file, public_key_file or jwks_url \
                 (none: keys are found by discovery)",
            );
            None
        } else if let Some(f) = t.jwks_file {
            Some(KeySource::JwksFile(f.into()))
        } else if let Some(f) = t.public_key_file {
            Some(KeySource::PublicKeyFile(f.into()))
        } else if let Some(u) = t.jwks_url {
            fetch_url(p, &format!("{path}.jwks_url"), &u).map(KeySource::JwksUrl)
        } else {
            let base = issuer.trim_end_matches('/');
            fetch_url(
                p,
                &format!("{path}.issuer"),
                &format!("{base}/.well-known/openid-configuration"),
            )
            .map(KeySource::Discovery)
        };
        let algorithms = match t.algorithms {
            None => PUBLIC_KEY_ALGORITHMS.to_vec(),
            Some(list) => {
                let mut algs = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    match Algorithm::from_str(a) {
                        Ok(alg) if PUBLIC_KEY_ALGORITHMS.contains(&alg) => algs.push(alg),
                        Ok(_) => p.add(format!("{path}.algorithms[{j}]"), format!("\"{a}\" is a shared-secret algorithm; only public-key algorithms are accepted")),
                        Err(_) => p.add(format!("{path}.algorithms[{j}]"), format!("\"{a}\" is not a JWS algorithm")),
                    }
                }
                if list.is_empty() {
                    p.add(format!("{path}.algorithms"), "is empty");
                }
                algs
            }
        };
        if let Some(source) = source {
            out.push(TrustedIssuerConfig {
                issuer,
                source,
                algorithms,
            });
        }
    }
    out
}

/// A URL keys are fetched from: https, or http on a loopback host only.
pub(super) fn fetch_url(p: &mut Problems, path: &str, text: &str) -> Option<Uri> {
    let Ok(uri) = text.parse::<Uri>() else {
        p.add(path, format!("\"{text}\" is not a URL"));
        return None;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Some(uri),
        (Some("http"), Some(host)) if is_loopback_host(host) => Some(uri),
        (Some("http"), Some(_)) => {
            p.add(
                path,
                format!(
                    "\"{text}\": keys are fetched over https; plain http is accepted only \
                     for loopback hosts (localhost, 127.0.0.1, [::1])"
                ),
            );
            None
        }
        _ => {
            p.add(path, format!("\"{text}\" is not an http(s) URL"));
            None
        }
    }
}
