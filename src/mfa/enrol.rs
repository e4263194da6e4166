//! Enrolment and challenges: `POST /mfa/associate` (TOTP, or e-mail codes),
//! `GET /mfa/authenticators`, `DELETE /mfa/authenticators/{id}` and
//! `POST /mfa/challenge`. A new authenticator is pending until its first
//! successful verification; its recovery code becomes live with it.

use serde::Serialize;

use super::{KIND_EMAIL, KIND_OTP, KIND_RECOVERY, Mfa, MfaError, codes, seal_context, totp};
use crate::store::User;
use crate::store::mfa::{MfaTransaction, OobChallenge, StoredAuthenticator};

/// One authenticator as `GET /mfa/authenticators` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuthenticatorView {
    /// `totp|...`, `email|...`, `recovery-code|...`
    pub id: String,
    /// `otp`, `oob` or `recovery-code`.
    pub authenticator_type: &'static str,
    /// `email` for e-mail authenticators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oob_channel: Option<&'static str>,
    /// The masked address of an e-mail authenticator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Confirmed.
    pub active: bool,
}

/// A new TOTP enrolment, as `POST /mfa/associate` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct OtpEnrolment {
    /// `otp`
    pub authenticator_type: &'static str,
    /// The seed, base32.
    pub secret: String,
    /// `otpauth://totp/...`
    pub barcode_uri: String,
    /// One recovery code, live once the enrolment is confirmed.
    pub recovery_codes: Vec<String>,
}

/// A new e-mail enrolment (the code is on its way).
#[derive(Debug, Clone, Serialize)]
pub struct EmailEnrolment {
    /// `oob`
    pub authenticator_type: &'static str,
    /// `email`
    pub oob_channel: &'static str,
    /// Names the challenge in the `mfa-oob` grant.
    pub oob_code: String,
    /// `prompt`: the user types the e-mailed code as `binding_code`.
    pub binding_method: &'static str,
    /// One recovery code, live once the enrolment is confirmed.
    pub recovery_codes: Vec<String>,
}

/// What `POST /mfa/challenge` answers.
#[derive(Debug, Clone)]
pub enum Challenge {
    /// The user reads a code from the app.
    Otp,
    /// A code must be e-mailed: `send_to` gets `code`; the client gets `oob_code`.
    Oob {
        /// Names the challenge in the `mfa-oob` grant.
        oob_code: String,
        /// The user's address.
        send_to: String,
        /// The code to e-mail (never in the answer).
        code: String,
    },
}

/// An e-mail code to send: `(address, code)`.
pub type Outgoing = (String, String);

impl Mfa {
    /// Every authenticator of a user.
    pub async fn list(&self, user_id: &str) -> Result<Vec<AuthenticatorView>, MfaError> {
        Ok(self
            .store
            .authenticators(user_id)
            .await?
            .into_iter()
            .map(|a| {
                let (kind, channel, name) = match a.kind.as_str() {
                    KIND_OTP => ("otp", None, None),
                    KIND_EMAIL => (
                        "oob",
                        Some("email"),
                        Some(codes::mask_email(&String::from_utf8_lossy(&a.secret))),
                    ),
                    _ => ("recovery-code", None, None),
                };
                AuthenticatorView {
                    id: a.id,
                    authenticator_type: kind,
                    oob_channel: channel,
                    name,
                    active: a.active,
                }
            })
            .collect())
    }

    /// Start a TOTP enrolment for `user`; a pending one is replaced.
    pub async fn associate_otp(&self, user: &User) -> Result<OtpEnrolment, MfaError> {
        self.clear_pending(&user.user_id).await?;
        let seed = totp::new_seed();
        let id = codes::new_id("totp");
        let sealed = self.key.seal(&seed, &seal_context(&user.user_id, &id))?;
        let recovery = codes::new_recovery_code();
        self.store
            .add_authenticators(&[
                self.pending(&user.user_id, id, KIND_OTP, sealed),
                self.pending(
                    &user.user_id,
                    codes::new_id(KIND_RECOVERY),
                    KIND_RECOVERY,
                    codes::hash(&recovery),
                ),
            ])
            .await?;
        let account = user.email.as_deref().unwrap_or(user.display_name());
        Ok(OtpEnrolment {
            authenticator_type: "otp",
            secret: totp::base32(&seed),
            barcode_uri: totp::barcode_uri(&seed, &self.label, account),
            recovery_codes: vec![recovery],
        })
    }

    /// Start an e-mail enrolment for `user` within transaction `t`; the
    /// returned code must then be sent ([`Mfa::send`]).
    pub async fn associate_email(
        &self,
        user: &User,
        t: &MfaTransaction,
    ) -> Result<(EmailEnrolment, Outgoing), MfaError> {
        if self.mailer.is_none() {
            return Err(MfaError::BadRequest(
                "the email channel is not enabled".into(),
            ));
        }
        let Some(address) = user.email.clone() else {
            return Err(MfaError::BadRequest("the user has no email address".into()));
        };
        self.clear_pending(&user.user_id).await?;
        let id = codes::new_id(KIND_EMAIL);
        let recovery = codes::new_recovery_code();
        self.store
            .add_authenticators(&[
                self.pending(
                    &user.user_id,
                    id.clone(),
                    KIND_EMAIL,
                    address.clone().into_bytes(),
                ),
                self.pending(
                    &user.user_id,
                    codes::new_id(KIND_RECOVERY),
                    KIND_RECOVERY,
                    codes::hash(&recovery),
                ),
            ])
            .await?;
        let (oob_code, code) = self.new_oob(t, &id).await?;
        Ok((
            EmailEnrolment {
                authenticator_type: "oob",
                oob_channel: "email",
                oob_code,
                binding_method: "prompt",
                recovery_codes: vec![recovery],
            },
            (address, code),
        ))
    }

    /// Challenge one of the user's factors: `otp`, or `oob` (an e-mail code).
    pub async fn challenge(
        &self,
        t: &MfaTransaction,
        challenge_type: Option<&str>,
        authenticator_id: Option<&str>,
    ) -> Result<Challenge, MfaError> {
        let all = self.store.authenticators(&t.user_id).await?;
        let wanted = |a: &&StoredAuthenticator| {
            authenticator_id.is_none_or(|id| a.id == id)
                && match challenge_type {
                    Some("otp") => a.kind == KIND_OTP,
                    Some("oob") => a.kind == KIND_EMAIL,
                    None => a.kind == KIND_OTP || a.kind == KIND_EMAIL,
                    Some(_) => false,
                }
        };
        // A confirmed factor first; a pending one is challenged to confirm it.
        let found = all
            .iter()
            .filter(wanted)
            .max_by_key(|a| a.active)
            .ok_or_else(|| {
                MfaError::BadRequest("no enrolled authenticator matches the challenge".into())
            })?;
        if found.kind == KIND_OTP {
            return Ok(Challenge::Otp);
        }
        if self.mailer.is_none() {
            return Err(MfaError::BadRequest(
                "the email channel is not enabled".into(),
            ));
        }
        let (oob_code, code) = self.new_oob(t, &found.id).await?;
        Ok(Challenge::Oob {
            oob_code,
            send_to: String::from_utf8_lossy(&found.secret).into_owned(),
            code,
        })
    }

    /// E-mail a code.
    pub async fn send(&self, (to, code): Outgoing) -> Result<(), MfaError> {
        let Some(mailer) = &self.mailer else {
            return Err(MfaError::BadRequest(
                "the email channel is not enabled".into(),
            ));
        };
        mailer
            .send_code(&to, &code, &self.label)
            .await
            .map_err(MfaError::Send)
    }

    /// Remove an authenticator of `user_id`; a confirmed one only when
    /// `confirmed_too` (a token from a login that did MFA, or an administrator).
    pub async fn remove(
        &self,
        user_id: &str,
        id: &str,
        confirmed_too: bool,
    ) -> Result<(), MfaError> {
        if self
            .store
            .remove_authenticator(user_id, id, !confirmed_too)
            .await?
        {
            Ok(())
        } else {
            Err(MfaError::NotFound)
        }
    }

    /// Refuse a second enrolment; drop a pending one (and its recovery code).
    async fn clear_pending(&self, user_id: &str) -> Result<(), MfaError> {
        let all = self.store.authenticators(user_id).await?;
        if all.iter().any(|a| a.active && a.kind != KIND_RECOVERY) {
            return Err(MfaError::AlreadyEnrolled);
        }
        for a in all.iter().filter(|a| !a.active) {
            self.store
                .remove_authenticator(user_id, &a.id, true)
                .await?;
        }
        Ok(())
    }

    fn pending(
        &self,
        user_id: &str,
        id: String,
        kind: &str,
        secret: Vec<u8>,
    ) -> StoredAuthenticator {
        StoredAuthenticator {
            id,
            user_id: user_id.to_string(),
            kind: kind.to_string(),
            secret,
            active: false,
            last_step: 0,
            created_at: self.clock.now(),
        }
    }

    /// A fresh e-mail challenge on `t` for authenticator `id`: `(oob_code, code)`.
    async fn new_oob(&self, t: &MfaTransaction, id: &str) -> Result<(String, String), MfaError> {
        let oob_code = codes::new_token();
        let code = codes::new_digits();
        self.store
            .set_oob(
                &t.token_hash,
                &OobChallenge {
                    authenticator_id: id.to_string(),
                    oob_code_hash: codes::hash_hex(&oob_code),
                    binding_hash: codes::hash_hex(&code),
                    expires_at: (self.clock.now() + super::email::CODE_LIFETIME_SECS)
                        .min(t.expires_at),
                },
            )
            .await?;
        Ok((oob_code, code))
    }
}
