//! `[attack_protection]`: thresholds and windows of the token endpoint's
//! defences (the `protect` module), with Auth0's numbers as defaults. Quotas are
//! `NonZeroU32` because governor needs them so: a `0` is a config error with
//! its key path, never a panic.

use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::RawAttackProtection;
use super::units::{parse_cidr, parse_duration};

/// `[attack_protection]`, validated.
#[derive(Debug, Clone)]
pub struct AttackProtectionConfig {
    /// Token-endpoint requests per client IP per `request_period` (also the burst).
    pub request_limit: NonZeroU32,
    /// The window of `request_limit`.
    pub request_period: Duration,
    /// Block an (identifier, IP) pair after `brute_force_threshold` consecutive failures.
    pub brute_force: bool,
    /// Consecutive failures that block.
    pub brute_force_threshold: NonZeroU32,
    /// A block (and a failure streak) ends this long after its last failure.
    pub brute_force_expiry: Duration,
    /// Block the identifier from every IP instead of only the failing one.
    pub account_lockout: bool,
    /// Throttle an IP with many failures across identifiers.
    pub suspicious_ip: bool,
    /// Failures from one IP (across identifiers) that throttle it.
    pub suspicious_ip_threshold: NonZeroU32,
    /// A throttled IP regains one attempt this often.
    pub suspicious_ip_regain: Duration,
    /// Networks never throttled as suspicious.
    pub suspicious_ip_allowlist: Vec<IpNet>,
    /// Attempts for one identifier from one IP before `user_ip_limit` applies.
    pub user_ip_burst: NonZeroU32,
    /// Attempts per `user_ip_period` once the burst is spent.
    pub user_ip_limit: NonZeroU32,
    /// The window of `user_ip_limit`.
    pub user_ip_period: Duration,
    /// How often idle limiter keys and expired counters are swept.
    pub sweep_interval: Duration,
}

impl Default for AttackProtectionConfig {
    fn default() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            request_limit: n(100),
            request_period: Duration::from_secs(60),
            brute_force: true,
            brute_force_threshold: n(10),
            brute_force_expiry: Duration::from_secs(30 * 86_400),
            account_lockout: false,
            suspicious_ip: true,
            suspicious_ip_threshold: n(100),
            suspicious_ip_regain: Duration::from_secs(864),
            suspicious_ip_allowlist: Vec::new(),
            user_ip_burst: n(20),
            user_ip_limit: n(10),
            user_ip_period: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// Validate `[attack_protection]`; problems are pushed as `key.path: message`.
pub(super) fn validate(
    raw: Option<RawAttackProtection>,
    problems: &mut Vec<String>,
) -> AttackProtectionConfig {
    let d = AttackProtectionConfig::default();
    let Some(raw) = raw else { return d };
    let mut add = |key: &str, msg: String| problems.push(format!("attack_protection.{key}: {msg}"));
    let mut count = |key: &str, v: Option<i64>, default: NonZeroU32| match v {
        None => default,
        Some(n) => match u32::try_from(n).ok().and_then(NonZeroU32::new) {
            Some(n) => n,
            None => {
                add(
                    key,
                    format!("must be a count from 1 to {}, found {n}", u32::MAX),
                );
                default
            }
        },
    };
    let request_limit = count("request_limit", raw.request_limit, d.request_limit);
    let brute_force_threshold = count(
        "brute_force_threshold",
        raw.brute_force_threshold,
        d.brute_force_threshold,
    );
    let suspicious_ip_threshold = count(
        "suspicious_ip_threshold",
        raw.suspicious_ip_threshold,
        d.suspicious_ip_threshold,
    );
    let user_ip_burst = count("user_ip_burst", raw.user_ip_burst, d.user_ip_burst);
    let user_ip_limit = count("user_ip_limit", raw.user_ip_limit, d.user_ip_limit);
    let mut problems_dur = Vec::new();
    let mut duration = |key: &'static str, v: &Option<String>, default: Duration| match v
        .as_deref()
        .map(parse_duration)
    {
        None => default,
        Some(Ok(d)) if d.is_zero() => {
            problems_dur.push((key, "must be longer than zero".to_string()));
            default
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problems_dur.push((key, e));
            default
        }
    };
    let request_period = duration("request_period", &raw.request_period, d.request_period);
    let brute_force_expiry = duration(
        "brute_force_expiry",
        &raw.brute_force_expiry,
        d.brute_force_expiry,
    );
    let suspicious_ip_regain = duration(
        "suspicious_ip_regain",
        &raw.suspicious_ip_regain,
        d.suspicious_ip_regain,
    );
    let user_ip_period = duration("user_ip_period", &raw.user_ip_period, d.user_ip_period);
    let sweep_interval = duration("sweep_interval", &raw.sweep_interval, d.sweep_interval);
    for (key, msg) in problems_dur {
        problems.push(format!("attack_protection.{key}: {msg}"));
    }
    let mut suspicious_ip_allowlist = Vec::new();
    for (i, cidr) in raw
        .suspicious_ip_allowlist
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match parse_cidr(cidr) {
            Ok(net) => suspicious_ip_allowlist.push(net),
            Err(e) => problems.push(format!(
                "attack_protection.suspicious_ip_allowlist[{i}]: {e}"
            )),
        }
    }
    AttackProtectionConfig {
        request_limit,
        request_period,
        brute_force: raw.brute_force.unwrap_or(d.brute_force),
        brute_force_threshold,
        brute_force_expiry,
        account_lockout: raw.account_lockout.unwrap_or(d.account_lockout),
        suspicious_ip: raw.suspicious_ip.unwrap_or(d.suspicious_ip),
        suspicious_ip_threshold,
        suspicious_ip_regain,
        suspicious_ip_allowlist,
        user_ip_burst,
        user_ip_limit,
        user_ip_period,
        sweep_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (AttackProtectionConfig, Vec<String>) {
        let raw: RawAttackProtection = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let mut p = Vec::new();
        (validate(Some(raw), &mut p), p)
    }

    #[test]
    fn defaults_are_auth0s() {
        let (c, p) = parse("");
        assert!(p.is_empty());
        assert_eq!(c.brute_force_threshold.get(), 10);
        assert_eq!(c.brute_force_expiry, Duration::from_secs(30 * 86_400));
        assert_eq!(c.suspicious_ip_threshold.get(), 100);
        assert_eq!(c.suspicious_ip_regain, Duration::from_secs(864));
        assert_eq!((c.user_ip_burst.get(), c.user_ip_limit.get()), (20, 10));
    }

    #[test]
    fn zero_quotas_and_bad_values_name_their_key() {
        let (_, p) = parse(
            "request_limit = 0\nuser_ip_limit = -3\nrequest_period = \"0s\"\nsuspicious_ip_allowlist = [\"nope\"]\nbrute_force_expiry = \"soon\"",
        );
        let keys: Vec<&str> = p
            .iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "attack_protection.request_limit",
                "attack_protection.user_ip_limit",
                "attack_protection.request_period",
                "attack_protection.brute_force_expiry",
                "attack_protection.suspicious_ip_allowlist[0]",
            ]
        );
    }
}
