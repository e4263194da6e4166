//! The e-mail channel: a 6-digit code sent over SMTP (`lettre`) to the
//! user's address, configured by `[mfa.email]`. Without that section the
//! channel is not offered. The code is the `binding_code` of the `mfa-oob`
//! grant; the `oob_code` handed to the client names the challenge.
//!
//! The relay is reached over `smtps://` (TLS from the first byte), over
//! `smtp://` with STARTTLS (`starttls`), or in plain text; its certificate is
//! checked against the system's roots and `ca_file`'s. Config validation
//! (`config/validate/smtp.rs`) keeps a password off unencrypted connections.

use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::jwa::is_loopback_host;
use crate::config::{MfaEmailConfig, SmtpTls};

/// How long a sent code stays good.
pub const CODE_LIFETIME_SECS: i64 = 300;

/// Sends e-mail codes.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
    /// For the whole exchange: lettre's own timeout covers only connecting.
    timeout: Duration,
}

/// Why a code did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// An address did not parse, or the message could not be built.
    #[error("building the message: {0}")]
    Message(String),
    /// The SMTP server refused or could not be reached.
    #[error("sending: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The relay did not finish within `mfa.email.timeout`.
    #[error("the relay did not answer within {0:?}")]
    TimedOut(Duration),
}

impl Mailer {
    /// A mailer for `[mfa.email]`; nothing connects until a code is sent.
    /// Fails when `ca_file` cannot be read or holds no usable certificate.
    pub fn new(config: &MfaEmailConfig) -> anyhow::Result<Self> {
        let host = &config.smtp_host;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(config.smtp_port)
            .timeout(Some(config.timeout));
        transport = match config.tls {
            SmtpTls::Off => transport.tls(Tls::None),
            SmtpTls::Opportunistic => transport.tls(Tls::Opportunistic(tls_parameters(config)?)),
            SmtpTls::Required => transport.tls(Tls::Required(tls_parameters(config)?)),
            SmtpTls::Implicit => transport.tls(Tls::Wrapper(tls_parameters(config)?)),
        };
        if let Some(login) = &config.credentials {
            transport = transport.credentials(Credentials::new(
                login.username.clone(),
                login.password.expose().to_string(),
            ));
        }
        if !config.tls.always_encrypted() && !is_loopback_host(host) {
            tracing::warn!(
                relay = %host,
                "e-mail codes may cross the network unencrypted (mfa.email: smtp:// without \
                 starttls = \"required\"); use smtps:// or STARTTLS for a relay on another host"
            );
        }
        Ok(Self {
            transport: transport.build(),
            from: config.from.clone(),
            timeout: config.timeout,
        })
    }

    /// Send `code` to `to` on behalf of `issuer`.
    pub async fn send_code(&self, to: &str, code: &str, issuer: &str) -> Result<(), SendError> {
        let message = Message::builder()
            .from(self.from.parse().map_err(|e| SendError::Message(format!("{e}")))?)
            .to(to.parse().map_err(|e| SendError::Message(format!("{e}")))?)
            .subject(format!("Your verification code for {issuer}"))
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "Your verification code is {code}\r\n\r\nIt expires in {} minutes. If you did not try to log in, change your password.\r\n",
                CODE_LIFETIME_SECS / 60
            ))
            .map_err(|e| SendError::Message(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(SendError::from),
            Err(_) => Err(SendError::TimedOut(self.timeout)),
        }
    }
}

/// TLS towards the relay: its name checked against its certificate, which
/// must chain to the system's roots or to one in `ca_file`.
fn tls_parameters(config: &MfaEmailConfig) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(config.smtp_host.clone());
    if let Some(path) = &config.ca_file {
        for cert in crate::tls::load_certs(path).context("mfa.email.ca_file")? {
            let cert = Certificate::from_der(cert.to_vec()).with_context(|| {
                format!(
                    "mfa.email.ca_file: a certificate in {} is not usable",
                    path.display()
                )
            })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .context("mfa.email: setting up TLS towards the relay")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    fn config(tls: SmtpTls, ca_file: Option<&str>) -> MfaEmailConfig {
        MfaEmailConfig {
            smtp_url: "smtps://relay.example.com".into(),
            smtp_host: "relay.example.com".into(),
            smtp_port: 465,
            tls,
            credentials: None,
            ca_file: ca_file.map(Into::into),
            timeout: Duration::from_secs(10),
            from: "passgate@example.com".into(),
        }
    }

    #[test]
    fn an_unusable_ca_file_stops_the_start_with_its_key() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("writing the file");
        let missing = dir.path().join("missing.pem");
        for path in [&empty, &missing] {
            let config = config(SmtpTls::Implicit, path.to_str());
            let Err(e) = Mailer::new(&config) else {
                panic!("{} was accepted", path.display());
            };
            let text = format!("{e:#}");
            assert!(text.starts_with("mfa.email.ca_file"), "{text}");
        }
        for tls in [
            SmtpTls::Off,
            SmtpTls::Opportunistic,
            SmtpTls::Required,
            SmtpTls::Implicit,
        ] {
            assert!(Mailer::new(&config(tls, None)).is_ok(), "{tls:?}");
        }
    }
}
