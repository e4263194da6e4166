//! `passgate keys rotate [--now]`: add a signing key to where the keys live
//! (`gateway::key_source`: the `[issuer] signing_keys` folder on SQLite).
//! Running passgates publish it within seconds and sign with it once cached
//! copies of the JWKS have expired (docs/architecture.md, "Signing keys").
//! Part of the `passgate` binary (`src/main.rs`), not of the library.

use std::sync::Arc;

use clap::Subcommand;
use passgate::clock::{Clock, SystemClock};
use passgate::config::{Config, jwa::alg_name};
use passgate::store::seal::StoreKey;
use passgate::telemetry::ErrorChain;
use passgate::tokens::key_source::{Rotated, rotate};
use passgate::tokens::live::REFRESH_EVERY;
use passgate::tokens::ring::JWKS_MAX_AGE;

use super::ConfigArg;

#[derive(Subcommand)]
pub enum KeysAction {
    /// Make a new signing key. Running passgates publish it within seconds
    /// and sign with it once cached copies of the JWKS have expired (about
    /// five minutes); older keys stay published.
    Rotate {
        /// Sign with the new key at once, for emergencies (a leaked key):
        /// verifiers holding a cached JWKS refuse its tokens until they
        /// fetch the JWKS again.
        #[arg(long)]
        now: bool,
    },
}

pub async fn keys(action: KeysAction, arg: ConfigArg) -> Result<(), String> {
    let KeysAction::Rotate { now: at_once } = action;
    let config = Config::load(&arg.config).map_err(|e| format!("{}: {e}", arg.config.display()))?;
    let Some(issuer) = &config.issuer else {
        return Err(format!(
            "{}: there is no [issuer] section, so no signing keys",
            arg.config.display()
        ));
    };
    passgate::tls::install_crypto_providers();
    let store = super::open_store(&config).await?;
    let seal = StoreKey::load(&config.store.encryption_key).map_err(|e| {
        format!(
            "store.encryption_key_file / encryption_key_env: {}",
            ErrorChain(&e)
        )
    })?;
    let source = passgate::gateway::key_source(&config.store, issuer, &store, &Arc::new(seal));
    let now = SystemClock.now();
    let rotated = rotate(source.as_ref(), issuer.algorithm, now, at_once)
        .await
        .map_err(|e| format!("keys rotate: {}", ErrorChain(&e)))?;
    println!("{}", report(&rotated, &source.describe(), now, at_once));
    Ok(())
}

/// What `keys rotate` says: the key, where it went, when it signs.
fn report(r: &Rotated, place: &str, now: i64, at_once: bool) -> String {
    let picked_up = REFRESH_EVERY.as_secs();
    let head = format!(
        "new signing key {} ({}) in {place}; running passgates publish it within {picked_up} s",
        r.kid,
        alg_name(r.alg)
    );
    if at_once {
        return format!(
            "{head} and sign with it at once (--now).\n\
             Emergency rotation: verifiers holding a cached JWKS (up to {} s) refuse its tokens until they fetch the JWKS again.",
            JWKS_MAX_AGE.as_secs()
        );
    }
    let when = u64::try_from(r.signs_from)
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_else(|_| r.signs_from.to_string());
    format!(
        "{head}.\nIt starts signing at {when} (in {} s), once cached copies of the JWKS (max-age {} s) have expired; the current key signs until then.",
        r.signs_from.saturating_sub(now),
        JWKS_MAX_AGE.as_secs()
    )
}
