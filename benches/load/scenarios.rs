//! The scenarios: which groups of workers a run starts ([`plan`]), what each
//! worker sends, and how each answer counts ([`Work`]). The bookkeeping rules
//! live in small pure functions so they are unit-tested without a server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{Args, HttpVersion, Scenario};
use super::client::{Answer, Endpoint, Failure, Lane, SharedH2};
use super::login::{self, Reply};
use super::schedule::{Budget, Pace, Schedule};
use super::stats::{ClassStats, Outcome, Progress, Recorder, Timeline};

/// What a worker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Authorised GET through the protected route.
    Proxy,
    /// Password login with the right password.
    Login,
    /// refresh_token exchange, rotating.
    Refresh,
    /// Login with a wrong password from a forwarded IP.
    Flood,
}

impl Work {
    /// The class its requests are counted in.
    pub fn class(self) -> &'static str {
        match self {
            Work::Proxy => "proxy",
            Work::Login => "login",
            Work::Refresh => "refresh",
            Work::Flood => "flood",
        }
    }
}

/// Proxied requests sent before the flood starts are counted here.
pub const IDLE_CLASS: &str = "proxy_idle";

/// One group of workers.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What they send.
    pub work: Work,
    /// Connections.
    pub connections: usize,
    /// Workers per connection (HTTP/2 streams; 1 for HTTP/1.1).
    pub streams: usize,
    /// Pacing.
    pub pace: Pace,
    /// When the group starts, from the start of the run.
    pub start: Duration,
}

fn pace(rate: Option<f64>) -> Pace {
    rate.map_or(Pace::Closed, |per_sec| Pace::Open { per_sec })
}

/// The groups `args` asks for.
pub fn plan(args: &Args) -> Vec<Group> {
    let streams = match args.http {
        HttpVersion::H1 => 1,
        HttpVersion::H2 => args.streams,
    };
    let main = |work| Group {
        work,
        connections: args.main_connections(),
        streams,
        pace: pace(args.rate),
        start: Duration::ZERO,
    };
    let side = |work, start| Group {
        work,
        connections: args.side_connections(),
        streams: 1,
        pace: pace(args.login_rate),
        start,
    };
    match args.scenario {
        Scenario::Proxy => vec![main(Work::Proxy)],
        Scenario::Token => vec![main(Work::Login)],
        Scenario::Refresh => vec![main(Work::Refresh)],
        Scenario::Mixed => vec![main(Work::Proxy), side(Work::Login, Duration::ZERO)],
        Scenario::Flood => vec![main(Work::Proxy), side(Work::Flood, args.baseline())],
    }
}

/// How an answer counts for `work`.
pub fn judge(work: Work, answer: &Result<Answer, Failure>) -> (Outcome, Option<Reply>) {
    let answer = match answer {
        Ok(a) => a,
        Err(f) => return (Outcome::error(None, f.kind()), None),
    };
    let status = answer.status;
    if work == Work::Proxy {
        return match status {
            200 => (Outcome::ok(200), None),
            s => (Outcome::error(Some(s), format!("http_{s}")), None),
        };
    }
    let reply = login::parse_reply(status, &answer.body);
    let outcome = match (&reply, work) {
        (Reply::Tokens { .. }, Work::Flood) => {
            Outcome::error(Some(status), "wrong_password_accepted")
        }
        (Reply::Tokens { refresh: None, .. }, Work::Refresh) => {
            Outcome::error(Some(status), "no_refresh_token")
        }
        (Reply::Tokens { .. }, _) => Outcome::ok(status),
        // A wrong password must be refused; being throttled (429) is fine too.
        (Reply::Error { status: 403, code }, Work::Flood) if code == "invalid_grant" => {
            Outcome::ok(403)
        }
        (Reply::Error { status: 429, .. }, Work::Flood) => Outcome::ok(429),
        (Reply::Error { status, code }, _) => Outcome::error(Some(*status), code.clone()),
    };
    (outcome, Some(reply))
}

/// What the workers share.
#[derive(Debug)]
pub struct Setup {
    /// The gateway.
    pub ep: Arc<Endpoint>,
    /// The client logins use.
    pub client: login::Client,
    /// Users to log in as (name, password).
    pub users: Vec<(String, String)>,
    /// Bearer token for proxied requests.
    pub token: Option<String>,
    /// Send a per-worker auth0-forwarded-for on logins.
    pub spread_ips: bool,
    /// Path of proxied requests.
    pub path: String,
    /// flood: distinct addresses.
    pub flood_ips: u32,
    /// Deadline of one request.
    pub timeout: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    /// Totals by class.
    pub classes: BTreeMap<&'static str, ClassStats>,
    /// Per-second buckets.
    pub timeline: Arc<Timeline>,
    /// From the start until the last worker stopped.
    pub elapsed: Duration,
    /// flood: when the storm started (from the start).
    pub flood_start: Option<Duration>,
    /// Why the run was stopped early, if it was.
    pub fatal: Option<String>,
}

struct Worker {
    setup: Arc<Setup>,
    budget: Arc<Budget>,
    work: Work,
    index: usize,
    lane: Lane,
    schedule: Arc<Schedule>,
    idle_until: Option<Instant>,
    refresh: Option<String>,
}

/// Drive the groups of `args` against `setup` until the budget is spent.
pub async fn drive(setup: Arc<Setup>, args: &Args) -> Run {
    let groups = plan(args);
    let start = Instant::now() + Duration::from_millis(20);
    let budget = Arc::new(Budget::new(start + args.duration, args.max_requests));
    let timeline = Arc::new(Timeline::default());
    let progress = Arc::new(Progress::default());
    let flood_start = groups
        .iter()
        .find(|g| g.work == Work::Flood)
        .map(|g| g.start);
    let mut tasks = Vec::new();
    let mut index = 0;
    for g in &groups {
        let schedule = Arc::new(Schedule::new(start + g.start, g.pace));
        for _ in 0..g.connections {
            let shared = Arc::new(SharedH2::default());
            for _ in 0..g.streams {
                let w = Worker {
                    setup: Arc::clone(&setup),
                    budget: Arc::clone(&budget),
                    work: g.work,
                    index,
                    lane: Lane::new(Arc::clone(&setup.ep), Arc::clone(&shared)),
                    schedule: Arc::clone(&schedule),
                    idle_until: flood_start.map(|d| start + d),
                    refresh: None,
                };
                let rec = Recorder::new(start, Arc::clone(&timeline), Arc::clone(&progress));
                tasks.push(tokio::spawn(w.run(rec)));
                index += 1;
            }
        }
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.duration.as_millis() as u64)
    };
    let ticker = progress_bar(args, bar.clone(), &progress, start, &budget);
    let mut parts = Vec::new();
    for t in tasks {
        if let Ok(stats) = t.await {
            parts.push(stats);
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    bar.finish_and_clear();
    Run {
        classes: super::stats::merge_all(parts),
        timeline,
        elapsed,
        flood_start,
        fatal: budget.fatal(),
    }
}

/// The progress line: elapsed time as a bar, requests, current rate, errors.
fn progress_bar(
    args: &Args,
    bar: ProgressBar,
    progress: &Arc<Progress>,
    start: Instant,
    budget: &Arc<Budget>,
) -> tokio::task::JoinHandle<()> {
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let progress = Arc::clone(progress);
    let budget = Arc::clone(budget);
    let label = args.scenario.name();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = progress.done.load(std::sync::atomic::Ordering::Relaxed);
            let errors = progress.errors.load(std::sync::atomic::Ordering::Relaxed);
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            bar.set_position(now.saturating_duration_since(start).as_millis() as u64);
            bar.set_message(format!(
                "{label}: {done} requests, {rate:.0}/s now, {errors} errors"
            ));
            if budget.stopped() {
                return;
            }
        }
    })
}

// === impl Worker ===

impl Worker {
    async fn run(mut self, mut rec: Recorder) -> BTreeMap<&'static str, ClassStats> {
        tokio::time::sleep_until(self.schedule.start().into()).await;
        if self.work == Work::Refresh && !self.start_refresh_family(&mut rec, true).await {
            return rec.finish();
        }
        while let Some(ticket) = self.schedule.next(&self.budget, Instant::now()) {
            if let Some(due) = ticket.due {
                tokio::time::sleep_until(due.into()).await;
            }
            let sent = Instant::now();
            let from = ticket.due.unwrap_or(sent);
            let req = self.request();
            let answer = self.send(req).await;
            let done = Instant::now();
            let (outcome, reply) = judge(self.work, &answer);
            let class = match self.idle_until {
                Some(idle) if self.work == Work::Proxy && from < idle => IDLE_CLASS,
                _ => self.work.class(),
            };
            rec.record(class, done.duration_since(from), &outcome, done);
            if self.work == Work::Refresh {
                self.after_refresh(reply, &mut rec).await;
                if self.refresh.is_none() {
                    break;
                }
            }
        }
        rec.finish()
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        match tokio::time::timeout(self.setup.timeout, self.lane.send(req)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    fn user(&self) -> &(String, String) {
        &self.setup.users[self.index % self.setup.users.len()]
    }

    fn token_request(&self, form: String, forwarded_for: Option<String>) -> Request<Full<Bytes>> {
        let mut b = self
            .lane
            .endpoint()
            .request(Method::POST, "/oauth/token")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(ip) = forwarded_for {
            b = b.header("auth0-forwarded-for", ip);
        }
        b.body(Full::new(Bytes::from(form))).unwrap_or_default()
    }

    fn spread_ip(&self) -> Option<String> {
        self.setup.spread_ips.then(|| login::worker_ip(self.index))
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let s = &self.setup;
        match self.work {
            Work::Proxy => {
                let mut b = self.lane.endpoint().request(Method::GET, &s.path);
                if let Some(t) = &s.token {
                    b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
                }
                b.body(Full::new(Bytes::new())).unwrap_or_default()
            }
            Work::Login => {
                let (name, password) = self.user();
                self.token_request(
                    login::password_form(&s.client, name, password, None),
                    self.spread_ip(),
                )
            }
            Work::Refresh => {
                let token = self.refresh.as_deref().unwrap_or("");
                self.token_request(login::refresh_form(&s.client, token), self.spread_ip())
            }
            Work::Flood => {
                let k: u32 = rand::random::<u32>() % s.flood_ips;
                let name = if k.is_multiple_of(2) {
                    self.user().0.clone()
                } else {
                    format!("nobody-{k}")
                };
                let form = login::password_form(&s.client, &name, "wrong password!", None);
                self.token_request(form, Some(login::flood_ip(k)))
            }
        }
    }

    /// Log in with offline_access to get this worker's refresh token (not
    /// measured). False when the run cannot go on.
    async fn start_refresh_family(&mut self, rec: &mut Recorder, first: bool) -> bool {
        let (name, password) = self.user().clone();
        let form =
            login::password_form(&self.setup.client, &name, &password, Some("offline_access"));
        let req = self.token_request(form, self.spread_ip());
        let answer = self.send(req).await;
        let reply = answer
            .as_ref()
            .ok()
            .map(|a| login::parse_reply(a.status, &a.body));
        match reply {
            Some(Reply::Tokens {
                refresh: Some(r), ..
            }) => {
                self.refresh = Some(r);
                true
            }
            Some(Reply::Tokens { refresh: None, .. }) => {
                // No refresh token: find out whether the grant exists at all.
                self.refresh = Some("load-bench-probe".into());
                let req = self.request();
                let sent = Instant::now();
                let answer = self.send(req).await;
                let done = Instant::now();
                let (outcome, reply) = judge(Work::Refresh, &answer);
                let unsupported = matches!(&reply, Some(Reply::Error { code, .. }) if code == "unsupported_grant_type");
                let (outcome, why) = if unsupported {
                    (
                        outcome,
                        "the server answered unsupported_grant_type to grant_type=refresh_token: \
                         it does not serve refresh tokens yet"
                            .to_string(),
                    )
                } else {
                    (
                        Outcome::error(outcome.status, "no_refresh_token"),
                        "a login with scope offline_access returned no refresh_token: the API needs \
                         allow_offline_access = true and the client the refresh_token grant"
                            .to_string(),
                    )
                };
                rec.record(
                    Work::Refresh.class(),
                    done.duration_since(sent),
                    &outcome,
                    done,
                );
                self.budget.stop(why);
                false
            }
            other => {
                let kind = match (&answer, other) {
                    (Err(f), _) => f.kind().to_string(),
                    (_, Some(Reply::Error { code, .. })) => code,
                    _ => "login_failed".to_string(),
                };
                let done = Instant::now();
                rec.record(
                    Work::Refresh.class(),
                    Duration::ZERO,
                    &Outcome::error(None, kind.clone()),
                    done,
                );
                // The first login failing leaves nothing to measure; a later one
                // (after a family ended) only ends this worker.
                if first {
                    self.budget.stop(format!(
                        "the login that starts a refresh family failed: {kind}"
                    ));
                }
                false
            }
        }
    }

    async fn after_refresh(&mut self, reply: Option<Reply>, rec: &mut Recorder) {
        match reply {
            Some(Reply::Tokens {
                refresh: Some(r), ..
            }) => self.refresh = Some(r),
            Some(Reply::Error { code, .. }) if code == "unsupported_grant_type" => {
                self.budget
                    .stop("the server answered unsupported_grant_type to grant_type=refresh_token");
            }
            // The family ended (revoked, expired, reused) or did not rotate: start
            // another; if that login fails, this worker stops (its error is counted).
            Some(Reply::Tokens { refresh: None, .. }) => self.restart_family(rec).await,
            Some(Reply::Error { code, .. }) if code == "invalid_grant" => {
                self.restart_family(rec).await
            }
            // Throttled, a server error, or a transport failure: the token was
            // not consumed (or may not have been); keep it and go on.
            Some(Reply::Error { .. }) | None => {}
        }
    }

    async fn restart_family(&mut self, rec: &mut Recorder) {
        if self.budget.stopped() || !self.start_refresh_family(rec, false).await {
            self.refresh = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::parse_from_list(std::iter::once("load").chain(list.iter().copied())).unwrap()
    }

    fn answer(status: u16, body: &str) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            body: Bytes::from(body.to_string()),
        })
    }

    #[test]
    fn plans() {
        let p = plan(&args(&[
            "--scenario",
            "proxy",
            "--http",
            "2",
            "--streams",
            "4",
            "-c",
            "3",
        ]));
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].work, p[0].connections, p[0].streams),
            (Work::Proxy, 3, 4)
        );
        assert_eq!(p[0].pace, Pace::Closed);

        let p = plan(&args(&[
            "--scenario",
            "mixed",
            "--rate",
            "500",
            "--login-connections",
            "3",
        ]));
        assert_eq!(
            p.iter().map(|g| g.work).collect::<Vec<_>>(),
            [Work::Proxy, Work::Login]
        );
        assert_eq!(p[0].pace, Pace::Open { per_sec: 500.0 });
        assert_eq!((p[1].connections, p[1].pace), (3, Pace::Closed));

        let p = plan(&args(&[
            "--scenario",
            "flood",
            "-d",
            "10s",
            "--login-rate",
            "200",
        ]));
        assert_eq!(p[1].work, Work::Flood);
        assert_eq!(p[1].start, Duration::from_secs(3));
        assert_eq!(p[1].pace, Pace::Open { per_sec: 200.0 });
        assert_eq!(p[0].start, Duration::ZERO);

        let p = plan(&args(&["--scenario", "refresh"]));
        assert_eq!((p[0].work, p[0].connections), (Work::Refresh, 8));
    }

    #[test]
    fn judging_answers() {
        let ok = |o: &Outcome| o.error.is_none();
        assert!(ok(&judge(Work::Proxy, &answer(200, "{}")).0));
        assert_eq!(
            judge(Work::Proxy, &answer(401, "")).0.error.as_deref(),
            Some("http_401")
        );
        assert_eq!(
            judge(Work::Proxy, &Err(Failure::Timeout)).0,
            Outcome::error(None, "timeout")
        );

        let tokens = r#"{"access_token":"a","refresh_token":"r"}"#;
        assert!(ok(&judge(Work::Login, &answer(200, tokens)).0));
        assert!(ok(&judge(Work::Refresh, &answer(200, tokens)).0));
        let no_rt = judge(Work::Refresh, &answer(200, r#"{"access_token":"a"}"#)).0;
        assert_eq!(no_rt.error.as_deref(), Some("no_refresh_token"));
        let unsupported = judge(
            Work::Refresh,
            &answer(400, r#"{"error":"unsupported_grant_type"}"#),
        )
        .0;
        assert_eq!(
            unsupported,
            Outcome::error(Some(400), "unsupported_grant_type")
        );
        let throttled = judge(
            Work::Login,
            &answer(429, r#"{"error":"too_many_requests"}"#),
        )
        .0;
        assert_eq!(throttled, Outcome::error(Some(429), "too_many_requests"));

        // flood: refused or throttled is what we want; a success or a 500 is not.
        assert_eq!(
            judge(Work::Flood, &answer(403, r#"{"error":"invalid_grant"}"#)).0,
            Outcome::ok(403)
        );
        assert_eq!(
            judge(
                Work::Flood,
                &answer(429, r#"{"error":"too_many_attempts"}"#)
            )
            .0,
            Outcome::ok(429)
        );
        assert_eq!(
            judge(Work::Flood, &answer(200, tokens)).0.error.as_deref(),
            Some("wrong_password_accepted")
        );
        assert_eq!(
            judge(Work::Flood, &answer(500, "")).0.error.as_deref(),
            Some("http_500")
        );
        assert_eq!(
            judge(Work::Flood, &answer(403, r#"{"error":"mfa_required"}"#))
                .0
                .error
                .as_deref(),
            Some("mfa_required")
        );
    }
}
