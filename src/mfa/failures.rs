//! Wrong codes per user: `[mfa] max_failures` of them refuse further codes,
//! and one more attempt comes back every `[mfa] failure_refill` (a leaky
//! bucket). The count is the user's, not the IP's or the transaction's, so a
//! new `mfa_token` does not buy new guesses; it never touches the password
//! step's counters.

/// The stored count after time has leaked some of it: `(failures, since)`,
/// where `since` is when the current refill period started.
pub fn leaked(stored: Option<(i64, i64)>, now: i64, refill_secs: i64) -> (i64, i64) {
    let Some((failures, since)) = stored else {
        return (0, now);
    };
    let refill = refill_secs.max(1);
    let periods = (now - since).max(0) / refill;
    let left = (failures - periods).max(0);
    if left == 0 {
        (0, now)
    } else {
        (left, since + periods * refill)
    }
}

/// True when no code may be tried now.
pub fn blocked(count: (i64, i64), max_failures: u32) -> bool {
    count.0 >= i64::from(max_failures)
}

/// The count after one more wrong code.
pub fn one_more(count: (i64, i64)) -> (i64, i64) {
    (count.0 + 1, count.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_block_and_one_comes_back_per_refill() {
        let mut c = leaked(None, 1000, 360);
        for _ in 0..10 {
            assert!(!blocked(c, 10));
            c = one_more(c);
        }
        assert!(blocked(leaked(Some(c), 1000, 360), 10));
        assert!(blocked(leaked(Some(c), 1359, 360), 10));
        let later = leaked(Some(c), 1360, 360);
        assert!(!blocked(later, 10), "one attempt after one refill");
        assert!(blocked(one_more(later), 10), "and only one");
        assert_eq!(leaked(Some(c), 1000 + 3600, 360), (0, 4600));
    }
}
