//! The admin listener (`server.admin_listen`, plain HTTP, keep it on a private
//! address): `GET /healthz` (the process answers), `GET /readyz` (serving, not
//! draining), and `GET /metrics` in the Prometheus text format.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::gate::Gate;
use crate::http::body::ResponseBody;
use crate::oauth::AuthServer;
use crate::tasks::Supervisor;

/// What the admin endpoints read. The request handler (`service::App`)
/// provides it, so this module needs nothing above it.
pub trait Observed: Send + Sync + 'static {
    /// The request counters and readiness.
    fn metrics(&self) -> &Metrics;
    /// The gate, for its token cache.
    fn gate(&self) -> &Gate;
    /// passgate's own endpoints, when it is its own issuer.
    fn auth(&self) -> Option<&AuthServer>;
    /// The background tasks' supervisor.
    fn tasks(&self) -> &Supervisor;
}

/// Request counters, by status class, and readiness.
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 6],
    draining: AtomicBool,
}

impl Metrics {
    /// Count one answered request.
    pub fn count(&self, status: StatusCode) {
        let class = (status.as_u16() / 100).min(5) as usize;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    /// The gateway stopped accepting: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Requests answered with status class `class` (1..=5).
    pub fn requests(&self, class: usize) -> u64 {
        self.by_class
            .get(class)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn render(&self, app: &dyn Observed) -> String {
        let mut out = String::new();
        out.push_str("# HELP passgate_requests_total Requests answered, by status class.\n");
        out.push_str("# TYPE passgate_requests_total counter\n");
        for class in 1..=5 {
            let _ = writeln!(
                out,
                "passgate_requests_total{{class=\"{class}xx\"}} {}",
                self.requests(class)
            );
        }
        out.push_str("# HELP passgate_token_cache_entries Verified tokens held in the cache.\n");
        out.push_str("# TYPE passgate_token_cache_entries gauge\n");
        let _ = writeln!(
            out,
            "passgate_token_cache_entries {}",
            app.gate().cache().len()
        );
        out.push_str(
            "# HELP passgate_token_cache_bytes Approximate bytes held by the token cache.\n",
        );
        out.push_str("# TYPE passgate_token_cache_bytes gauge\n");
        let _ = writeln!(
            out,
            "passgate_token_cache_bytes {}",
            app.gate().cache().bytes()
        );
        out.push_str("# HELP passgate_background_task_failures_total Background tasks and worker threads that failed or panicked.\n");
        out.push_str("# TYPE passgate_background_task_failures_total counter\n");
        let _ = writeln!(
            out,
            "passgate_background_task_failures_total {}",
            app.tasks().died()
        );
        if let Some(auth) = app.auth() {
            let c = auth.protect().counters();
            out.push_str(
                "# HELP passgate_attack_protection_total Attack-protection actions, by kind.\n",
            );
            out.push_str("# TYPE passgate_attack_protection_total counter\n");
            for (kind, n) in [
                ("request_rate_limited", &c.rate_limited),
                ("user_ip_throttled", &c.user_ip_throttled),
                ("brute_force_refused", &c.brute_force_refused),
                ("suspicious_ip_refused", &c.suspicious_ip_refused),
                ("brute_force_block", &c.blocks),
                ("suspicious_ip_throttle", &c.throttles),
            ] {
                let _ = writeln!(
                    out,
                    "passgate_attack_protection_total{{kind=\"{kind}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
            let pool = auth.hasher().stats();
            out.push_str(
                "# HELP passgate_password_checks_total Password checks, by what the hashing pool did: run, skipped (the client had gone), refused (queue full).\n",
            );
            out.push_str("# TYPE passgate_password_checks_total counter\n");
            for (outcome, n) in [
                ("run", pool.ran()),
                ("skipped", pool.skipped()),
                ("refused", pool.refused()),
            ] {
                let _ = writeln!(
                    out,
                    "passgate_password_checks_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
            out.push_str("# HELP passgate_password_checks_in_flight Password checks running or waiting for a hashing worker.\n");
            out.push_str("# TYPE passgate_password_checks_in_flight gauge\n");
            let _ = writeln!(
                out,
                "passgate_password_checks_in_flight {}",
                auth.hasher().in_flight()
            );
        }
        out
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn answer(
    req: Request<Incoming>,
    app: Arc<dyn Observed>,
) -> Result<Response<ResponseBody>, Infallible> {
    let metrics = app.metrics();
    Ok(match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        ("GET", "/readyz") if metrics.draining.load(Ordering::Acquire) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining\n".into(),
            "text/plain",
        ),
        ("GET", "/readyz") => text(StatusCode::OK, "ready\n".into(), "text/plain"),
        ("GET", "/metrics") => text(
            StatusCode::OK,
            metrics.render(app.as_ref()),
            "text/plain; version=0.0.4",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    })
}

/// Serve the admin endpoints on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, app: Arc<dyn Observed>, mut stop: watch::Receiver<bool>) {
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
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(req, Arc::clone(&app)));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = conn.await;
        });
    }
}
