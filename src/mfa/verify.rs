//! Checking a second factor: a TOTP code (once per step), an e-mail code,
//! or a recovery code (spent and replaced at once). Every wrong code counts
//! against the user ([`super::failures`]); while the count is full no code
//! is even checked. A successful check confirms a pending enrolment.

use subtle::ConstantTimeEq;

use super::{KIND_OTP, KIND_RECOVERY, Mfa, MfaError, codes, failures, seal_context, totp};
use crate::store::mfa::{Confirmed, MfaTransaction, OtpConfirmation, StoredAuthenticator};

impl Mfa {
    /// Check a TOTP code for the transaction's user and, when it is right,
    /// finish the transaction: accepting the step, confirming the factor,
    /// clearing the wrong-code count and ending the transaction are one
    /// store transaction (`MfaStore::confirm_otp`).
    pub async fn verify_otp_and_finish(
        &self,
        t: &MfaTransaction,
        otp: &str,
    ) -> Result<(), MfaError> {
        self.not_blocked(&t.user_id).await?;
        let now = self.clock.now();
        for a in self.store.authenticators(&t.user_id).await? {
            if a.kind != KIND_OTP {
                continue;
            }
            let seed = self.key.open(&a.secret, &seal_context(&t.user_id, &a.id))?;
            let Some(step) = totp::matching_step(&seed, otp.trim(), now, a.last_step) else {
                continue;
            };
            let confirmation = OtpConfirmation {
                user_id: &t.user_id,
                authenticator_id: &a.id,
                step,
                token_hash: &t.token_hash,
                now,
            };
            match self.store.confirm_otp(&confirmation).await? {
                Confirmed::Done => return Ok(()),
                Confirmed::TransactionUsed => return Err(MfaError::MalformedToken),
                Confirmed::StepUsed => {}
            }
        }
        self.failed(&t.user_id).await?;
        Err(MfaError::InvalidOtp)
    }

    /// Check the e-mail code (`binding_code`) of the challenge `oob_code` names.
    pub async fn verify_oob(
        &self,
        t: &MfaTransaction,
        oob_code: &str,
        binding_code: &str,
    ) -> Result<(), MfaError> {
        self.not_blocked(&t.user_id).await?;
        let right = t.oob.as_ref().filter(|o| {
            let same_oob: bool = codes::hash_hex(oob_code)
                .as_bytes()
                .ct_eq(o.oob_code_hash.as_bytes())
                .into();
            let same_code: bool = codes::hash_hex(binding_code.trim())
                .as_bytes()
                .ct_eq(o.binding_hash.as_bytes())
                .into();
            same_oob && same_code && self.clock.now() <= o.expires_at
        });
        match right {
            Some(o) => {
                self.store
                    .activate(&t.user_id, std::slice::from_ref(&o.authenticator_id))
                    .await?;
                self.succeeded(&t.user_id).await
            }
            None => {
                self.failed(&t.user_id).await?;
                Err(MfaError::InvalidBinding)
            }
        }
    }

    /// Spend a recovery code; returns its successor (the only time it exists in clear).
    pub async fn verify_recovery(
        &self,
        t: &MfaTransaction,
        code: &str,
    ) -> Result<String, MfaError> {
        self.not_blocked(&t.user_id).await?;
        let used = codes::hash(&codes::normalise_recovery_code(code));
        let next = codes::new_recovery_code();
        let successor = StoredAuthenticator {
            id: codes::new_id(KIND_RECOVERY),
            user_id: t.user_id.clone(),
            kind: KIND_RECOVERY.to_string(),
            secret: codes::hash(&next),
            active: true,
            last_step: 0,
            created_at: self.clock.now(),
        };
        if self
            .store
            .replace_recovery_code(&t.user_id, &used, &successor)
            .await?
        {
            self.succeeded(&t.user_id).await?;
            Ok(next)
        } else {
            self.failed(&t.user_id).await?;
            Err(MfaError::InvalidRecovery)
        }
    }

    async fn not_blocked(&self, user_id: &str) -> Result<(), MfaError> {
        let (now, refill) = (self.clock.now(), self.refill_secs());
        let count = self
            .store
            .update_failures(
                user_id,
                Box::new(move |stored| {
                    stored
                        .map(|s| failures::leaked(Some(s), now, refill))
                        .filter(|c| c.0 > 0)
                }),
            )
            .await?;
        if failures::blocked(count.unwrap_or((0, now)), self.config.max_failures) {
            return Err(MfaError::TooManyFailures);
        }
        Ok(())
    }

    async fn failed(&self, user_id: &str) -> Result<(), MfaError> {
        let (now, refill) = (self.clock.now(), self.refill_secs());
        self.store
            .update_failures(
                user_id,
                Box::new(move |stored| {
                    Some(failures::one_more(failures::leaked(stored, now, refill)))
                }),
            )
            .await?;
        Ok(())
    }

    /// A confirmed factor: pending recovery codes go live, the count clears.
    async fn succeeded(&self, user_id: &str) -> Result<(), MfaError> {
        let pending: Vec<String> = self
            .store
            .authenticators(user_id)
            .await?
            .into_iter()
            .filter(|a| !a.active && a.kind == KIND_RECOVERY)
            .map(|a| a.id)
            .collect();
        self.store.activate(user_id, &pending).await?;
        self.store
            .update_failures(user_id, Box::new(|_| None))
            .await?;
        Ok(())
    }

    fn refill_secs(&self) -> i64 {
        i64::try_from(self.config.failure_refill.as_secs()).unwrap_or(i64::MAX)
    }
}
