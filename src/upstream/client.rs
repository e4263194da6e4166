//! The one upstream client: a keep-alive pool (hyper-util legacy client with a
//! pool timer, so idle sockets are evicted in the background), `http` and
//! `https` upstreams (rustls with the system roots plus an optional CA file),
//! and a connect deadline. The response deadline is applied per request in
//! `forward.rs`, since the client has none of its own.
//!
//! Forwarded requests that go over HTTP/1.1 use passgate's own pool instead
//! (`http1/`); the hyper-util pools below serve the rest.
//!
//! Three pools share the settings, one per way of choosing the HTTP version
//! ([`UpstreamClient::for_protocol`]): HTTP/1.1 only, HTTP/2 where `https`'s
//! ALPN picks it (`upstream_protocol = "auto"`), and HTTP/2 only (`h2c://`
//! upstreams with prior knowledge, `upstream_protocol = "http2"`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use super::http1::Http1Pool;
use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTarget};
use crate::http::body::RequestBody;

/// The pooled client type.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// The upstream client and its deadlines.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    /// The pooled HTTP/1.1 client (also for key fetches and health checks).
    pub client: HttpsClient,
    /// HTTP/2 when an `https` upstream's ALPN picks it, else HTTP/1.1.
    pub alpn: HttpsClient,
    /// HTTP/2 only: ALPN `h2` over TLS, prior knowledge in cleartext.
    pub http2: HttpsClient,
    /// passgate's own HTTP/1.1 pool, for forwarded requests that go over
    /// HTTP/1.1 and are no WebSocket (the `client` pool's share of the traffic).
    pub http1: Http1Pool,
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
        let connector = |versions: Versions| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(config.connect_timeout));
            http.set_keepalive(Some(Duration::from_secs(60)));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http();
            match versions {
                Versions::Http1 => https.enable_http1().wrap_connector(http),
                Versions::Alpn => https.enable_http1().enable_http2().wrap_connector(http),
                Versions::Http2 => https.enable_http2().wrap_connector(http),
            }
        };
        let pool = |versions: Versions| {
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(config.pool_idle_timeout)
                .pool_max_idle_per_host(config.pool_max_idle_per_host)
                .http2_only(versions == Versions::Http2);
            builder.build(connector(versions))
        };
        Self {
            http1: Http1Pool::new(
                connector(Versions::Http1),
                config.pool_max_idle_per_host,
                config.pool_idle_timeout,
            ),
            client: pool(Versions::Http1),
            alpn: pool(Versions::Alpn),
            http2: pool(Versions::Http2),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        }
    }
}

/// Which HTTP versions a pool offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Versions {
    Http1,
    Alpn,
    Http2,
}

impl UpstreamClient {
    /// The pool for a request to `target` on a route with `protocol`. A
    /// WebSocket (`tunnel`) always goes over HTTP/1.1, the only version
    /// whose upgrade passgate forwards upstream.
    pub fn for_protocol(
        &self,
        protocol: UpstreamProtocol,
        target: &UpstreamTarget,
        tunnel: bool,
    ) -> &HttpsClient {
        if tunnel {
            return &self.client;
        }
        match protocol {
            _ if target.h2c => &self.http2,
            UpstreamProtocol::Http2 => &self.http2,
            UpstreamProtocol::Http1 => &self.client,
            UpstreamProtocol::Auto if target.scheme == http::uri::Scheme::HTTPS => &self.alpn,
            UpstreamProtocol::Auto => &self.client,
        }
    }
}

impl UpstreamClient {
    /// True when `pool` is the HTTP/1.1-only one, where `TE` has no business
    /// (it is hop-by-hop there; HTTP/2 allows `TE: trailers`).
    pub fn is_http1_only(&self, pool: &HttpsClient) -> bool {
        std::ptr::eq(pool, &self.client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_upstream_for_tests as upstream;

    fn same(a: &HttpsClient, b: &HttpsClient) -> bool {
        std::ptr::eq(a, b)
    }

    #[test]
    fn picks_the_pool_by_protocol_scheme_and_tunnel() {
        let config = UpstreamConfig {
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(1),
            pool_max_idle_per_host: 1,
            ca_file: None,
            unhealthy_cooldown: Duration::from_secs(1),
        };
        let c = UpstreamClient::with_roots(&config, RootCertStore::empty());
        let (http, https, h2c) = (
            upstream("http://127.0.0.1:1"),
            upstream("https://127.0.0.1:1"),
            upstream("h2c://127.0.0.1:1"),
        );
        use UpstreamProtocol::*;
        assert!(same(c.for_protocol(Auto, &http, false), &c.client));
        assert!(same(c.for_protocol(Auto, &https, false), &c.alpn));
        assert!(same(c.for_protocol(Auto, &h2c, false), &c.http2));
        assert!(same(c.for_protocol(Http1, &https, false), &c.client));
        assert!(same(c.for_protocol(Http2, &http, false), &c.http2));
        assert!(same(c.for_protocol(Http2, &https, false), &c.http2));
        assert!(same(c.for_protocol(Auto, &https, true), &c.client));
        assert!(c.is_http1_only(c.for_protocol(Auto, &http, false)));
        assert!(!c.is_http1_only(c.for_protocol(Auto, &https, false)));
    }
}
