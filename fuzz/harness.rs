//! The bodies of the fuzz targets, one function per target, shared by the
//! libFuzzer binaries (`fuzz/fuzz_targets/*.rs`, nightly) and the corpus
//! replay (`tests/fuzz_corpus.rs`, stable), so CI replays every input through
//! exactly the code the fuzzer ran. Each function takes arbitrary bytes and
//! must never panic; the path target also checks what normalising promises.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey};
use passgate::config::Config;
use passgate::gate::bearer::{self, Credential};
use passgate::gate::issuers::{IssuerKeys, Issuers};
use passgate::gate::keys::KeySet;
use passgate::gate::typ::AccessTyp;
use passgate::gate::verify::verify;
use passgate::http::path::{normalize, without_parameters};
use passgate::oauth::request::parse_body;

/// A target's body: arbitrary bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and body.
pub const TARGETS: [(&str, Target); 4] = [
    ("path", path),
    ("bearer_jwt", bearer_jwt),
    ("token_request", token_request),
    ("config", config),
];

/// Request-path normalisation: never panics; a normalised path is absolute,
/// has no empty or dot segments, and normalising it again changes nothing.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let _ = without_parameters(raw);
    let Ok(normal) = normalize(raw) else {
        return;
    };
    assert!(normal.starts_with('/'), "{raw:?} -> {normal:?}");
    assert!(!normal.contains("//"), "{raw:?} -> {normal:?}");
    assert!(
        !normal.split('/').any(|s| s == "." || s == ".."),
        "{raw:?} -> {normal:?}"
    );
    assert_eq!(normalize(&normal).as_deref(), Ok(&*normal), "{raw:?}");
    let _ = without_parameters(&normal);
}

/// The time every token is checked at.
const NOW: i64 = 1_800_000_000;
/// passgate's own issuer (with the `typ` rule) and a trusted one.
const OWN: &str = "https://passgate.fuzz/";
const TRUSTED: &str = "https://trusted.fuzz/";

/// A P-256 key pair made for fuzzing only; it signs nothing else.
const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwi7sIyQQDrXDr4/i
SH83X3M/j/FyLx0Umdv3np6ovu6hRANCAAQy7OU8vo3Jp0KgpdXCNzf5Si7wNWaj
XRP6mF4nxdNWw/oVu+GvCoEoHm/BmFBaoUgDLdq+fqcgAqRrIU4kvdRl
-----END PRIVATE KEY-----
";
const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMuzlPL6NyadCoKXVwjc3+Uou8DVm
o10T+pheJ8XTVsP6FbvhrwqBKB5vwZhQWqFIAy3avn6nIAKkayFOJL3UZQ==
-----END PUBLIC KEY-----
";

struct Gate {
    issuers: Issuers,
    signer: EncodingKey,
    runtime: tokio::runtime::Runtime,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        passgate::tls::install_crypto_providers();
        let keys = || {
            KeySet::from_public_pem(PUBLIC_PEM.as_bytes(), &[Algorithm::ES256])
                .unwrap_or_else(|e| panic!("the fuzz key: {e}"))
        };
        let mut issuers = Issuers::default();
        issuers.insert(
            IssuerKeys::fixed(OWN.into(), keys()).with_access_typ(AccessTyp {
                cutover: NOW - 60,
                legacy_until: NOW + 3600,
            }),
        );
        issuers.insert(IssuerKeys::fixed(TRUSTED.into(), keys()));
        Gate {
            issuers,
            signer: EncodingKey::from_ec_pem(PRIVATE_PEM.as_bytes())
                .unwrap_or_else(|e| panic!("the fuzz key: {e}")),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("a runtime: {e}")),
        }
    })
}

fn check_token(gate: &Gate, token: &str) {
    let _ = gate.runtime.block_on(verify(token, &gate.issuers, NOW, 60));
}

/// The bearer credential and the JWT behind it. The first byte picks how the
/// rest is read: `0` a raw `Authorization` value (also verified as a bare
/// token); `1` and `2` the lines `header JSON \n payload JSON \n signature`,
/// base64url-encoded into a token, with `2` signing it with the fuzz key so
/// the claims and `typ` checks after the signature are reached too.
pub fn bearer_jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let gate = gate();
    let value = match mode % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check_token(gate, text);
            }
            rest.to_vec()
        }
        signed => {
            let mut lines = rest.splitn(3, |&b| b == b'\n');
            let header = URL_SAFE_NO_PAD.encode(lines.next().unwrap_or_default());
            let payload = URL_SAFE_NO_PAD.encode(lines.next().unwrap_or_default());
            let message = format!("{header}.{payload}");
            let sig = if signed == 2 {
                jsonwebtoken::crypto::sign(message.as_bytes(), &gate.signer, Algorithm::ES256)
                    .unwrap_or_default()
            } else {
                URL_SAFE_NO_PAD.encode(lines.next().unwrap_or_default())
            };
            format!("Bearer {message}.{sig}").into_bytes()
        }
    };
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    if let Credential::Token(token) = bearer::credential(&headers) {
        check_token(gate, token);
    }
}

/// The token-endpoint body. The first byte picks the `Content-Type`: form,
/// JSON, absent, or (`3`) the rest's first line, the body being what follows.
pub fn token_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let body = match mode % 4 {
        0 => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            rest
        }
        1 => {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            rest
        }
        2 => rest,
        _ => {
            let (line, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            if let Ok(v) = HeaderValue::from_bytes(line) {
                headers.insert(CONTENT_TYPE, v);
            }
            body
        }
    };
    if let Ok(params) = parse_body(&headers, body) {
        for name in ["grant_type", "username", "password", "client_id", "scope"] {
            let _ = params.require(name);
        }
    }
}

/// The config file: parse and validate (no environment), and render the
/// problems as the operator would see them.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(problems) = Config::from_toml_with_env(text, &|_| None) {
        let _ = problems.to_string();
    }
}
