//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of skew
//! either way, computed by `totp-rs`. Which step matched is ours to know, so
//! each code is accepted once: the store keeps the last accepted step and a
//! code of that step or an earlier one is a replay.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes of a new seed (160 bits, as RFC 4226 recommends).
pub const SEED_LEN: usize = 20;

/// A new random seed.
pub fn new_seed() -> Vec<u8> {
    let seed: [u8; SEED_LEN] = rand::random();
    seed.to_vec()
}

/// The seed as the user types it into an authenticator app: base32, no padding.
pub fn base32(seed: &[u8]) -> String {
    match Secret::Raw(seed.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

/// `otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
pub fn barcode_uri(seed: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        enc(issuer),
        enc(account),
        base32(seed),
        enc(issuer)
    )
}

fn totp(seed: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP, seed.to_vec()).ok()
}

/// The code of `seed` at `now` (seconds since the epoch), for tests and tools.
pub fn code_at(seed: &[u8], now: i64) -> String {
    totp(seed)
        .map(|t| t.generate(u64::try_from(now).unwrap_or(0)))
        .unwrap_or_default()
}

/// The step `code` belongs to, among now's and its neighbours, when that
/// step is later than `last_step` (an earlier one is a replay).
pub fn matching_step(seed: &[u8], code: &str, now: i64, last_step: i64) -> Option<i64> {
    let t = totp(seed)?;
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = u64::try_from(now).ok()? / STEP;
    let mut found = None;
    // Every candidate is computed and compared in constant time, so the
    // answer's timing does not tell which step matched.
    for step in current.saturating_sub(1)..=current + 1 {
        let expected = t.generate(step * STEP);
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
        let step = i64::try_from(step).ok()?;
        if same && step > last_step {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vector_and_window() {
        // RFC 6238 appendix B, SHA-1, time 59: 94287082 (8 digits) → 287082 in 6.
        let seed = b"12345678901234567890";
        assert_eq!(code_at(seed, 59), "287082");
        let code = code_at(seed, 1_000_000);
        let step = 1_000_000 / 30;
        assert_eq!(matching_step(seed, &code, 1_000_000, 0), Some(step));
        assert_eq!(
            matching_step(seed, &code, 1_000_000 + 30, 0),
            Some(step),
            "one step late"
        );
        assert_eq!(
            matching_step(seed, &code, 1_000_000 - 30, 0),
            Some(step),
            "one step early"
        );
        assert_eq!(
            matching_step(seed, &code, 1_000_000 + 60, 0),
            None,
            "two steps late"
        );
        assert_eq!(
            matching_step(seed, &code, 1_000_000, step),
            None,
            "a replay"
        );
        assert_eq!(matching_step(seed, "12345", 1_000_000, 0), None);
    }

    #[test]
    fn barcode_names_issuer_and_account() {
        let uri = barcode_uri(&[0u8; 20], "pass gate", "a@b.c");
        assert_eq!(
            uri,
            "otpauth://totp/pass%20gate:a%40b%2Ec?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&issuer=pass%20gate&algorithm=SHA1&digits=6&period=30"
        );
    }
}
