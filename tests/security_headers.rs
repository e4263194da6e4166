//! Header hygiene at the trust boundary (issue 10, findings 2, 4, 8, 9, 14):
//! what a client may not tell an upstream, whatever the spelling, and what an
//! upstream may not do with an `Upgrade`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use passgate::clock::{Clock, SystemClock};
use passgate::config::Config;
use passgate::tokens::keys::{SigningKey, generate_into};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

const ISS: &str = "https://tenant.example.com/";
const AUD: &str = "https://api.example.com";

// === fixtures ===

/// A trusted issuer publishing one RS256 key through `{dir}/jwks.json`.
fn issuer(dir: &std::path::Path) -> SigningKey {
    passgate::tls::install_crypto_providers();
    let key = generate_into(&dir.join("keys"), Algorithm::RS256).unwrap();
    let doc = json!({ "keys": [key.jwk.clone()] });
    std::fs::write(dir.join("jwks.json"), doc.to_string()).unwrap();
    key
}

/// A token for `/api/` carrying only `read:items`.
fn read_only_token(key: &SigningKey) -> String {
    let now = SystemClock.now();
    let claims = json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "azp": "client-1",
        "scope": "read:items", "iat": now, "exp": now + 300,
        "https://example.com/roles": "viewer",
    });
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// `/api/` (protected, with an `X-User-Roles` claim header) and `/public/`,
/// both to `upstream`.
fn routes(upstream: &str) -> String {
    format!(
        r#"[[trusted_issuers]]
issuer = "{ISS}"
jwks_file = "{{dir}}/jwks.json"

[[routes]]
prefix = "/api/"
upstream = "{upstream}"
audience = "{AUD}"
scopes = ["read:items"]
[routes.claims_to_headers]
"X-User-Roles" = "https://example.com/roles"

[[routes]]
prefix = "/public/"
upstream = "{upstream}"
public = true
"#
    )
}

async fn start(upstream: &Upstream, server: &[&str]) -> (TestGateway, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = issuer(dir.path());
    let mut builder = TestGateway::builder()
        .dir(Arc::new(dir))
        .toml(&routes(&upstream.url));
    for line in server {
        builder = builder.server(line);
    }
    (builder.start().await, key)
}

fn assert_invalid_request(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 400, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    assert_eq!(reply.json()["error"], "invalid_request", "{what}");
}

/// Spoofing attempts: identity and claim headers spelled with underscores,
/// in mixed case, plus a harmless underscore header.
const SPOOFS: &[(&str, &str)] = &[
    ("X_Auth_Subject", "admin"),
    ("x_auth_scope", "write:items admin"),
    ("X_AUTH_CLIENT", "trusted-backend"),
    ("X_User_Roles", "root"),
    ("X_Custom", "1"),
];

// === finding 2: identity headers spoofed with underscores ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscore_headers_are_dropped_by_default() {
    let upstream = Upstream::start().await;
    let (gw, key) = start(&upstream, &[]).await;
    let bearer = format!("Bearer {}", read_only_token(&key));
    for proto in BOTH {
        for path in ["/public/x", "/api/x"] {
            let what = format!("{path} over {proto:?}");
            let mut sent = SPOOFS.to_vec();
            sent.push(("authorization", &bearer));
            let reply = gw.client(proto).get_with(path, &sent).await;
            assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
            let seen = upstream.last().headers;
            let underscored: Vec<&str> = seen
                .keys()
                .map(|k| k.as_str())
                .filter(|k| k.contains('_'))
                .collect();
            assert!(underscored.is_empty(), "{what}: {underscored:?} passed");
            if path == "/api/x" {
                assert_eq!(seen["x-auth-subject"], "user-1", "{what}");
                assert_eq!(seen["x-auth-scope"], "read:items", "{what}");
                assert_eq!(seen["x-user-roles"], "viewer", "{what}");
            } else {
                assert!(seen.get("x-auth-subject").is_none(), "{what}");
            }
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_underscore_headers_still_cannot_alias_identity_headers() {
    let upstream = Upstream::start().await;
    let (gw, key) = start(&upstream, &["allow_underscores_in_headers = true"]).await;
    let bearer = format!("Bearer {}", read_only_token(&key));
    for proto in BOTH {
        for path in ["/public/x", "/api/x"] {
            let what = format!("{path} over {proto:?}");
            let mut sent = SPOOFS.to_vec();
            sent.push(("authorization", &bearer));
            sent.push(("X_Real_IP", "203.0.113.9"));
            sent.push(("X_Forwarded_For", "203.0.113.9"));
            // A claim header of another route, sent on the public route
            // that shares the upstream.
            sent.push(("X-User-Roles", "root"));
            let reply = gw.client(proto).get_with(path, &sent).await;
            assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
            let seen = upstream.last().headers;
            assert_eq!(seen["x_custom"], "1", "{what}");
            for gone in [
                "x_auth_subject",
                "x_auth_scope",
                "x_auth_client",
                "x_user_roles",
                "x_real_ip",
                "x_forwarded_for",
            ] {
                assert!(seen.get(gone).is_none(), "{what}: {gone} passed");
            }
            let roles: Vec<_> = seen.get_all("x-user-roles").iter().collect();
            if path == "/api/x" {
                assert_eq!(roles, ["viewer"], "{what}");
                assert_eq!(seen["x-auth-scope"], "read:items", "{what}");
            } else {
                assert!(roles.is_empty(), "{what}: {roles:?}");
            }
        }
    }
    gw.shutdown().await;
}

// === finding 9: client address and URL overrides ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_address_and_url_overrides_are_removed() {
    let upstream = Upstream::start().await;
    let (gw, _) = start(&upstream, &["strip_request_headers = [\"X-Debug-User\"]"]).await;
    let sent: &[(&str, &str)] = &[
        ("X-Real-IP", "203.0.113.9"),
        ("True-Client-IP", "203.0.113.9"),
        ("Client-IP", "203.0.113.9"),
        ("X-Original-URL", "/admin/"),
        ("X-Rewrite-URL", "/admin/"),
        ("X-Debug-User", "root"),
        ("X-Kept", "yes"),
    ];
    for proto in BOTH {
        let reply = gw.client(proto).get_with("/public/x", sent).await;
        assert_eq!(reply.status, 200, "{proto:?}");
        let seen = upstream.last().headers;
        for gone in [
            "true-client-ip",
            "client-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-debug-user",
        ] {
            assert!(seen.get(gone).is_none(), "{proto:?}: {gone} passed");
        }
        let real: Vec<_> = seen.get_all("x-real-ip").iter().collect();
        assert_eq!(real, ["127.0.0.1"], "{proto:?}");
        assert_eq!(seen["x-kept"], "yes", "{proto:?}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_real_ip_is_the_client_behind_a_trusted_proxy() {
    let upstream = Upstream::start().await;
    let (gw, _) = start(&upstream, &["trusted_proxies = [\"127.0.0.1\"]"]).await;
    for proto in BOTH {
        let sent = [
            ("x-forwarded-for", "198.51.100.7, 203.0.113.9"),
            ("x-real-ip", "192.0.2.66"),
        ];
        let reply = gw.client(proto).get_with("/public/x", &sent).await;
        assert_eq!(reply.status, 200, "{proto:?}");
        let seen = upstream.last().headers;
        let real: Vec<_> = seen.get_all("x-real-ip").iter().collect();
        assert_eq!(real, ["203.0.113.9"], "{proto:?}");
    }
    gw.shutdown().await;
}

#[test]
fn strip_request_headers_must_be_header_names() {
    let text = "[server]\nstrip_request_headers = [\"X-Ok\", \"bad name\", \"\", \"Host\"]\n";
    let errors = Config::from_toml(text).unwrap_err().0;
    for key in [
        "server.strip_request_headers[1]",
        "server.strip_request_headers[2]",
        "server.strip_request_headers[3]",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{key}:"))),
            "{key} not reported: {errors:?}"
        );
    }
    assert!(
        !errors
            .iter()
            .any(|e| e.starts_with("server.strip_request_headers[0]")),
        "{errors:?}"
    );
}

// === finding 8: X-Forwarded-Host from an unvalidated Host ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_not_host_and_port_is_refused() {
    let upstream = Upstream::start().await;
    let (gw, _) = start(&upstream, &[]).await;
    let bad = [
        "evil example",
        "user@evil.example",
        "user:pw@evil.example",
        "evil.example:99999",
        "evil.example:80a",
        "evil.example:",
        "evil.example/path",
        "[::1",
        "[not-v6]:443",
        "evil\"example",
        "",
    ];
    for proto in BOTH {
        for host in bad {
            let what = format!("Host {host:?} over {proto:?}");
            let before = upstream.requests().len();
            let reply = gw
                .client(proto)
                .get_with("/public/x", &[("host", host)])
                .await;
            assert_invalid_request(&reply, &what);
            assert_eq!(upstream.requests().len(), before, "{what}: forwarded");
        }
    }
    // Over HTTP/1.1 the Host header is the authority: valid ones pass, as sent.
    for host in [
        "api.example.com",
        "API.Example.com:8443",
        "127.0.0.1:443",
        "[::1]:8443",
        "[2001:db8::1]",
    ] {
        let reply = gw
            .client(Proto::H1)
            .get_with("/public/x", &[("host", host)])
            .await;
        assert_eq!(reply.status, 200, "{host}");
        let seen = upstream.last().headers;
        assert_eq!(seen["x-forwarded-host"], host);
        assert!(
            seen["forwarded"]
                .to_str()
                .unwrap()
                .ends_with(&format!(";host=\"{host}\"")),
            "{host}: {:?}",
            seen["forwarded"]
        );
    }
    gw.shutdown().await;
}

// === finding 4: Upgrade other than websocket ===

/// One HTTP/1.1 exchange on a fresh TLS connection: the status and the raw
/// head of the answer. The connection is returned for more.
async fn raw_exchange(
    gw: &TestGateway,
    request: &str,
) -> (
    u16,
    String,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let mut tls = gw.tls_connect(&[b"http/1.1"]).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = timeout(Duration::from_secs(5), tls.read(&mut byte))
            .await
            .expect("no answer")
            .unwrap();
        assert_eq!(n, 1, "connection closed mid-head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, tls)
}

fn upgrade_request(gw: &TestGateway, path: &str, upgrade: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: Upgrade{extra}\r\nupgrade: {upgrade}\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        gw.addr.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_is_forwarded_as_a_plain_request() {
    let upstream = Upstream::start().await;
    let (gw, _) = start(&upstream, &[]).await;
    for (upgrade, extra) in [
        (
            "h2c",
            ", HTTP2-Settings\r\nhttp2-settings: AAMAAABkAAQAAP__",
        ),
        ("h2c, TLS/1.2", ""),
    ] {
        let req = upgrade_request(&gw, "/public/plain", upgrade, extra);
        let (status, head, _) = raw_exchange(&gw, &req).await;
        assert_eq!(status, 200, "{upgrade}: {head}");
        let seen = upstream.last().headers;
        for gone in ["upgrade", "connection", "http2-settings"] {
            assert!(seen.get(gone).is_none(), "{upgrade}: {gone}: {seen:?}");
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_websocket_token_of_an_upgrade_list_goes_upstream() {
    let upstream = Upstream::start().await;
    let (gw, _) = start(&upstream, &[]).await;
    for upgrade in ["h2c, websocket", "WebSocket", "foo/1, websocket, h2c"] {
        let req = upgrade_request(&gw, "/public/ws", upgrade, "");
        let (status, head, _) = raw_exchange(&gw, &req).await;
        assert_eq!(status, 101, "{upgrade}: {head}");
        let seen = upstream.last().headers;
        let sent: Vec<_> = seen.get_all("upgrade").iter().collect();
        assert_eq!(sent, ["websocket"], "{upgrade}");
        assert!(
            head.to_ascii_lowercase().contains("upgrade: websocket\r\n"),
            "{head}"
        );
    }
    gw.shutdown().await;
}

/// An upstream that answers every request with `101` and `Upgrade: {token}`,
/// then reports what came after on that connection: the bytes read until it
/// closed, or `None` when it stayed open for 5 s.
struct Switcher {
    url: String,
    after: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
}

impl Switcher {
    async fn start(token: &'static str) -> Switcher {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, after) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if tcp.read(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(buf[0]);
                    }
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {token}\r\n\r\n"
                    );
                    tcp.write_all(answer.as_bytes()).await.unwrap();
                    let mut rest = Vec::new();
                    let read = timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
                    let _ = tx.send(read.ok().map(|_| rest));
                });
            }
        });
        Switcher { url, after }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_to_a_request_that_did_not_ask_for_a_websocket_is_a_502() {
    let mut switcher = Switcher::start("h2c").await;
    let gw = TestGateway::builder()
        .public_route("/public/", &switcher.url)
        .start()
        .await;
    // Asked for h2c (forwarded as a plain request), and asked for nothing.
    let requests = [
        upgrade_request(&gw, "/public/x", "h2c", ""),
        format!(
            "GET /public/x HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n\r\n",
            gw.addr.port()
        ),
    ];
    for req in &requests {
        let (status, head, mut tls) = raw_exchange(&gw, req).await;
        assert_eq!(status, 502, "{req}: {head}");
        assert!(head.contains("application/json"), "{head}");
        // Whatever the client sends next is never spliced onto the upstream
        // connection: passgate closed it.
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let after = timeout(Duration::from_secs(8), switcher.after.recv())
            .await
            .expect("upstream connection unreported")
            .unwrap();
        assert_eq!(after, Some(Vec::new()), "{req}: upstream connection kept");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_to_a_websocket_request_must_switch_to_websocket() {
    let mut switcher = Switcher::start("h2c").await;
    let gw = TestGateway::builder()
        .public_route("/public/", &switcher.url)
        .start()
        .await;
    let req = upgrade_request(&gw, "/public/ws", "websocket", "");
    let (status, head, _tls) = raw_exchange(&gw, &req).await;
    assert_eq!(status, 502, "{head}");
    let after = timeout(Duration::from_secs(8), switcher.after.recv())
        .await
        .expect("upstream connection unreported")
        .unwrap();
    assert_eq!(after, Some(Vec::new()), "upstream connection kept");
    gw.shutdown().await;
}

// === finding 14: claims_to_headers cannot write framing or forwarding headers ===

#[test]
fn claims_to_headers_refuses_headers_the_gateway_owns() {
    let refused = [
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Upgrade",
        "Host",
        "Authorization",
        "Cookie",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Prefix",
        "X-Real-IP",
        "X-Request-Id",
        "traceparent",
        "tracestate",
        "X-Auth-Subject",
        "X-Auth-Anything",
        "X_User_Roles",
        "X-Original-URL",
    ];
    for name in refused {
        let text = format!(
            "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:1\"\naudience = \"{AUD}\"\n\
             [routes.claims_to_headers]\n\"{name}\" = \"sub\"\n"
        );
        let errors = Config::from_toml(&text)
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"))
            .0;
        let key = format!("routes[0].claims_to_headers.\"{name}\":");
        assert!(
            errors.iter().any(|e| e.starts_with(&key)),
            "{name}: {errors:?}"
        );
    }
    let ok = format!(
        "[[routes]]\nprefix = \"/api/\"\nupstream = \"http://127.0.0.1:1\"\naudience = \"{AUD}\"\n\
         [routes.claims_to_headers]\n\"X-User-Roles\" = \"roles\"\n"
    );
    Config::from_toml(&ok).unwrap();
}
