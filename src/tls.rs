//! TLS and the crypto provider, below every layer that needs them: one
//! explicit provider (aws-lc-rs) for rustls and jsonwebtoken, the server's
//! config (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`), certificate loading for
//! the upstream client, a self-signed localhost certificate generated on first
//! start when the config asks for one, and owner-only files for private keys.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The one crypto provider passgate uses for TLS, both directions.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Install the process-wide defaults of rustls and jsonwebtoken (both aws-lc-rs).
/// Idempotent: a second call, or a provider installed earlier, is fine.
pub fn install_crypto_providers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// Build the listener's TLS config from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    server_config_with(Arc::new(CertSlot::new(certified_key(cert, key)?)))
}

/// The listener's TLS config (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`),
/// presenting whatever certificate `slot` holds at each handshake.
pub fn server_config_with(slot: Arc<CertSlot>) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server certificate and key from PEM files, checked to fit together.
pub fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "server.tls_key: cannot read a PEM private key from {}",
            key.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, &provider())
        .context("server.tls_cert / server.tls_key: the certificate and key do not fit together")
}

/// The certificate every worker's acceptor presents. A reload replaces it
/// in one step: handshakes after that present the new one, connections
/// already open keep the session they have.
#[derive(Debug)]
pub struct CertSlot(ArcSwap<CertifiedKey>);

impl CertSlot {
    /// A slot holding `key`.
    pub fn new(key: CertifiedKey) -> Self {
        Self(ArcSwap::from_pointee(key))
    }

    /// Present `key` from the next handshake on.
    pub fn replace(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificates from {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// With `dev_certificate = true` and both files missing, write a self-signed
/// certificate for `localhost`, `127.0.0.1` and `::1`. Returns whether it did.
pub fn ensure_dev_certificate(cert: &Path, key: &Path) -> anyhow::Result<bool> {
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(false),
        (false, false) => {}
        (true, false) => bail!(
            "server.tls_key: {} is missing but the certificate exists; not overwriting",
            key.display()
        ),
        (false, true) => bail!(
            "server.tls_cert: {} is missing but the key exists; not overwriting",
            cert.display()
        ),
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating the development certificate")?;
    for path in [cert, key] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    std::fs::write(cert, generated.cert.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    Ok(true)
}

/// Write a file only its owner can read.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_is_generated_once_and_loads() {
        install_crypto_providers();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cert = dir.path().join("sub/cert.pem");
        let key = dir.path().join("sub/key.pem");
        assert!(ensure_dev_certificate(&cert, &key).unwrap_or(false));
        assert!(!ensure_dev_certificate(&cert, &key).unwrap_or(true));
        assert!(server_config(&cert, &key).is_ok());
        std::fs::remove_file(&key).unwrap_or(());
        assert!(ensure_dev_certificate(&cert, &key).is_err());
    }
}
