//! When a login needs a second factor: the realm's policy, the user's
//! enrolment, and a script's demand for this one login.

use crate::config::MfaPolicy;

/// What the MFA gate does with a login whose password was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Finish the login now.
    Nothing,
    /// Answer `mfa_required`: the user has a factor to challenge.
    Challenge,
    /// Answer `mfa_required`: the user has no factor yet and must enrol one.
    Enrol,
}

/// Decide for one login. `enrolled`: the user has a confirmed authenticator;
/// `demanded`: a rule or action asked for MFA on this login.
///
/// - `off`: only a script's demand asks;
/// - `optional`: users who have enrolled must use it (and a script may ask
///   the others to enrol);
/// - `required`: every login, enrolling first when there is nothing to use.
pub fn need(policy: MfaPolicy, enrolled: bool, demanded: bool) -> Need {
    let asked = match policy {
        MfaPolicy::Off => demanded,
        MfaPolicy::Optional => enrolled || demanded,
        MfaPolicy::Required => true,
    };
    match (asked, enrolled) {
        (false, _) => Need::Nothing,
        (true, true) => Need::Challenge,
        (true, false) => Need::Enrol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MfaPolicy::*;

    #[test]
    fn the_table() {
        let cases = [
            (Off, false, false, Need::Nothing),
            (Off, true, false, Need::Nothing),
            (Off, true, true, Need::Challenge),
            (Off, false, true, Need::Enrol),
            (Optional, false, false, Need::Nothing),
            (Optional, true, false, Need::Challenge),
            (Optional, false, true, Need::Enrol),
            (Required, false, false, Need::Enrol),
            (Required, true, false, Need::Challenge),
            (Required, true, true, Need::Challenge),
        ];
        for (policy, enrolled, demanded, want) in cases {
            assert_eq!(
                need(policy, enrolled, demanded),
                want,
                "{policy:?} enrolled={enrolled} demanded={demanded}"
            );
        }
    }
}
