//! The results: one [`Report`] per run, printed as a table and written as
//! JSON (the SVG plot is drawn from the same figures, see `svg.rs`).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::args::{Args, HttpVersion};
use super::scenarios::{IDLE_CLASS, Run};
use super::stats::ClassSummary;

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores available to the process.
    pub cores: usize,
    /// Operating system.
    pub os: &'static str,
    /// CPU architecture.
    pub arch: &'static str,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        Self {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

/// flood: proxied latency before and during the storm.
#[derive(Debug, Clone, Serialize)]
pub struct Flood {
    /// Seconds of proxied traffic alone.
    pub baseline_s: f64,
    /// p99 of proxied requests before the storm (µs).
    pub idle_p99_us: u64,
    /// p99 of proxied requests during the storm (µs).
    pub flood_p99_us: u64,
    /// flood_p99 / idle_p99.
    pub p99_ratio: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// `in-process` or the target URL.
    pub target: String,
    /// `1.1` or `2`.
    pub http: &'static str,
    /// Connections of the main traffic.
    pub connections: usize,
    /// HTTP/2 streams per connection.
    pub streams: usize,
    /// Connections of the logins (mixed) or the storm (flood).
    pub side_connections: Option<usize>,
    /// Open-loop rate of the main traffic (requests/s), `None` for closed loop.
    pub rate: Option<f64>,
    /// Open-loop rate of the side traffic.
    pub login_rate: Option<f64>,
    /// --duration (s).
    pub duration_s: f64,
    /// Actual run time (s).
    pub elapsed_s: f64,
    /// --max-requests.
    pub max_requests: u64,
    /// Unix time of the run.
    pub date_unix: i64,
    /// The machine.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Figures by class.
    pub classes: Vec<ClassSummary>,
    /// In-process token runs: password checks/s this machine sustains with the
    /// default argon2 parameters and pool (the token endpoint's ceiling).
    pub argon2_limit_per_s: Option<f64>,
    /// login requests/s divided by argon2_limit_per_s.
    pub token_vs_argon2: Option<f64>,
    /// flood figures.
    pub flood: Option<Flood>,
    /// Why the run stopped early, if it did.
    pub fatal: Option<String>,
    /// Things a reader should know about these figures.
    pub warnings: Vec<String>,
}

impl Report {
    /// Assemble the report of `run`.
    pub fn new(args: &Args, target: String, run: &Run, argon2_limit: Option<f64>) -> Report {
        let classes: Vec<ClassSummary> = run
            .classes
            .iter()
            .map(|(name, stats)| {
                let secs = class_seconds(name, run.elapsed, run.flood_start);
                let until = run.elapsed.as_secs_f64().ceil() as u64;
                stats.summary(name, secs, run.timeline.seconds(name, until))
            })
            .collect();
        let find = |n: &str| classes.iter().find(|c| c.name == n);
        let flood = run.flood_start.map(|b| {
            let idle = find(IDLE_CLASS).map_or(0, |c| c.latency_us.p99);
            let busy = find("proxy").map_or(0, |c| c.latency_us.p99);
            Flood {
                baseline_s: b.as_secs_f64(),
                idle_p99_us: idle,
                flood_p99_us: busy,
                p99_ratio: if idle > 0 {
                    busy as f64 / idle as f64
                } else {
                    0.0
                },
            }
        });
        let token_vs_argon2 = argon2_limit
            .zip(find("login"))
            .map(|(limit, c)| c.requests_per_s / limit);
        let mut warnings = Vec::new();
        let main = find("proxy").or(find("login")).or(find("refresh"));
        if let (Some(rate), Some(c)) = (args.rate, main)
            && c.requests_per_s < 0.95 * rate
            && run.fatal.is_none()
        {
            warnings.push(format!(
                "open loop fell behind: {:.0} of {rate:.0} requests/s sent; the latencies include the \
                 wait, add --connections to send on time",
                c.requests_per_s
            ));
        }
        if args.target.is_none() {
            warnings.push(
                "in-process: the load generator and passgate share this machine's cores"
                    .to_string(),
            );
        }
        let mixed_or_flood =
            run.flood_start.is_some() || (find("login").is_some() && find("proxy").is_some());
        Report {
            scenario: args.scenario.name(),
            target,
            http: match args.http {
                HttpVersion::H1 => "1.1",
                HttpVersion::H2 => "2",
            },
            connections: args.main_connections(),
            streams: args.streams,
            side_connections: mixed_or_flood.then(|| args.side_connections()),
            rate: args.rate,
            login_rate: args.login_rate,
            duration_s: args.duration.as_secs_f64(),
            elapsed_s: run.elapsed.as_secs_f64(),
            max_requests: args.max_requests,
            date_unix: passgate::clock::system().now(),
            machine: Machine::this(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            classes,
            argon2_limit_per_s: argon2_limit,
            token_vs_argon2,
            flood,
            fatal: run.fatal.clone(),
            warnings,
        }
    }

    /// Total failures across classes.
    pub fn errors(&self) -> u64 {
        self.classes.iter().map(|c| c.errors).sum()
    }

    /// The figures as a table for the terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "scenario {} over HTTP/{} against {}: {} connections{}, {}, {:.1} s\n",
            self.scenario,
            self.http,
            self.target,
            self.connections,
            if self.streams > 1 {
                format!(" x {} streams", self.streams)
            } else {
                String::new()
            },
            self.rate.map_or("closed loop".to_string(), |r| format!(
                "open loop at {r:.0} req/s"
            )),
            self.elapsed_s,
        );
        out.push_str(&format!(
            "{:<11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
            "class", "requests", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"
        ));
        for c in &self.classes {
            let l = &c.latency_us;
            out.push_str(&format!(
                "{:<11} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
                c.name,
                c.requests,
                c.requests_per_s,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
                c.errors
            ));
            let statuses: Vec<String> =
                c.statuses.iter().map(|(s, n)| format!("{s}={n}")).collect();
            out.push_str(&format!("            statuses: {}\n", or_none(&statuses)));
            if !c.error_kinds.is_empty() {
                let kinds: Vec<String> = c
                    .error_kinds
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                out.push_str(&format!("            errors:   {}\n", kinds.join(" ")));
            }
        }
        if let (Some(limit), Some(ratio)) = (self.argon2_limit_per_s, self.token_vs_argon2) {
            out.push_str(&format!(
                "argon2 limit on this machine: {limit:.1} checks/s; logins reached {:.0} % of it\n",
                ratio * 100.0
            ));
        }
        if let Some(f) = &self.flood {
            out.push_str(&format!(
                "flood: proxied p99 {} idle ({:.1} s alone), {} during the storm: {:.2}x\n",
                ms(f.idle_p99_us),
                f.baseline_s,
                ms(f.flood_p99_us),
                f.p99_ratio
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("note: {w}\n"));
        }
        if let Some(f) = &self.fatal {
            out.push_str(&format!("FAILED: {f}\n"));
        }
        out
    }

    /// Write the JSON file (creating its folder).
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

/// Microseconds as milliseconds for the table.
pub fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// How long `class` ran: the flood splits the run into before and during the storm.
pub fn class_seconds(class: &str, elapsed: Duration, flood_start: Option<Duration>) -> Duration {
    match flood_start {
        Some(b) if class == IDLE_CLASS => b.min(elapsed),
        Some(b) => elapsed.saturating_sub(b),
        None => elapsed,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn flood_splits_the_run() {
        let e = Duration::from_secs(10);
        let b = Some(Duration::from_secs(3));
        assert_eq!(class_seconds(IDLE_CLASS, e, b), Duration::from_secs(3));
        assert_eq!(class_seconds("proxy", e, b), Duration::from_secs(7));
        assert_eq!(class_seconds("flood", e, b), Duration::from_secs(7));
        assert_eq!(class_seconds("proxy", e, None), e);
        assert_eq!(ms(1234), "1.23ms");
    }
}
