//! WebSockets over HTTP/2 (RFC 8441, extended CONNECT) towards HTTP/1.1
//! upstreams: browsers open a WebSocket on an HTTP/2 connection with
//! `:method = CONNECT`, `:protocol = websocket`, and expect `200` to open the
//! stream as the tunnel. The upstream gets the HTTP/1.1 handshake (RFC 6455:
//! `GET`, `Upgrade: websocket`, a fresh `Sec-WebSocket-Key`), and its `101`
//! becomes the client's `200`; the two are then joined like an HTTP/1.1
//! upgrade (`upgrade.rs`: tunnel idle timeout, the connection's slot, shutdown).
//!
//! Only the `websocket` protocol is carried; the gate and route limits see
//! the request as the `GET` it becomes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::ext::Protocol;
use hyper::upgrade::OnUpgrade;

use crate::http::body::ResponseBody;
use crate::http::headers::wants_websocket;
use crate::http::response::{Fault, gateway_error};

/// The client side of a WebSocket when `req` opens one: an HTTP/1.1
/// upgrade, or an extended CONNECT (whose head becomes the HTTP/1.1
/// handshake here). `Err`: an extended CONNECT of another protocol. Any
/// other request is not a WebSocket (`Ok(None)`).
pub fn client_websocket(req: &mut Request<Incoming>) -> Result<Option<OnUpgrade>, OtherProtocol> {
    match extended_connect(req) {
        Connect::Other => Err(OtherProtocol),
        Connect::WebSocket => {
            let upgrade = hyper::upgrade::on(&mut *req);
            into_http1_handshake(req);
            Ok(Some(upgrade))
        }
        Connect::No if req.version() == Version::HTTP_11 && wants_websocket(req.headers()) => {
            Ok(Some(hyper::upgrade::on(req)))
        }
        Connect::No => Ok(None),
    }
}

/// Marks a request that came as an extended CONNECT, so that `forward.rs`
/// answers the upstream's `101` with the `200` HTTP/2 expects.
#[derive(Debug, Clone, Copy)]
pub struct ExtendedConnect;

/// What kind of extended CONNECT a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Not an extended CONNECT.
    No,
    /// `:protocol = websocket`, carried to the upstream.
    WebSocket,
    /// Another `:protocol`, which passgate does not carry.
    Other,
}

/// An extended CONNECT of a protocol other than `websocket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherProtocol;

impl OtherProtocol {
    /// `501 not_implemented`.
    pub fn into_response(self) -> Response<ResponseBody> {
        gateway_error(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "extended CONNECT carries only the websocket protocol",
            Fault::Client,
        )
    }
}

/// Tell an HTTP/2 extended CONNECT from other requests.
pub fn extended_connect<B>(req: &Request<B>) -> Connect {
    if req.version() != Version::HTTP_2 || req.method() != Method::CONNECT {
        return Connect::No;
    }
    match req.extensions().get::<Protocol>() {
        None => Connect::No,
        Some(p) if p.as_str().eq_ignore_ascii_case("websocket") => Connect::WebSocket,
        Some(_) => Connect::Other,
    }
}

/// Turn the extended CONNECT's head into an HTTP/1.1 WebSocket handshake
/// (`Connection` and `Upgrade` are written by `strip_hop_by_hop`).
/// `Sec-WebSocket-Version`, `-Protocol` and `-Extensions` pass as sent.
pub fn into_http1_handshake<B>(req: &mut Request<B>) {
    *req.method_mut() = Method::GET;
    req.extensions_mut().remove::<Protocol>();
    req.extensions_mut().insert(ExtendedConnect);
    let key: [u8; 16] = rand::random();
    if let Ok(v) = HeaderValue::from_str(&STANDARD.encode(key)) {
        req.headers_mut().insert(SEC_WEBSOCKET_KEY, v);
    }
}

/// The upstream's `101` as the client's `200`: the HTTP/1.1 handshake's own
/// headers are dropped (HTTP/2 forbids `Connection` and `Upgrade`).
pub fn into_h2_answer<B>(resp: &mut Response<B>) {
    *resp.status_mut() = StatusCode::OK;
    *resp.version_mut() = Version::HTTP_2;
    let headers = resp.headers_mut();
    headers.remove(SEC_WEBSOCKET_ACCEPT);
    headers.remove(http::header::CONNECTION);
    headers.remove(http::header::UPGRADE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(protocol: Option<&str>) -> Request<()> {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri("https://example.test/chat")
            .body(())
            .unwrap_or_default();
        if let Some(p) = protocol {
            req.extensions_mut().insert(Protocol::from(p));
        }
        req
    }

    #[test]
    fn tells_websocket_from_other_connects() {
        assert_eq!(
            extended_connect(&connect(Some("websocket"))),
            Connect::WebSocket
        );
        assert_eq!(
            extended_connect(&connect(Some("connect-udp"))),
            Connect::Other
        );
        assert_eq!(extended_connect(&connect(None)), Connect::No);
        let mut get = connect(Some("websocket"));
        *get.method_mut() = Method::GET;
        assert_eq!(extended_connect(&get), Connect::No);
    }

    #[test]
    fn becomes_a_get_with_a_fresh_key_and_back() {
        let mut req = connect(Some("websocket"));
        into_http1_handshake(&mut req);
        let (parts, ()) = req.into_parts();
        assert_eq!(parts.method, Method::GET);
        assert!(parts.extensions.get::<Protocol>().is_none());
        assert!(parts.extensions.get::<ExtendedConnect>().is_some());
        let key = parts.headers[SEC_WEBSOCKET_KEY].to_str().unwrap_or("");
        assert_eq!(STANDARD.decode(key).map(|k| k.len()).ok(), Some(16));

        let mut resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "x")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap_or_default();
        into_h2_answer(&mut resp);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers().len(), 1);
        assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    }
}
