//! The TLS client: one [`Lane`] per worker over hyper's low-level connection
//! API, so the bench controls exactly how many connections are open
//! (HTTP/1.1: one per worker; HTTP/2: one per `--streams` workers, shared).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::args::HttpVersion;

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// TLS server name (SNI and certificate check).
    pub server_name: ServerName<'static>,
    /// `host:port` for Host / :authority.
    pub authority: String,
    /// HTTP version.
    pub http: HttpVersion,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("authority", &self.authority)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// How the server's certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// These PEM certificates (the in-process dev certificate, or `--ca`).
    Pem(Vec<u8>),
    /// Anything (`--insecure`).
    Any,
}

impl Trust {
    /// Read `--ca`.
    pub fn from_file(path: &Path) -> anyhow::Result<Trust> {
        let pem =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
        Ok(Trust::Pem(pem))
    }
}

/// A rustls client config for `http` with `trust`.
pub fn tls_config(trust: &Trust, http: HttpVersion) -> anyhow::Result<ClientConfig> {
    passgate::tls::install_crypto_providers();
    let provider = passgate::tls::provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        Trust::Pem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert?)?;
            }
            anyhow::ensure!(!roots.is_empty(), "no certificate in the trusted PEM");
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = match http {
        HttpVersion::H1 => vec![b"http/1.1".to_vec()],
        HttpVersion::H2 => vec![b"h2".to_vec()],
    };
    Ok(config)
}

impl Endpoint {
    /// An endpoint at `addr` presenting a certificate for `host`.
    pub fn new(
        addr: SocketAddr,
        host: &str,
        port: u16,
        http: HttpVersion,
        trust: &Trust,
    ) -> anyhow::Result<Self> {
        let server_name = ServerName::try_from(host.to_string())?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(trust, http)?));
        Ok(Self {
            addr,
            server_name,
            authority,
            http,
            tls,
        })
    }

    /// The same endpoint speaking another HTTP version.
    pub fn with_http(&self, http: HttpVersion, trust: &Trust) -> anyhow::Result<Self> {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config(trust, http)?));
        Ok(Self {
            http,
            tls,
            ..self.clone()
        })
    }

    /// A request builder for `path` in the form this HTTP version wants.
    pub fn request(&self, method: http::Method, path: &str) -> http::request::Builder {
        match self.http {
            HttpVersion::H1 => Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, &self.authority),
            HttpVersion::H2 => Request::builder()
                .method(method)
                .uri(format!("https://{}{path}", self.authority))
                .version(http::Version::HTTP_2),
        }
    }

    async fn tls_stream(
        &self,
    ) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, Failure> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|_| Failure::Tls)?;
        let want: &[u8] = match self.http {
            HttpVersion::H1 => b"http/1.1",
            HttpVersion::H2 => b"h2",
        };
        let alpn = tls.get_ref().1.alpn_protocol();
        if self.http == HttpVersion::H2 && alpn != Some(want) {
            return Err(Failure::Alpn);
        }
        Ok(TokioIo::new(tls))
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<Full<Bytes>>, Failure> {
        let io = self.tls_stream().await?;
        let (send, conn) = http1::handshake(io).await.map_err(|_| Failure::Http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    async fn connect_h2(&self) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
        let io = self.tls_stream().await?;
        let (send, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|_| Failure::Http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}

/// Why a request got no complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// TCP connect failed.
    Connect,
    /// TLS handshake failed.
    Tls,
    /// The server did not agree to HTTP/2.
    Alpn,
    /// The connection broke or the server sent something hyper refused.
    Http,
    /// The answer's body broke off.
    Body,
    /// No complete answer within `--timeout`.
    Timeout,
}

impl Failure {
    /// The error kind in the report.
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Alpn => "alpn_no_h2",
            Failure::Http => "http_protocol",
            Failure::Body => "body",
            Failure::Timeout => "timeout",
        }
    }
}

/// An HTTP/2 connection shared by several lanes.
#[derive(Debug, Default)]
pub struct SharedH2(Mutex<Option<http2::SendRequest<Full<Bytes>>>>);

/// One worker's way to the server.
#[derive(Debug)]
pub enum Lane {
    /// Its own HTTP/1.1 connection, opened on first use and after a failure.
    H1 {
        /// Where to.
        ep: Arc<Endpoint>,
        /// The open connection.
        conn: Option<http1::SendRequest<Full<Bytes>>>,
    },
    /// A clone of a shared HTTP/2 connection.
    H2 {
        /// Where to.
        ep: Arc<Endpoint>,
        /// The connection this lane shares with others.
        shared: Arc<SharedH2>,
        /// This lane's handle on it.
        conn: Option<http2::SendRequest<Full<Bytes>>>,
    },
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

impl Lane {
    /// A lane on `ep`; HTTP/2 lanes that get the same `shared` use one connection.
    pub fn new(ep: Arc<Endpoint>, shared: Arc<SharedH2>) -> Self {
        match ep.http {
            HttpVersion::H1 => Lane::H1 { ep, conn: None },
            HttpVersion::H2 => Lane::H2 {
                ep,
                shared,
                conn: None,
            },
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Lane::H1 { ep, .. } | Lane::H2 { ep, .. } => ep,
        }
    }

    /// Send `req` and read the whole answer (no deadline: the caller sets one).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        let resp = match self {
            Lane::H1 { ep, conn } => {
                let mut c = match conn.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => ep.connect_h1().await?,
                };
                c.ready().await.map_err(|_| Failure::Http)?;
                let resp = c.send_request(req).await.map_err(|_| Failure::Http)?;
                *conn = Some(c);
                resp
            }
            Lane::H2 { ep, shared, conn } => {
                let mut c = match conn.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => {
                        let mut slot = shared.0.lock().await;
                        match slot.as_ref() {
                            Some(s) if !s.is_closed() => s.clone(),
                            _ => {
                                let s = ep.connect_h2().await?;
                                *slot = Some(s.clone());
                                s
                            }
                        }
                    }
                };
                c.ready().await.map_err(|_| Failure::Http)?;
                let resp = c.send_request(req).await.map_err(|_| Failure::Http)?;
                *conn = Some(c);
                resp
            }
        };
        read(resp).await
    }
}

async fn read(resp: Response<Incoming>) -> Result<Answer, Failure> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| Failure::Body)?
        .to_bytes();
    Ok(Answer { status, body })
}

// === impl AcceptAny ===

/// `--insecure`: accepts any certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
