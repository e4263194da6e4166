//! The one upstream client: a keep-alive pool (hyper-util legacy client with a
//! pool timer, so idle sockets are evicted in the background), `http` and
//! `https` upstreams (rustls with the system roots plus an optional CA file),
//! and a connect deadline. The response deadline is applied per request in
//! `forward.rs`, since the client has none of its own.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use crate::config::UpstreamConfig;
use crate::http::body::RequestBody;

/// The pooled client type.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// The upstream client and its deadlines.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    /// The pooled client.
    pub client: HttpsClient,
    /// Deadline for connecting.
    pub connect_timeout: Duration,
    /// Deadline for the response headers.
    pub response_timeout: Duration,
}

/// Root certificates: the system's, plus those in `ca_file`.
pub fn root_store(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in crate::tls::load_certs(path).context("upstream.ca_file")? {
            roots.add(cert).with_context(|| {
                format!(
                    "upstream.ca_file: a certificate in {} is not a usable CA",
                    path.display()
                )
            })?;
        }
    }
    Ok(roots)
}

impl UpstreamClient {
    /// Build the client from `[upstream]`.
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Self> {
        let roots = root_store(config.ca_file.as_deref())?;
        Ok(Self::with_roots(config, roots))
    }

    /// Build the client trusting exactly `roots` for `https` upstreams.
    pub fn with_roots(config: &UpstreamConfig, roots: RootCertStore) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let tls = match tls {
            Ok(tls) => tls,
            // The default provider always supports the default versions.
            Err(_) => rustls::ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        Self {
            client,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        }
    }
}
