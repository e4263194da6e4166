//! The typed values of `[mfa]`, `[mfa.email]`, the store's encryption key
//! and a route's step-up (`require_mfa`); validated in `validate/mfa.rs`.

use std::path::PathBuf;
use std::time::Duration;

use http::Method;

use super::Secret;

/// `[mfa]`: second factors on the password grant.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// Wrong codes per user before further codes are refused.
    pub max_failures: u32,
    /// One more attempt is allowed this often once the limit is reached.
    pub failure_refill: Duration,
    /// `[mfa.email]`: without it the e-mail channel is not offered.
    pub email: Option<MfaEmailConfig>,
}

impl Default for MfaConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            failure_refill: Duration::from_secs(360),
            email: None,
        }
    }
}

/// `[mfa.email]`: where e-mail codes go out.
#[derive(Debug, Clone)]
pub struct MfaEmailConfig {
    /// `smtp://host[:port]` or `smtps://host[:port]`, as written.
    pub smtp_url: String,
    /// Its host.
    pub smtp_host: String,
    /// Its port (25 for `smtp://`, 465 for `smtps://`, when the URL names none).
    pub smtp_port: u16,
    /// Whether and how the connection is encrypted.
    pub tls: SmtpTls,
    /// `username` and the password, to log in to the relay.
    pub credentials: Option<SmtpCredentials>,
    /// `ca_file`: more roots for the relay's certificate, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// How long sending one code may take, from connecting to the relay's
    /// answer to the message.
    pub timeout: Duration,
    /// The sender address.
    pub from: String,
}

/// How the connection to the SMTP relay is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`, `starttls = "off"`: plain text throughout.
    Off,
    /// `smtp://`, `starttls = "opportunistic"`: STARTTLS when the relay
    /// offers it, plain text when it does not.
    Opportunistic,
    /// `smtp://`, `starttls = "required"`: STARTTLS, or nothing is sent.
    Required,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

impl SmtpTls {
    /// Whether everything sent is sure to be encrypted.
    pub fn always_encrypted(self) -> bool {
        matches!(self, SmtpTls::Required | SmtpTls::Implicit)
    }
}

/// The relay's login (`username`, and `password` or `password_env`).
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    /// The user the relay knows passgate as.
    pub username: String,
    /// Its password (never logged: `Secret`).
    pub password: Secret,
}

/// Where the store's encryption key comes from.
#[derive(Debug, Clone)]
pub enum EncryptionKeySource {
    /// A file holding the key (64 hex digits); generated on first start when absent.
    File(PathBuf),
    /// An environment variable holding the key (64 hex digits), read at start.
    Env {
        /// The variable's name, for messages.
        name: String,
        /// Its value.
        value: Secret,
    },
}

/// `[[routes]] require_mfa`: which methods need `amr` to contain `mfa` (RFC 9470).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUp {
    /// No method (the default).
    Never,
    /// Every method (`require_mfa = true`).
    Always,
    /// These methods only (`require_mfa = ["POST", ...]`).
    Methods(Vec<Method>),
}

impl StepUp {
    /// True when a request with `method` needs a second factor.
    pub fn applies_to(&self, method: &Method) -> bool {
        match self {
            StepUp::Never => false,
            StepUp::Always => true,
            StepUp::Methods(list) => list.contains(method),
        }
    }
}
