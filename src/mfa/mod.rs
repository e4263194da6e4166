//! Second factors on the password grant (issue 13): the policy that asks for
//! one, `mfa_token` transactions, TOTP, e-mail codes, recovery codes and the
//! per-user count of wrong codes. `oauth/` serves the wire side (the MFA gate
//! in `token.rs`, the `mfa-*` grants in `mfa_grant.rs`, `/mfa/*` in
//! `mfa_api.rs`); this module decides and keeps state through
//! [`crate::store::mfa::MfaStore`].
//!
//! Files: `policy` (when), `transaction` (the `mfa_token`), `enrol`
//! (associate, list, remove, challenge), `verify` (codes and failures),
//! `totp`, `email`, `codes` (random codes and their hashes), `failures`,
//! `error`. Secrets at rest: TOTP seeds are sealed with the store's key
//! (`crate::store::seal`), recovery codes are stored as hashes.

mod codes;
pub mod email;
mod enrol;
pub mod error;
pub mod failures;
pub mod policy;
pub mod totp;
mod transaction;
mod verify;

use std::sync::Arc;

pub use codes::{is_token_shaped, mask_email};
pub use enrol::{AuthenticatorView, Challenge, EmailEnrolment, OtpEnrolment};
pub use error::MfaError;
pub use policy::{Need, need};
pub use transaction::TOKEN_LIFETIME_SECS;

use crate::clock::SharedClock;
use crate::config::MfaConfig;
use crate::store::mfa::MfaStore;
use crate::store::seal::StoreKey;
use crate::tasks::Supervisor;

/// Kind of a TOTP authenticator in the store.
pub const KIND_OTP: &str = "otp";
/// Kind of an e-mail authenticator in the store.
pub const KIND_EMAIL: &str = "email";
/// Kind of a recovery code in the store.
pub const KIND_RECOVERY: &str = "recovery-code";

/// Second factors: everything the grants and endpoints ask of them.
#[derive(Debug)]
pub struct Mfa {
    store: Arc<dyn MfaStore>,
    key: Arc<StoreKey>,
    clock: SharedClock,
    config: MfaConfig,
    /// The issuer shown in authenticator apps and e-mails.
    label: String,
    mailer: Option<email::Mailer>,
}

impl Mfa {
    /// Second factors over `store`, sealing seeds with `key`; `label` names
    /// the service in authenticator apps and e-mails. Fails when the e-mail
    /// channel's TLS settings cannot be used (`[mfa.email] ca_file`).
    pub fn new(
        store: Arc<dyn MfaStore>,
        key: Arc<StoreKey>,
        clock: SharedClock,
        config: MfaConfig,
        label: String,
    ) -> anyhow::Result<Self> {
        let mailer = config.email.as_ref().map(email::Mailer::new).transpose()?;
        Ok(Self {
            store,
            key,
            clock,
            config,
            label,
            mailer,
        })
    }

    /// True when the e-mail channel is configured.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// The kinds a user has confirmed, as `mfa_requirements` names them
    /// (`otp`, `email`; recovery codes only back these).
    pub async fn enrolled_kinds(&self, user_id: &str) -> Result<Vec<&'static str>, MfaError> {
        let mut kinds = Vec::new();
        for a in self.store.authenticators(user_id).await? {
            let kind = match a.kind.as_str() {
                KIND_OTP => "otp",
                KIND_EMAIL if self.email_enabled() => "email",
                _ => continue,
            };
            if a.active && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }

    /// The kinds a user without a factor may enrol.
    pub fn enrollable_kinds(&self) -> Vec<&'static str> {
        let mut kinds = vec!["otp"];
        if self.email_enabled() {
            kinds.push("email");
        }
        kinds
    }

    /// Remove every authenticator of a user (`passgate users mfa reset`).
    pub async fn reset(&self, user_id: &str) -> Result<usize, MfaError> {
        Ok(self.store.reset_authenticators(user_id).await?)
    }

    /// Users with a confirmed factor.
    pub async fn enrolled_users(&self) -> Result<Vec<String>, MfaError> {
        Ok(self.store.enrolled_users().await?)
    }

    /// Drop expired transactions.
    pub async fn sweep(&self) -> Result<usize, MfaError> {
        Ok(self.store.sweep_transactions(self.clock.now()).await?)
    }

    /// Drop expired transactions every `every`, under `tasks`, until
    /// shutdown or the `Mfa` is dropped.
    pub fn start_sweeper(self: &Arc<Self>, tasks: &Supervisor, every: std::time::Duration) {
        let weak = Arc::downgrade(self);
        tasks.spawn("MFA transaction sweep", async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(mfa) = weak.upgrade() else {
                    return Ok(());
                };
                if let Err(e) = mfa.sweep().await {
                    tracing::warn!(error = %crate::telemetry::ErrorChain(&e), "sweeping MFA transactions failed");
                }
            }
        });
    }
}

/// The context a user's TOTP seed is sealed under: a sealed seed copied to
/// another row does not open.
fn seal_context(user_id: &str, id: &str) -> String {
    format!("mfa-seed|{user_id}|{id}")
}
