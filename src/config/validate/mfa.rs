//! `[mfa]` (`[mfa.email]` is in `smtp.rs`), and `[store]` with the key that encrypts secrets
//! at rest (TOTP seeds).

use std::path::PathBuf;

use super::*;

/// The default file of the store's encryption key: beside the database.
const DEFAULT_KEY_FILE: &str = "store.key";

pub(super) fn store(
    p: &mut Problems,
    raw: RawStore,
    env: &dyn Fn(&str) -> Option<String>,
) -> StoreConfig {
    let path = PathBuf::from(
        raw.path
            .clone()
            .unwrap_or_else(|| "data/passgate.db".into()),
    );
    let backend = super::store::backend(p, &raw, &path, env);
    let encryption_key = match (raw.encryption_key_file, raw.encryption_key_env) {
        (Some(_), Some(_)) => {
            p.add(
                "store.encryption_key_env",
                "give either encryption_key_file or encryption_key_env, not both",
            );
            EncryptionKeySource::File(PathBuf::new())
        }
        (Some(file), None) if file.is_empty() => {
            p.add("store.encryption_key_file", "is empty");
            EncryptionKeySource::File(PathBuf::new())
        }
        (Some(file), None) => EncryptionKeySource::File(PathBuf::from(file)),
        (None, Some(name)) => match env(&name) {
            Some(value) if is_key_hex(&value) => EncryptionKeySource::Env {
                name,
                value: Secret::new(value.trim().to_string()),
            },
            Some(_) => {
                p.add(
                    "store.encryption_key_env",
                    format!("${name} must hold 64 hex digits (a 256-bit key)"),
                );
                EncryptionKeySource::File(PathBuf::new())
            }
            None => {
                p.add("store.encryption_key_env", format!("${name} is not set"));
                EncryptionKeySource::File(PathBuf::new())
            }
        },
        (None, None) => EncryptionKeySource::File(path.with_file_name(DEFAULT_KEY_FILE)),
    };
    StoreConfig {
        path,
        backend,
        encryption_key,
    }
}

/// 64 hex digits, surrounding whitespace allowed.
pub fn is_key_hex(text: &str) -> bool {
    let t = text.trim();
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn mfa(
    p: &mut Problems,
    raw: Option<RawMfa>,
    env: &dyn Fn(&str) -> Option<String>,
) -> MfaConfig {
    let defaults = MfaConfig::default();
    let Some(raw) = raw else { return defaults };
    let max_failures = p.positive(
        "mfa.max_failures",
        raw.max_failures,
        u64::from(defaults.max_failures),
    );
    let max_failures = u32::try_from(max_failures).unwrap_or_else(|_| {
        p.add("mfa.max_failures", "too large");
        defaults.max_failures
    });
    let failure_refill = p.duration(
        "mfa.failure_refill",
        &raw.failure_refill,
        defaults.failure_refill,
    );
    let email = raw.email.and_then(|e| super::smtp::email(p, e, env));
    MfaConfig {
        max_failures,
        failure_refill,
        email,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, EncryptionKeySource};

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_with_env(text, &|n| (n == "K").then(|| "ab".repeat(32))) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        }
    }

    #[test]
    fn every_mfa_problem_is_named() {
        let found = problems(
            "[mfa]\nmax_failures = 0\nfailure_refill = \"soon\"\n[mfa.email]\nsmtp_url = \"http://x\"\nfrom = \"nobody\"\n[store]\nencryption_key_env = \"MISSING\"\n",
        );
        for key in [
            "mfa.max_failures",
            "mfa.failure_refill",
            "mfa.email.smtp_url",
            "mfa.email.from",
            "store.encryption_key_env",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(key)),
                "{key} in {found:?}"
            );
        }
    }

    #[test]
    fn key_defaults_beside_the_store_or_comes_from_the_environment() {
        let c = Config::from_toml("[store]\npath = \"d/p.db\"\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&c.store.encryption_key, EncryptionKeySource::File(f) if f.ends_with("d/store.key"))
        );
        assert_eq!(c.mfa.max_failures, 10);
        assert_eq!(c.mfa.failure_refill.as_secs(), 360);
        let c = Config::from_toml_with_env("[store]\nencryption_key_env = \"K\"\n", &|_| {
            Some("00".repeat(32))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            c.store.encryption_key,
            EncryptionKeySource::Env { .. }
        ));
    }

    #[test]
    fn step_up_takes_true_or_methods() {
        let base =
            "[[routes]]\nprefix = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\naudience = \"x\"\n";
        let c = Config::from_toml(&format!("{base}require_mfa = [\"POST\", \"DELETE\"]\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(c.routes[0].require_mfa.applies_to(&http::Method::POST));
        assert!(!c.routes[0].require_mfa.applies_to(&http::Method::GET));
        let found = problems(&format!("{base}require_mfa = [\"post\"]\n"));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("routes[0].require_mfa[0]")),
            "{found:?}"
        );
        let found = problems(&format!("{base}require_mfa = 3\n"));
        assert!(
            found.iter().any(|p| p.starts_with("routes[0].require_mfa")),
            "{found:?}"
        );
    }
}
