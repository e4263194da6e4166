//! Random codes the user or the client holds: recovery codes, e-mail codes,
//! `oob_code`s and `mfa_token`s. Only their SHA-256 is stored; all are random
//! enough (recovery codes 120 bits, tokens 256) that a fast hash suffices,
//! except the 6-digit e-mail code, which is short-lived, bound to one
//! transaction and counted as a failure when wrong.

use base64::Engine;
use sha2::{Digest, Sha256};

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new recovery code: 24 characters of base32 (120 bits).
pub fn new_recovery_code() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes
        .iter()
        .map(|b| BASE32[usize::from(b % 32)] as char)
        .collect()
}

/// A recovery code as typed (spaces, dashes, lower case) → as issued.
pub fn normalise_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A new opaque token (256 bits, base64url without padding: 43 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `text` has the shape of [`new_token`]'s output.
pub fn is_token_shaped(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new 6-digit code for e-mail.
pub fn new_digits() -> String {
    let n: u32 = rand::random_range(0..1_000_000);
    format!("{n:06}")
}

/// SHA-256, raw.
pub fn hash(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// SHA-256, hex.
pub fn hash_hex(text: &str) -> String {
    hash(text).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new authenticator id: `<kind>|` and 16 hex digits.
pub fn new_id(kind: &str) -> String {
    let n: u64 = rand::random();
    format!("{kind}|{n:016x}")
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 24);
        assert_eq!(normalise_recovery_code(&code.to_lowercase()), code);
        assert!(is_token_shaped(&new_token()));
        assert!(!is_token_shaped("a.b.c"));
        assert_eq!(new_digits().len(), 6);
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert!(new_id("totp").starts_with("totp|"));
        assert_eq!(hash_hex("").len(), 64);
    }
}
