//! Units written in the config: durations (`"30s"`, `"15m"`, `"24h"`, `"30d"`),
//! byte sizes (`16384`, `"16KiB"`, `"10MB"`) and networks (`"10.0.0.0/8"`).

use std::time::Duration;

use ipnet::IpNet;

/// Parse a duration written as a number followed by a unit, e.g. `"30s"`, `"1h 30m"`, `"30d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"15m\", \"24h\" or \"30d\"".into());
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "\"{text}\" has no unit; write e.g. \"{text}s\" for seconds"
        ));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!(
            "\"{text}\" is not a duration ({e}); write e.g. \"30s\", \"15m\", \"24h\" or \"30d\""
        )
    })
}

/// Parse a byte size: a whole number of bytes, or a string with a unit
/// (`B`, `KB`, `MB`, `GB` in powers of 1000; `KiB`, `MiB`, `GiB` in powers of 1024).
pub fn parse_size(value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as u64),
        toml::Value::Integer(n) => Err(format!("{n} is negative; a size is a number of bytes")),
        toml::Value::String(s) => parse_size_str(s),
        other => Err(format!(
            "expected a number of bytes or a string like \"16KiB\", found {}",
            other.type_str()
        )),
    }
}

fn parse_size_str(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size; write e.g. \"16KiB\" or \"10MB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "\"{text}\": unknown unit \"{other}\"; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// A CIDR (`10.0.0.0/8`) or a single address (`192.0.2.7`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("\"{text}\" is not an address or CIDR like \"10.0.0.0/8\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("24h", 86_400),
            ("30d", 2_592_000),
            ("1h 30m", 5_400),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "soon", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        let v = |s: &str| toml::Value::String(s.into());
        assert_eq!(parse_size(&toml::Value::Integer(16384)), Ok(16384));
        assert_eq!(parse_size(&v("16KiB")), Ok(16384));
        assert_eq!(parse_size(&v("10MB")), Ok(10_000_000));
        assert_eq!(parse_size(&v("1GiB")), Ok(1 << 30));
        assert!(parse_size(&v("10 parsecs")).is_err());
        assert!(parse_size(&toml::Value::Integer(-1)).is_err());
        assert!(parse_size(&toml::Value::Boolean(true)).is_err());
    }
}
