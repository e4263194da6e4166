//! The administrator's user operations behind `passgate users ...`.

use std::sync::Arc;

use serde_json::json;

use super::password::Hasher;
use crate::clock::SharedClock;
use crate::store::protect::ProtectStore;
use crate::store::sessions::SessionStore;
use crate::store::{Store, StoreError, User, new_user_id};

/// Why a user operation failed; the message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user.
    #[error("no user \"{username}\" in realm \"{realm}\"")]
    NotFound {
        /// The realm searched.
        realm: String,
        /// The name looked for.
        username: String,
    },
    /// A bad value.
    #[error("{0}")]
    Invalid(String),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// User administration over a store.
#[derive(Debug, Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    hasher: Hasher,
    clock: SharedClock,
    sessions: Option<Arc<dyn SessionStore>>,
    protect: Option<Arc<dyn ProtectStore>>,
}

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A username and an e-mail address a user may log in with: a username is
/// not blank, an address has an `@`, and neither has a control character
/// (which the PostgreSQL store could not hold, for NUL). For `users add` and
/// `users import`.
pub fn check_login_names(username: Option<&str>, email: Option<&str>) -> Result<(), String> {
    if let Some(name) = username
        && (name.trim().is_empty() || name.chars().any(char::is_control))
    {
        return Err("the username must not be empty or contain control characters".into());
    }
    if let Some(e) = email
        && (!e.contains('@') || e.chars().any(char::is_control))
    {
        return Err(format!("{e:?} is not an e-mail address"));
    }
    Ok(())
}

/// Check a new password's shape.
pub fn check_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(AdminError::Invalid(
            "the password is longer than 1024 bytes".into(),
        ));
    }
    Ok(())
}

impl Admin {
    /// Administration of `store`.
    pub fn new(store: Arc<dyn Store>, hasher: Hasher, clock: SharedClock) -> Self {
        Self {
            store,
            hasher,
            clock,
            sessions: None,
            protect: None,
        }
    }

    /// Also lift a user's brute-force blocks when their password changes.
    pub fn with_protect(mut self, protect: Arc<dyn ProtectStore>) -> Self {
        self.protect = Some(protect);
        self
    }

    /// Also end a user's login sessions when they are blocked or their password changes.
    pub fn with_sessions(mut self, sessions: Arc<dyn SessionStore>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// End every session of `user_id`; returns how many were live.
    pub async fn end_sessions(&self, user_id: &str) -> Result<usize, AdminError> {
        match &self.sessions {
            Some(s) => Ok(s
                .revoke_user_sessions(user_id, self.clock.now())
                .await?
                .len()),
            None => Ok(0),
        }
    }

    /// Add a user with a password.
    pub async fn add(
        &self,
        realm: &str,
        username: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<User, AdminError> {
        check_login_names(Some(username), email).map_err(AdminError::Invalid)?;
        check_password(password)?;
        let now = self.clock.now();
        let user = User {
            user_id: new_user_id(),
            realm: realm.to_string(),
            username: Some(username.to_string()),
            email: email.map(str::to_string),
            email_verified: false,
            name: None,
            password_hash: Some(
                self.hasher
                    .hash_blocking(password)
                    .map_err(|e| AdminError::Invalid(e.to_string()))?,
            ),
            blocked: false,
            app_metadata: json!({}),
            user_metadata: json!({}),
            created_at: now,
            updated_at: now,
            last_login: None,
            logins_count: 0,
        };
        match self.store.create_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(why)) => Err(AdminError::Invalid(format!(
                "realm \"{realm}\" already has a user named \"{username}\"{}: {why}",
                email
                    .map(|e| format!(" or with the e-mail {e}"))
                    .unwrap_or_default()
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The user of `realm` called `username` (or with that e-mail).
    pub async fn find(&self, realm: &str, username: &str) -> Result<User, AdminError> {
        self.store
            .find_login(realm, username)
            .await?
            .ok_or_else(|| AdminError::NotFound {
                realm: realm.into(),
                username: username.into(),
            })
    }

    /// Every user of a realm.
    pub async fn list(&self, realm: &str) -> Result<Vec<User>, AdminError> {
        Ok(self.store.list_users(realm).await?)
    }

    /// Remove a user.
    pub async fn remove(&self, realm: &str, username: &str) -> Result<User, AdminError> {
        let user = self.find(realm, username).await?;
        self.store.remove_user(&user.user_id).await?;
        Ok(user)
    }

    /// Block or unblock a user.
    pub async fn set_blocked(
        &self,
        realm: &str,
        username: &str,
        blocked: bool,
    ) -> Result<User, AdminError> {
        let user = self.find(realm, username).await?;
        self.store
            .set_blocked(&user.user_id, blocked, self.clock.now())
            .await?;
        if blocked {
            self.end_sessions(&user.user_id).await?;
        }
        Ok(user)
    }

    /// Replace a user's password.
    pub async fn set_password(
        &self,
        realm: &str,
        username: &str,
        password: &str,
    ) -> Result<User, AdminError> {
        check_password(password)?;
        let user = self.find(realm, username).await?;
        let hash = self
            .hasher
            .hash_blocking(password)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store
            .set_password_hash(&user.user_id, &hash, self.clock.now())
            .await?;
        self.end_sessions(&user.user_id).await?;
        if let Some(p) = &self.protect {
            crate::protect::lift_after_password_change(p.as_ref(), &user).await?;
        }
        Ok(user)
    }

    /// The store, for imports.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}
