//! The gate end to end (issue 3): bearer tokens minted here with keys the tests
//! generate, published through a JWKS file or a JWKS server the test runs, and
//! checked by a real gateway over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use passgate::clock::{Clock, ManualClock, SharedClock, SystemClock};
use passgate::tokens::keys::{KeyRing, SigningKey, generate_into};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ISS: &str = "https://tenant.example.com/";
const PEM_ISS: &str = "https://pem.example.com/";
const AUD: &str = "https://api.example.com";
const ROLES: &str = "https://example.com/roles";

// === tokens ===

fn now() -> i64 {
    SystemClock.now()
}

/// Claims valid at `now` for the `/api/` route, with `extra` merged in
/// (a `null` removes a claim). Every call gets its own `jti`, so no two
/// tokens are equal and each one is verified rather than found in the cache.
fn claims_at(now: i64, extra: Value) -> Value {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let mut c = json!({
        "iss": ISS,
        "sub": "user-1",
        "aud": AUD,
        "azp": "client-1",
        "scope": "read:items",
        "iat": now,
        "exp": now + 300,
        "jti": format!("t{}", JTI.fetch_add(1, Ordering::Relaxed)),
    });
    let obj = c.as_object_mut().unwrap();
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if v.is_null() {
                obj.remove(&k);
            } else {
                obj.insert(k, v);
            }
        }
    }
    c
}

fn claims(extra: Value) -> Value {
    claims_at(now(), extra)
}

/// Signed by `key`, with its `kid`.
fn mint(key: &SigningKey, claims: &Value) -> String {
    mint_kid(key, Some(&key.kid), claims)
}

/// Signed by `key`, with any `kid` (or none).
fn mint_kid(key: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A hand-built `alg: none` token (empty signature).
fn unsigned(kid: Option<&str>, claims: &Value) -> String {
    let header = match kid {
        Some(kid) => json!({"alg": "none", "typ": "JWT", "kid": kid}),
        None => json!({"alg": "none", "typ": "JWT"}),
    };
    format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()))
}

/// HMAC-signed with `secret`, naming `kid`.
fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// `token` with its payload replaced (the signature kept).
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2])
}

/// The SubjectPublicKeyInfo DER of an RSA signing key.
fn rsa_public_der(key: &SigningKey) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let PrivateKeyDer::Pkcs8(der) =
        PrivateKeyDer::from_pem_file(key.path.as_ref().unwrap()).unwrap()
    else {
        panic!("not PKCS#8")
    };
    let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    kp.public_key().as_der().unwrap().as_ref().to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// The keys of a made-up tenant: one per algorithm, published; a rogue RSA
/// key that is not; and a key published only as a PEM file for `PEM_ISS`.
struct Tenant {
    rs: SigningKey,
    es: SigningKey,
    ed: SigningKey,
    rogue: SigningKey,
    pem_key: SigningKey,
}

impl Tenant {
    fn generate(dir: &Path) -> Tenant {
        passgate::tls::install_crypto_providers();
        let keys = dir.join("tenant-keys");
        Tenant {
            rs: generate_into(&keys.join("rs"), Algorithm::RS256).unwrap(),
            es: generate_into(&keys.join("es"), Algorithm::ES256).unwrap(),
            ed: generate_into(&keys.join("ed"), Algorithm::EdDSA).unwrap(),
            rogue: generate_into(&keys.join("rogue"), Algorithm::RS256).unwrap(),
            pem_key: generate_into(&keys.join("pem"), Algorithm::RS256).unwrap(),
        }
    }

    /// Write `{dir}/jwks.json` (rs, es, ed) and `{dir}/pem-issuer.pem`.
    fn publish(&self, dir: &Path) {
        let doc = jwks(&[&self.rs, &self.es, &self.ed]);
        std::fs::write(dir.join("jwks.json"), doc.to_string()).unwrap();
        let public = pem("PUBLIC KEY", &rsa_public_der(&self.pem_key));
        std::fs::write(dir.join("pem-issuer.pem"), public).unwrap();
    }
}

// === config ===

const GATE: &str = "[gate]\nleeway = \"30s\"\n";

fn file_issuers() -> String {
    format!(
        "[[trusted_issuers]]\nissuer = \"{ISS}\"\njwks_file = \"{{dir}}/jwks.json\"\n\n\
         [[trusted_issuers]]\nissuer = \"{PEM_ISS}\"\npublic_key_file = \"{{dir}}/pem-issuer.pem\"\n"
    )
}

fn url_issuer(url: &str) -> String {
    format!("[[trusted_issuers]]\nissuer = \"{ISS}\"\njwks_url = \"{url}\"\n")
}

/// `/api/` (read:items, POST needs write:items, a roles claim header),
/// `/admin/` (admin), `/private/` (no Authorization upstream), `/public/`.
fn routes(upstream: &str) -> String {
    format!(
        r#"[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "{AUD}"
scopes = ["read:items"]
[routes.methods]
POST = ["write:items"]
[routes.claims_to_headers]
"X-User-Roles" = "{ROLES}"

[[routes]]
prefix = "/admin/"
upstream = "{upstream}"
audience = "{AUD}"
scopes = ["admin"]

[[routes]]
prefix = "/private/"
upstream = "{upstream}"
audience = "{AUD}"
scopes = ["read:items"]
forward_authorization = false

[[routes]]
prefix = "/public/"
upstream = "{upstream}"
public = true
"#
    )
}

// === cases ===

enum Expect {
    /// Forwarded; the upstream saw each header with exactly this value (or not at all).
    Pass(Vec<(&'static str, Option<String>)>),
    /// Refused with `status`; `error` is the RFC 6750 code ("" for a bare
    /// challenge) and `param` must appear in `WWW-Authenticate`.
    Refuse(u16, &'static str, &'static str),
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn seen(name: &'static str, value: &str) -> (&'static str, Option<String>) {
    (name, Some(value.to_string()))
}

fn unseen(name: &'static str) -> (&'static str, Option<String>) {
    (name, None)
}

fn get(
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    expect: Expect,
) -> Case {
    Case {
        name,
        method: Method::GET,
        path,
        headers,
        expect,
    }
}

fn invalid(description: &'static str) -> Expect {
    Expect::Refuse(401, "invalid_token", description)
}

fn identity(sub: &str, scope: &str, client: &str) -> Vec<(&'static str, Option<String>)> {
    vec![
        seen("x-auth-subject", sub),
        seen("x-auth-scope", scope),
        seen("x-auth-client", client),
    ]
}

async fn run(client: &TestClient, upstream: &Upstream, case: &Case) {
    let label = format!("{} over {:?}", case.name, client.proto);
    let mut req = client.req(case.method.clone(), case.path);
    for (k, v) in &case.headers {
        req = req.header(*k, v.as_str());
    }
    let before = upstream.requests().len();
    let reply = client.send(req.body(empty()).unwrap()).await;
    let after = upstream.requests().len();
    match &case.expect {
        Expect::Pass(headers) => {
            assert_eq!(reply.status, StatusCode::OK, "{label}: {:?}", reply.body);
            assert_eq!(after, before + 1, "{label}: forwarded once");
            let got = upstream.last();
            for (name, want) in headers {
                let values: Vec<&str> = got
                    .headers
                    .get_all(*name)
                    .iter()
                    .map(|v| v.to_str().unwrap())
                    .collect();
                match want {
                    Some(want) => assert_eq!(values, [want.as_str()], "{label}: upstream {name}"),
                    None => assert!(
                        values.is_empty(),
                        "{label}: upstream got {name}: {values:?}"
                    ),
                }
            }
        }
        Expect::Refuse(status, error, param) => {
            assert_eq!(reply.status.as_u16(), *status, "{label}: {:?}", reply.body);
            assert_eq!(after, before, "{label}: nothing may reach the upstream");
            let challenge = reply
                .header("www-authenticate")
                .unwrap_or_else(|| panic!("{label}: no WWW-Authenticate"));
            if error.is_empty() {
                assert_eq!(challenge, r#"Bearer realm="passgate""#, "{label}");
            } else {
                let start = format!(r#"Bearer realm="passgate", error="{error}""#);
                assert!(challenge.starts_with(&start), "{label}: {challenge}");
                assert!(
                    challenge.contains(param),
                    "{label}: {challenge} lacks {param}"
                );
                assert_eq!(reply.json()["error"], *error, "{label}");
            }
            assert_eq!(reply.header("cache-control"), Some("no-store"), "{label}");
        }
    }
}

/// Every case, with tokens minted afresh (so each protocol verifies its own).
fn cases(t: &Tenant) -> Vec<Case> {
    let now = now();
    let ok = mint(&t.rs, &claims(json!({})));
    let ok_token = ok.clone();
    let pem_secret = pem("PUBLIC KEY", &rsa_public_der(&t.rs));
    let der_secret = rsa_public_der(&t.rs);
    let roles = mint(
        &t.rs,
        &claims(json!({ ROLES: ["admin", "ops"], "azp": null })),
    );
    vec![
        get(
            "valid RS256",
            "/api/items",
            vec![bearer(&ok)],
            Expect::Pass({
                let mut h = identity("user-1", "read:items", "client-1");
                h.push(seen("authorization", &format!("Bearer {ok_token}")));
                h
            }),
        ),
        get(
            "valid ES256",
            "/api/items",
            vec![bearer(&mint(
                &t.es,
                &claims(json!({"sub": "user-es", "azp": "client-es", "scope": "read:items extra"})),
            ))],
            Expect::Pass(identity("user-es", "read:items extra", "client-es")),
        ),
        get(
            "valid EdDSA",
            "/api/items",
            vec![bearer(&mint(
                &t.ed,
                &claims(json!({"sub": "user-ed", "azp": null, "client_id": "client-ed"})),
            ))],
            Expect::Pass(identity("user-ed", "read:items", "client-ed")),
        ),
        get(
            "PEM-file issuer, token without kid",
            "/api/items",
            vec![bearer(&mint_kid(
                &t.pem_key,
                None,
                &claims(json!({"iss": PEM_ISS, "sub": "user-pem"})),
            ))],
            Expect::Pass(identity("user-pem", "read:items", "client-1")),
        ),
        get(
            "missing token",
            "/api/items",
            vec![],
            Expect::Refuse(401, "", ""),
        ),
        get(
            "Basic credentials are no bearer token",
            "/api/items",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            Expect::Refuse(401, "", ""),
        ),
        get(
            "two Authorization headers",
            "/api/items",
            vec![bearer(&ok), bearer(&ok)],
            Expect::Refuse(400, "invalid_request", "more than one Authorization header"),
        ),
        // The gate skips the b64token check for a token it has cached, so a
        // cached token with more after it must still be refused as malformed.
        get(
            "a cached token and a second word",
            "/api/items",
            vec![bearer(&format!("{ok} x"))],
            Expect::Refuse(
                400,
                "invalid_request",
                "the Bearer credential is not a single token",
            ),
        ),
        get(
            "a cached token and a comma",
            "/api/items",
            vec![bearer(&format!("{ok},"))],
            Expect::Refuse(
                400,
                "invalid_request",
                "the Bearer credential is not a single token",
            ),
        ),
        get(
            "malformed token",
            "/api/items",
            vec![bearer("not-a-jwt")],
            invalid(r#"error_description="the token is malformed""#),
        ),
        get(
            "three parts, none of them JSON",
            "/api/items",
            vec![bearer("abc.def.ghi")],
            invalid(r#"error_description="the token is malformed""#),
        ),
        get(
            "expired",
            "/api/items",
            vec![bearer(&mint(&t.rs, &claims(json!({"exp": now - 120}))))],
            invalid(r#"error_description="the token has expired""#),
        ),
        get(
            "expired within the leeway",
            "/api/items",
            vec![bearer(&mint(&t.rs, &claims(json!({"exp": now - 10}))))],
            Expect::Pass(vec![seen("x-auth-subject", "user-1")]),
        ),
        get(
            "not valid yet",
            "/api/items",
            vec![bearer(&mint(&t.rs, &claims(json!({"nbf": now + 120}))))],
            invalid(r#"error_description="the token is not valid yet""#),
        ),
        get(
            "nbf within the leeway",
            "/api/items",
            vec![bearer(&mint(&t.rs, &claims(json!({"nbf": now + 10}))))],
            Expect::Pass(vec![seen("x-auth-subject", "user-1")]),
        ),
        get(
            "wrong issuer",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"iss": "https://evil.example.com/"})),
            ))],
            invalid(r#"error_description="the token's issuer is not trusted""#),
        ),
        get(
            "issuer without its trailing slash",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"iss": "https://tenant.example.com"})),
            ))],
            invalid(r#"error_description="the token's issuer is not trusted""#),
        ),
        get(
            "wrong audience",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"aud": "https://other.example.com"})),
            ))],
            invalid(r#"error_description="the token is not valid for this audience""#),
        ),
        get(
            "no audience",
            "/api/items",
            vec![bearer(&mint(&t.rs, &claims(json!({"aud": null}))))],
            invalid(r#"error_description="the token is not valid for this audience""#),
        ),
        get(
            "audience array containing the route's",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"aud": ["https://other.example.com", AUD]})),
            ))],
            Expect::Pass(vec![seen("x-auth-subject", "user-1")]),
        ),
        get(
            "signed by a key not in the JWKS, with a known kid",
            "/api/items",
            vec![bearer(&mint_kid(
                &t.rogue,
                Some(&t.rs.kid),
                &claims(json!({})),
            ))],
            invalid(r#"error_description="the token's signature is invalid""#),
        ),
        get(
            "payload changed after signing",
            "/api/items",
            vec![bearer(&with_payload(
                &ok,
                &claims(json!({"sub": "someone-else", "scope": "read:items admin"})),
            ))],
            invalid(r#"error_description="the token's signature is invalid""#),
        ),
        get(
            "unknown kid",
            "/api/items",
            vec![bearer(&mint_kid(
                &t.rogue,
                Some("no-such-kid"),
                &claims(json!({})),
            ))],
            invalid(r#"error_description="the token's signing key is unknown""#),
        ),
        get(
            "alg none with the RSA key's kid",
            "/api/items",
            vec![bearer(&unsigned(Some(&t.rs.kid), &claims(json!({}))))],
            invalid(r#"error_description="the token's algorithm is not allowed""#),
        ),
        get(
            "alg none without kid",
            "/api/items",
            vec![bearer(&unsigned(None, &claims(json!({}))))],
            invalid(r#"error_description="the token's algorithm is not allowed""#),
        ),
        get(
            "HS256 keyed with the RSA public key PEM",
            "/api/items",
            vec![bearer(&hs256(
                pem_secret.as_bytes(),
                &t.rs.kid,
                &claims(json!({})),
            ))],
            invalid(r#"error_description="the token's algorithm is not allowed""#),
        ),
        get(
            "HS256 keyed with the RSA public key DER",
            "/api/items",
            vec![bearer(&hs256(&der_secret, &t.rs.kid, &claims(json!({}))))],
            invalid(r#"error_description="the token's algorithm is not allowed""#),
        ),
        get(
            "ES256 token naming the RSA key's kid",
            "/api/items",
            vec![bearer(&mint_kid(
                &t.es,
                Some(&t.rs.kid),
                &claims(json!({})),
            ))],
            invalid(r#"error_description="the token's algorithm is not allowed""#),
        ),
        get(
            "GET with read:items",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "read:items"})),
            ))],
            Expect::Pass(vec![seen("x-auth-scope", "read:items")]),
        ),
        Case {
            name: "POST with only read:items",
            method: Method::POST,
            path: "/api/items",
            headers: vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "read:items"})),
            ))],
            expect: Expect::Refuse(403, "insufficient_scope", r#"scope="write:items""#),
        },
        Case {
            name: "POST with write:items",
            method: Method::POST,
            path: "/api/items",
            headers: vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "write:items"})),
            ))],
            expect: Expect::Pass(vec![seen("x-auth-scope", "write:items")]),
        },
        get(
            "GET with only write:items",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "write:items"})),
            ))],
            Expect::Refuse(403, "insufficient_scope", r#"scope="read:items""#),
        ),
        get(
            "scp array",
            "/api/items",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": null, "scp": ["read:items", "write:items"]})),
            ))],
            Expect::Pass(vec![seen("x-auth-scope", "read:items write:items")]),
        ),
        get(
            "superadmin does not satisfy admin",
            "/admin/panel",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "superadmin read:items admins"})),
            ))],
            Expect::Refuse(403, "insufficient_scope", r#"scope="admin""#),
        ),
        get(
            "admin satisfies admin",
            "/admin/panel",
            vec![bearer(&mint(
                &t.rs,
                &claims(json!({"scope": "superadmin admin"})),
            ))],
            Expect::Pass(vec![seen("x-auth-scope", "superadmin admin")]),
        ),
        get(
            "public route needs no token; spoofed identity is stripped",
            "/public/page",
            vec![
                ("x-auth-subject", "admin".into()),
                ("x-auth-scope", "admin".into()),
                ("x-auth-client", "evil".into()),
                ("x-auth-anything", "x".into()),
            ],
            Expect::Pass(vec![
                unseen("x-auth-subject"),
                unseen("x-auth-scope"),
                unseen("x-auth-client"),
                unseen("x-auth-anything"),
            ]),
        ),
        get(
            "spoofed identity on a protected route is replaced or stripped",
            "/api/items",
            vec![
                bearer(&mint(&t.rs, &claims(json!({"azp": null})))),
                ("x-auth-subject", "admin".into()),
                ("X-Auth-Client", "evil".into()),
                ("x-auth-anything", "x".into()),
                ("x-user-roles", "root".into()),
            ],
            Expect::Pass(vec![
                seen("x-auth-subject", "user-1"),
                seen("x-auth-scope", "read:items"),
                unseen("x-auth-client"),
                unseen("x-auth-anything"),
                unseen("x-user-roles"),
            ]),
        ),
        get(
            "namespaced roles claim to a header",
            "/api/items",
            vec![bearer(&roles), ("x-user-roles", "root".into())],
            Expect::Pass(vec![
                seen("x-user-roles", "admin,ops"),
                unseen("x-auth-client"),
            ]),
        ),
        get(
            "forward_authorization = false",
            "/private/x",
            vec![bearer(&ok)],
            Expect::Pass(vec![
                seen("x-auth-subject", "user-1"),
                unseen("authorization"),
            ]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_table_with_a_jwks_file() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::generate(dir.path());
    tenant.publish(dir.path());
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml(GATE)
        .toml(&file_issuers())
        .toml(&routes(&upstream.url))
        .start()
        .await;
    for proto in BOTH {
        let client = gw.client(proto);
        for case in cases(&tenant) {
            run(&client, &upstream, &case).await;
        }
    }
    gw.shutdown().await;
}

// === JWKS over HTTP ===

/// A JWKS endpoint at `/jwks.json` that counts its fetches and can go down;
/// it also serves an OpenID discovery document naming itself as `issuer`.
struct JwksServer {
    url: String,
    issuer: String,
    doc: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

impl JwksServer {
    async fn start(doc: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let doc = Arc::new(Mutex::new(doc));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = oneshot::channel::<()>();
        let (d, f) = (Arc::clone(&doc), Arc::clone(&fetches));
        tokio::spawn(async move {
            // Dropped on stop: that aborts open (pooled) connections too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let tcp = tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => continue,
                    },
                };
                let (d, f) = (Arc::clone(&d), Arc::clone(&f));
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (d, f) = (Arc::clone(&d), Arc::clone(&f));
                        async move {
                            let resp = if req.uri().path() == "/.well-known/openid-configuration" {
                                let doc = json!({
                                    "issuer": format!("http://{addr}/"),
                                    "jwks_uri": format!("http://{addr}/jwks.json"),
                                });
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(doc.to_string())))
                                    .unwrap()
                            } else if req.uri().path() == "/jwks.json" {
                                f.fetch_add(1, Ordering::SeqCst);
                                let body = d.lock().unwrap().to_string();
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap()
                            } else {
                                Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap()
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            issuer: format!("http://{addr}/"),
            doc,
            fetches,
            stop: Some(tx),
        }
    }

    fn set(&self, doc: Value) {
        *self.doc.lock().unwrap() = doc;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Stop listening and drop every open connection.
    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn status_with(gw: &TestGateway, proto: Proto, token: &str) -> Reply {
    gw.client(proto)
        .get_with(
            "/api/items",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::generate(dir.path());
    let jwks_server = JwksServer::start(jwks(&[&tenant.rs])).await;
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml("[gate]\nleeway = \"30s\"\njwks_min_refresh = \"1s\"\n")
        .toml(&url_issuer(&jwks_server.url))
        .toml(&routes(&upstream.url))
        .start()
        .await;
    assert_eq!(jwks_server.fetches(), 1, "fetched once at start");
    for proto in BOTH {
        let reply = status_with(&gw, proto, &mint(&tenant.rs, &claims(json!({})))).await;
        assert_eq!(reply.status, 200, "{proto:?}: {:?}", reply.body);
    }
    assert_eq!(jwks_server.fetches(), 1, "known keys need no fetch");

    // The ES256 key is published now, but the start fetch was less than
    // jwks_min_refresh ago: no refetch yet.
    jwks_server.set(jwks(&[&tenant.rs, &tenant.es]));
    let es_token = mint(&tenant.es, &claims(json!({})));
    let reply = status_with(&gw, Proto::H1, &es_token).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("signing key is unknown")
    );
    assert_eq!(jwks_server.fetches(), 1, "negative cache right after start");

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Tokens that could never verify (alg none, HS256) must not spend the refetch.
    let junk = unsigned(Some("junk-kid"), &claims(json!({})));
    assert_eq!(status_with(&gw, Proto::H1, &junk).await.status, 401);
    let junk = hs256(b"secret", "junk-kid", &claims(json!({})));
    assert_eq!(status_with(&gw, Proto::H1, &junk).await.status, 401);
    assert_eq!(jwks_server.fetches(), 1, "junk tokens trigger no fetch");

    // Past the interval an unknown kid refetches and finds the key.
    let reply = status_with(&gw, Proto::H2, &es_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(jwks_server.fetches(), 2, "one refetch for the unknown kid");
    let reply = status_with(&gw, Proto::H1, &mint(&tenant.es, &claims(json!({})))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(jwks_server.fetches(), 2);

    // A second unknown kid within the interval does not fetch again...
    jwks_server.set(jwks(&[&tenant.rs, &tenant.es, &tenant.ed]));
    let ed_token = mint(&tenant.ed, &claims(json!({})));
    for proto in BOTH {
        let reply = status_with(&gw, proto, &ed_token).await;
        assert_eq!(reply.status, 401, "{proto:?}: {:?}", reply.body);
    }
    assert_eq!(
        jwks_server.fetches(),
        2,
        "negative cache within jwks_min_refresh"
    );

    // ...but does once the interval has passed.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let reply = status_with(&gw, Proto::H2, &ed_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(jwks_server.fetches(), 3);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_when_the_jwks_server_goes_down() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::generate(dir.path());
    let mut jwks_server = JwksServer::start(jwks(&[&tenant.rs])).await;
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml("[gate]\njwks_refresh = \"1s\"\njwks_min_refresh = \"1s\"\n")
        .toml(&url_issuer(&jwks_server.url))
        .toml(&routes(&upstream.url))
        .start()
        .await;
    let reply = status_with(&gw, Proto::H1, &mint(&tenant.rs, &claims(json!({})))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    // The background refresh runs every jwks_refresh.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while jwks_server.fetches() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    jwks_server.stop();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // Fresh tokens (not in the cache) still verify against the stale keys.
    for proto in BOTH {
        let reply = status_with(&gw, proto, &mint(&tenant.rs, &claims(json!({})))).await;
        assert_eq!(reply.status, 200, "{proto:?}: {:?}", reply.body);
        let reply = status_with(&gw, proto, &mint(&tenant.es, &claims(json!({})))).await;
        assert_eq!(reply.status, 401, "{proto:?}: unknown kid, server down");
    }
    // Both kinds of fetch are counted, by issuer.
    let (_, metrics) = admin_text(gw.admin_addr, "/metrics").await;
    let series = |result: &str| {
        format!("passgate_jwks_fetches_total{{issuer=\"{ISS}\",result=\"{result}\"}}")
    };
    assert!(metric_value(&metrics, &series("ok")) >= 2.0, "{metrics}");
    assert!(metric_value(&metrics, &series("error")) >= 1.0, "{metrics}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_found_through_openid_discovery() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::generate(dir.path());
    let jwks_server = JwksServer::start(jwks(&[&tenant.es])).await;
    let iss = jwks_server.issuer.clone();
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml(GATE)
        .toml(&format!("[[trusted_issuers]]\nissuer = \"{iss}\"\n"))
        .toml(&routes(&upstream.url))
        .start()
        .await;
    assert_eq!(jwks_server.fetches(), 1);
    for proto in BOTH {
        let token = mint(&tenant.es, &claims(json!({"iss": iss, "sub": "disco"})));
        let reply = status_with(&gw, proto, &token).await;
        assert_eq!(reply.status, 200, "{proto:?}: {:?}", reply.body);
        assert_eq!(upstream.last().headers["x-auth-subject"], "disco");
        // The tenant's issuer is not this one.
        let reply = status_with(&gw, proto, &mint(&tenant.es, &claims(json!({})))).await;
        assert_eq!(reply.status, 401, "{proto:?}");
    }
    gw.shutdown().await;
}

// === time ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_still_expires() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::generate(dir.path());
    tenant.publish(dir.path());
    let clock = ManualClock::starting_now();
    let start = clock.now();
    let gw = TestGateway::builder()
        .dir(Arc::new(dir))
        .clock(Arc::clone(&clock) as SharedClock)
        .toml(GATE)
        .toml(&file_issuers())
        .toml(&routes(&upstream.url))
        .start()
        .await;
    let token = mint(
        &tenant.rs,
        &claims_at(start, json!({"exp": start + 60, "iat": start})),
    );
    for proto in BOTH {
        assert_eq!(
            status_with(&gw, proto, &token).await.status,
            200,
            "{proto:?}"
        );
    }
    // Past exp but within the leeway: still good (from the cache).
    clock.set(start + 60 + 30);
    for proto in BOTH {
        assert_eq!(
            status_with(&gw, proto, &token).await.status,
            200,
            "{proto:?}"
        );
    }
    clock.set(start + 60 + 31);
    for proto in BOTH {
        let reply = status_with(&gw, proto, &token).await;
        assert_eq!(reply.status, 401, "{proto:?}");
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .contains(r#"error_description="the token has expired""#),
            "{proto:?}: {:?}",
            reply.headers
        );
    }
    // nbf follows the injected clock too.
    let later = mint(
        &tenant.rs,
        &claims_at(start, json!({"nbf": start + 200, "exp": start + 600})),
    );
    assert_eq!(status_with(&gw, Proto::H1, &later).await.status, 401);
    clock.set(start + 200 - 30);
    assert_eq!(status_with(&gw, Proto::H2, &later).await.status, 200);
    gw.shutdown().await;
}

// === passgate's own issuer ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passgate_issued_tokens_pass_and_its_jwks_is_published() {
    const OWN: &str = "https://localhost:8443/";
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .toml(&format!(
            "[issuer]\nurl = \"{OWN}\"\nsigning_keys = \"{{dir}}/signing\"\n"
        ))
        .toml(&routes(&upstream.url))
        .start()
        .await;
    let ring = KeyRing::load(&gw.dir.path().join("signing")).unwrap();
    let key = ring.current();
    // passgate's own access tokens are typed at+jwt (RFC 9068); the gate requires it.
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    let own_claims = claims(json!({"iss": OWN, "sub": "own-user"}));
    let token = jsonwebtoken::encode(&header, &own_claims, &key.encoding).unwrap();
    for proto in BOTH {
        let reply = status_with(&gw, proto, &token).await;
        assert_eq!(reply.status, 200, "{proto:?}: {:?}", reply.body);
        assert_eq!(
            upstream.last().headers["x-auth-subject"],
            "own-user",
            "{proto:?}"
        );
        // The same key under another issuer's name is not accepted.
        let reply = status_with(&gw, proto, &mint(key, &claims(json!({})))).await;
        assert_eq!(reply.status, 401, "{proto:?}");

        let reply = gw.client(proto).get("/.well-known/jwks.json").await;
        assert_eq!(reply.status, 200, "{proto:?}");
        let keys = reply.json()["keys"].as_array().cloned().unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0]["kid"], key.kid.as_str());
        assert_eq!(keys[0], key.jwk);
    }
    gw.shutdown().await;
}
