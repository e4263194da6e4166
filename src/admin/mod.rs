//! The admin listener (`server.admin_listen`, plain HTTP, keep it on a private
//! address): `GET /healthz` (the process answers), `GET /readyz` (serving, not
//! draining), `GET /metrics` (Prometheus / OpenMetrics text; 404 with
//! `[metrics] enabled = false`), `GET /status` (JSON for people and the
//! page) and `GET /` (the status page, one self-contained HTML file).
//!
//! - `scrape.rs`: values other modules count, read at scrape time;
//! - `status.rs`: the `/status` document and its one-minute window;
//! - `page.html`: the status page.

mod scrape;
pub mod status;

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use status::{AdminState, StatusSources};

use crate::gate::Gate;
use crate::http::body::ResponseBody;
use crate::oauth::AuthServer;
use crate::router::Router;
use crate::tasks::Supervisor;
use crate::telemetry::metrics::{self, Metrics};

/// What the admin endpoints read. The request handler (`service::App`)
/// provides it, so this module needs nothing above it.
pub trait Observed: std::fmt::Debug + Send + Sync + 'static {
    /// The metric families and readiness.
    fn metrics(&self) -> &Metrics;
    /// The route table, with each route's operational state.
    fn router(&self) -> &Router;
    /// The gate, for its token cache and trusted issuers.
    fn gate(&self) -> &Gate;
    /// passgate's own endpoints, when it is its own issuer.
    fn auth(&self) -> Option<&AuthServer>;
    /// The background tasks' supervisor.
    fn tasks(&self) -> &Supervisor;
}

/// The request handler as it is now: a reload replaces what [`Observed`]
/// sees, so the admin endpoints ask for the current one on every request.
pub trait Live: std::fmt::Debug + Send + Sync + 'static {
    /// What requests are served with at this moment.
    fn current(&self) -> Arc<dyn Observed>;
}

/// The status page: no external fetches, no build step.
const PAGE: &str = include_str!("page.html");

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn answer(
    req: Request<Incoming>,
    admin: Arc<AdminState>,
) -> Result<Response<ResponseBody>, Infallible> {
    let app = admin.app.current();
    let m = app.metrics();
    Ok(match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        ("GET", "/readyz") if m.draining() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining\n".into(),
            "text/plain",
        ),
        // A store that cannot be reached leaves the proxy serving (keys and
        // revocations are in memory): still ready, saying what is degraded.
        ("GET", "/readyz") => match admin.store_unavailable() {
            None => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Some(why) => text(
                StatusCode::OK,
                format!(
                    "ready, degraded: the store is {why}; /oauth/token answers 503 until it is back, proxying goes on\n"
                ),
                "text/plain",
            ),
        },
        ("GET", "/metrics") if m.enabled() => text(
            StatusCode::OK,
            m.render(&scrape::registry(app.as_ref())),
            metrics::CONTENT_TYPE,
        ),
        ("GET", "/status") => {
            let doc = admin.status().await;
            text(StatusCode::OK, doc.to_string(), "application/json")
        }
        ("GET", "/") => {
            let mut resp = text(StatusCode::OK, PAGE.into(), "text/html; charset=utf-8");
            resp.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
                ),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    })
}

/// Serve the admin endpoints on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, admin: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let admin = Arc::clone(&admin);
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(req, Arc::clone(&admin)));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = conn.await;
        });
    }
}
