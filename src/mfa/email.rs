//! The e-mail channel: a 6-digit code sent over SMTP (`lettre`) to the
//! user's address, configured by `[mfa.email]`. Without that section the
//! channel is not offered. The code is the `binding_code` of the `mfa-oob`
//! grant; the `oob_code` handed to the client names the challenge.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MfaEmailConfig;

/// How long a sent code stays good.
pub const CODE_LIFETIME_SECS: i64 = 300;

/// Sends e-mail codes.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
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
}

impl Mailer {
    /// A mailer for `[mfa.email]`; nothing connects until a code is sent.
    pub fn new(config: &MfaEmailConfig) -> Self {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.smtp_host.clone())
                .port(config.smtp_port)
                .timeout(Some(Duration::from_secs(10)))
                .build();
        Self {
            transport,
            from: config.from.clone(),
        }
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
        self.transport.send(message).await?;
        Ok(())
    }
}
