//! TLS towards PostgreSQL, on passgate's one crypto provider (aws-lc-rs):
//! `sslmode=prefer`/`require` encrypt without verifying the server (what
//! libpq does for those modes), `[store] tls_ca` verifies the chain against
//! that CA only and the certificate's name against the URL's host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgTls;

/// Why TLS towards PostgreSQL could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or is not PEM.
    #[error("store.tls_ca {}: {source}", path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file holds no certificate.
    #[error("store.tls_ca {}: no CERTIFICATE in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the CA file is not usable as a trust anchor.
    #[error("store.tls_ca {}: {source}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The provider offers no protocol version rustls accepts.
    #[error("TLS towards PostgreSQL: {0}")]
    Provider(#[source] rustls::Error),
}

/// The connector for `tls`. With `sslmode=disable` it is never asked for a
/// handshake, but the pool needs one connector type for every mode.
pub(super) fn connector(tls: &PgTls) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = crate::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Provider)?;
    let config = match tls {
        PgTls::Disable | PgTls::Prefer | PgTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        PgTls::VerifyFull { ca } => builder
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The trust anchors in the PEM file `path`.
fn roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let read = |source| TlsSetupError::ReadCa {
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsSetupError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// Accepts any server certificate (`sslmode=prefer`/`require` without a
/// CA: encrypted, not authenticated), but still checks that the server holds
/// the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
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
        dss: &DigitallySignedStruct,
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_mode_builds_and_a_bad_ca_is_named() {
        for mode in [PgTls::Disable, PgTls::Prefer, PgTls::Require] {
            assert!(connector(&mode).is_ok(), "{mode:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = connector(&PgTls::VerifyFull { ca: missing }).err();
        assert!(matches!(e, Some(TlsSetupError::ReadCa { .. })), "{e:?}");
        assert!(e.is_some_and(|e| e.to_string().contains("missing.pem")));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let e = connector(&PgTls::VerifyFull { ca: empty }).err();
        assert!(
            matches!(e, Some(TlsSetupError::NoCertificate { .. })),
            "{e:?}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = connector(&PgTls::VerifyFull { ca: garbage }).err();
        assert!(matches!(e, Some(TlsSetupError::BadCa { .. })), "{e:?}");

        let ca = rcgen::generate_simple_self_signed(vec!["db.example".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert!(connector(&PgTls::VerifyFull { ca: good }).is_ok());
    }
}
