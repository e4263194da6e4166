//! The `users` and `sessions` commands of the `passgate` binary; `src/main.rs`
//! holds the command tree and the other commands.

pub mod sessions;
pub mod users;

/// The user a command acts on.
#[derive(clap::Args)]
pub struct UserArg {
    /// The realm (user directory).
    #[arg(long)]
    pub realm: String,
    /// The user's login name (or e-mail).
    #[arg(long)]
    pub username: String,
}

pub(crate) use super::ConfigArg;
