//! What the MFA operations refuse, before it becomes a wire error in
//! `oauth/` (which owns the mapping to status and JSON).

use crate::store::StoreError;

/// `Malformed mfa_token`
pub const MALFORMED_TOKEN: &str = "Malformed mfa_token";
/// `mfa_token is expired`
pub const EXPIRED_TOKEN: &str = "mfa_token is expired";
/// `Invalid otp_code.`
pub const INVALID_OTP: &str = "Invalid otp_code.";
/// A wrong or stale e-mail code.
pub const INVALID_BINDING: &str = "Invalid binding_code.";
/// A wrong, spent or unknown recovery code.
pub const INVALID_RECOVERY: &str = "Invalid recovery_code.";
/// Too many wrong codes for this user.
pub const TOO_MANY_FAILURES: &str = "Too many failed second-factor attempts. Try again later.";
/// `User is already enrolled.`
pub const ALREADY_ENROLLED: &str = "User is already enrolled.";

/// Why an MFA operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// The `mfa_token` is not one of ours, was used, or belongs to another client.
    #[error("{MALFORMED_TOKEN}")]
    MalformedToken,
    /// The `mfa_token` outlived its 10 minutes.
    #[error("{EXPIRED_TOKEN}")]
    ExpiredToken,
    /// A wrong or replayed OTP.
    #[error("{INVALID_OTP}")]
    InvalidOtp,
    /// A wrong or stale e-mail code, or an unknown `oob_code`.
    #[error("{INVALID_BINDING}")]
    InvalidBinding,
    /// A wrong or spent recovery code.
    #[error("{INVALID_RECOVERY}")]
    InvalidRecovery,
    /// Too many wrong codes: none is checked until the count refills.
    #[error("{TOO_MANY_FAILURES}")]
    TooManyFailures,
    /// An enrolment asked for while a confirmed factor exists.
    #[error("{ALREADY_ENROLLED}")]
    AlreadyEnrolled,
    /// A request the operation cannot serve (text safe to show).
    #[error("{0}")]
    BadRequest(String),
    /// No such authenticator for this user (or not removable this way).
    #[error("authenticator not found")]
    NotFound,
    /// The e-mail did not go out.
    #[error("sending the e-mail code failed")]
    Send(#[source] super::email::SendError),
    /// The store failed.
    #[error("mfa store: {0}")]
    Store(#[from] StoreError),
    /// A sealed seed did not open (a wrong store key, or a damaged row).
    #[error("mfa store: {0}")]
    Sealed(#[from] crate::store::seal::SealError),
}
