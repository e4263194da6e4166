//! Bookkeeping of what happened: per traffic class an HDR histogram of
//! latencies (microseconds), counts by status and by error kind, and a
//! per-second timeline (requests, errors, latency percentiles).
//!
//! Each worker owns a [`Recorder`] (no sharing on the hot path); the per-second
//! buckets are flushed to the shared [`Timeline`] once a second, and the
//! recorders are merged when the run ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded exactly (larger ones are clamped): 120 s.
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// An empty latency histogram in microseconds with `sigfig` significant digits.
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// `None` when the request did what the scenario expects; else why not
    /// (`http_502`, an OAuth `error` code, `connect`, `timeout`, ...).
    pub error: Option<String>,
}

impl Outcome {
    /// The expected answer.
    pub fn ok(status: u16) -> Self {
        Self {
            status: Some(status),
            error: None,
        }
    }

    /// A failure of kind `kind`, with the status if one came.
    pub fn error(status: Option<u16>, kind: impl Into<String>) -> Self {
        Self {
            status,
            error: Some(kind.into()),
        }
    }
}

// === impl ClassStats ===

/// Everything recorded for one traffic class.
#[derive(Debug, Clone)]
pub struct ClassStats {
    /// Latency of every finished request, answered or failed (µs).
    pub hist: Histogram<u64>,
    /// Requests finished.
    pub requests: u64,
    /// Requests that did not do what the scenario expects.
    pub errors: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by kind.
    pub kinds: BTreeMap<String, u64>,
}

impl Default for ClassStats {
    fn default() -> Self {
        Self {
            hist: histogram(3),
            requests: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            kinds: BTreeMap::new(),
        }
    }
}

/// Microseconds, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

impl ClassStats {
    /// Count one request.
    pub fn record(&mut self, latency: Duration, outcome: &Outcome) {
        self.hist.saturating_record(micros(latency));
        self.requests += 1;
        if let Some(s) = outcome.status {
            *self.statuses.entry(s).or_default() += 1;
        }
        if let Some(kind) = &outcome.error {
            self.errors += 1;
            *self.kinds.entry(kind.clone()).or_default() += 1;
        }
    }

    /// Add another worker's figures.
    pub fn merge(&mut self, other: &ClassStats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.requests += other.requests;
        self.errors += other.errors;
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        for (k, n) in &other.kinds {
            *self.kinds.entry(k.clone()).or_default() += n;
        }
    }

    /// The figures for the report; `elapsed` is how long the class ran.
    pub fn summary(&self, name: &str, elapsed: Duration, timeline: Vec<Second>) -> ClassSummary {
        let secs = elapsed.as_secs_f64();
        ClassSummary {
            name: name.to_string(),
            requests: self.requests,
            ok: self.requests - self.errors,
            errors: self.errors,
            seconds: secs,
            requests_per_s: if secs > 0.0 {
                self.requests as f64 / secs
            } else {
                0.0
            },
            latency_us: Latency::of(&self.hist),
            statuses: self
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            error_kinds: self.kinds.clone(),
            percentiles: percentile_curve(&self.hist),
            timeline,
        }
    }
}

/// Latency figures of a histogram, in microseconds (0 when empty).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Read the percentiles off `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The percentiles the plot draws, from 0 to 99.999 on a log(1/(1-p)) axis, plus 100.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, u64)> = (0..=50)
        .map(|i| {
            let p = 1.0 - 10f64.powf(-(i as f64) / 10.0);
            (p * 100.0, h.value_at_quantile(p))
        })
        .collect();
    points.push((100.0, h.max()));
    points
}

/// Figures of one class, as the JSON file and the plot show them.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    /// Class name (`proxy`, `proxy_idle`, `login`, `refresh`, `flood`).
    pub name: String,
    /// Requests finished.
    pub requests: u64,
    /// Requests that did what the scenario expects.
    pub ok: u64,
    /// Requests that did not.
    pub errors: u64,
    /// How long the class ran.
    pub seconds: f64,
    /// requests / seconds.
    pub requests_per_s: f64,
    /// Latency percentiles (µs).
    pub latency_us: Latency,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<String, u64>,
    /// Failures by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// (percentile, µs) points of the latency curve.
    pub percentiles: Vec<(f64, u64)>,
    /// Per-second buckets.
    pub timeline: Vec<Second>,
}

// === impl Timeline ===

/// One second of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the run started.
    pub t: u64,
    /// Requests finished in that second.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency (µs).
    pub p50_us: u64,
    /// 99th percentile (µs).
    pub p99_us: u64,
    /// Largest (µs).
    pub max_us: u64,
}

#[derive(Debug, Clone)]
struct Bucket {
    requests: u64,
    errors: u64,
    hist: Histogram<u64>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            requests: 0,
            errors: 0,
            hist: histogram(2),
        }
    }
}

/// Per-second buckets of every class, shared by the workers.
#[derive(Debug, Default)]
pub struct Timeline {
    classes: Mutex<BTreeMap<&'static str, BTreeMap<u64, Bucket>>>,
}

impl Timeline {
    fn add(&self, class: &'static str, t: u64, b: &Bucket) {
        let mut classes = match self.classes.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let slot = classes
            .entry(class)
            .or_default()
            .entry(t)
            .or_insert_with(Bucket::new);
        slot.requests += b.requests;
        slot.errors += b.errors;
        let _ = slot.hist.add(&b.hist);
    }

    /// The seconds of `class` from 0, with empty seconds filled in up to `until` (exclusive).
    pub fn seconds(&self, class: &str, until: u64) -> Vec<Second> {
        let classes = match self.classes.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(buckets) = classes.get(class) else {
            return Vec::new();
        };
        let last = buckets
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(until.saturating_sub(1));
        (0..=last)
            .map(|t| match buckets.get(&t) {
                Some(b) => Second {
                    t,
                    requests: b.requests,
                    errors: b.errors,
                    p50_us: b.hist.value_at_quantile(0.5),
                    p99_us: b.hist.value_at_quantile(0.99),
                    max_us: b.hist.max(),
                },
                None => Second {
                    t,
                    requests: 0,
                    errors: 0,
                    p50_us: 0,
                    p99_us: 0,
                    max_us: 0,
                },
            })
            .collect()
    }
}

// === impl Recorder ===

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests finished.
    pub done: AtomicU64,
    /// Of which failed.
    pub errors: AtomicU64,
}

/// One worker's bookkeeping.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    classes: BTreeMap<&'static str, ClassStats>,
    current: BTreeMap<&'static str, (u64, Bucket)>,
    timeline: Arc<Timeline>,
    progress: Arc<Progress>,
}

impl Recorder {
    /// A recorder whose timeline counts seconds from `start`.
    pub fn new(start: Instant, timeline: Arc<Timeline>, progress: Arc<Progress>) -> Self {
        Self {
            start,
            classes: BTreeMap::new(),
            current: BTreeMap::new(),
            timeline,
            progress,
        }
    }

    /// Count one request of `class` that finished at `done`.
    pub fn record(
        &mut self,
        class: &'static str,
        latency: Duration,
        outcome: &Outcome,
        done: Instant,
    ) {
        self.classes
            .entry(class)
            .or_default()
            .record(latency, outcome);
        self.progress.done.fetch_add(1, Ordering::Relaxed);
        let failed = outcome.error.is_some();
        if failed {
            self.progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        let t = done.saturating_duration_since(self.start).as_secs();
        let (sec, bucket) = self
            .current
            .entry(class)
            .or_insert_with(|| (t, Bucket::new()));
        if *sec != t {
            self.timeline.add(class, *sec, bucket);
            *sec = t;
            *bucket = Bucket::new();
        }
        bucket.requests += 1;
        bucket.errors += u64::from(failed);
        bucket.hist.saturating_record(micros(latency));
    }

    /// Flush the last second and hand over the totals.
    pub fn finish(self) -> BTreeMap<&'static str, ClassStats> {
        for (class, (sec, bucket)) in &self.current {
            self.timeline.add(class, *sec, bucket);
        }
        self.classes
    }
}

/// Merge the workers' totals class by class.
pub fn merge_all(
    parts: impl IntoIterator<Item = BTreeMap<&'static str, ClassStats>>,
) -> BTreeMap<&'static str, ClassStats> {
    let mut total: BTreeMap<&'static str, ClassStats> = BTreeMap::new();
    for part in parts {
        for (class, stats) in part {
            total.entry(class).or_default().merge(&stats);
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = ClassStats::default();
        for i in 1..=1000 {
            s.record(Duration::from_micros(i), &Outcome::ok(200));
        }
        let l = Latency::of(&s.hist);
        // 3 significant digits: within 0.1 %.
        assert!((499..=501).contains(&l.p50), "{l:?}");
        assert!((899..=901).contains(&l.p90), "{l:?}");
        assert!((989..=991).contains(&l.p99), "{l:?}");
        assert!((998..=1000).contains(&l.p999), "{l:?}");
        assert_eq!(l.max, 1000);
        assert!((l.mean - 500.5).abs() < 1.0);
        let sum = s.summary("proxy", Duration::from_secs(2), Vec::new());
        assert_eq!((sum.requests, sum.ok, sum.errors), (1000, 1000, 0));
        assert!((sum.requests_per_s - 500.0).abs() < 1e-9);
        assert_eq!(sum.statuses.get("200"), Some(&1000));
        let curve = &sum.percentiles;
        assert_eq!(curve.first().map(|p| p.0), Some(0.0));
        assert_eq!(curve.last(), Some(&(100.0, 1000)));
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn errors_by_status_and_kind_and_merge() {
        let mut a = ClassStats::default();
        a.record(ms(1), &Outcome::ok(200));
        a.record(ms(2), &Outcome::error(Some(502), "http_502"));
        let mut b = ClassStats::default();
        b.record(ms(3), &Outcome::error(None, "connect"));
        b.record(ms(4), &Outcome::error(Some(502), "http_502"));
        a.merge(&b);
        assert_eq!((a.requests, a.errors), (4, 3));
        assert_eq!(a.statuses, BTreeMap::from([(200, 1), (502, 2)]));
        assert_eq!(a.kinds.get("http_502"), Some(&2));
        assert_eq!(a.kinds.get("connect"), Some(&1));
        assert_eq!(a.hist.len(), 4);
    }

    #[test]
    fn empty_and_clamped() {
        let s = ClassStats::default();
        assert_eq!(Latency::of(&s.hist).p99, 0);
        assert!(percentile_curve(&s.hist).is_empty());
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_secs(1_000)), MAX_LATENCY_US);
    }

    #[test]
    fn recorders_fill_the_timeline_by_second() {
        let start = Instant::now();
        let timeline = Arc::new(Timeline::default());
        let progress = Arc::new(Progress::default());
        let mut w1 = Recorder::new(start, Arc::clone(&timeline), Arc::clone(&progress));
        let mut w2 = Recorder::new(start, Arc::clone(&timeline), Arc::clone(&progress));
        w1.record("proxy", ms(1), &Outcome::ok(200), start + ms(100));
        w1.record("proxy", ms(9), &Outcome::ok(200), start + ms(900));
        w1.record(
            "proxy",
            ms(5),
            &Outcome::error(Some(500), "http_500"),
            start + ms(2_100),
        );
        w2.record("proxy", ms(2), &Outcome::ok(200), start + ms(300));
        w2.record("flood", ms(2), &Outcome::ok(403), start + ms(1_300));
        let totals = merge_all([w1.finish(), w2.finish()]);
        assert_eq!(totals["proxy"].requests, 4);
        assert_eq!(totals["flood"].requests, 1);
        assert_eq!(progress.done.load(Ordering::Relaxed), 5);
        assert_eq!(progress.errors.load(Ordering::Relaxed), 1);
        let secs = timeline.seconds("proxy", 4);
        let counts: Vec<_> = secs.iter().map(|s| (s.t, s.requests, s.errors)).collect();
        assert_eq!(counts, vec![(0, 3, 0), (1, 0, 0), (2, 1, 1), (3, 0, 0)]);
        assert!(secs[0].max_us >= 8_900, "{:?}", secs[0]);
        assert_eq!(timeline.seconds("flood", 0).len(), 2);
        assert!(timeline.seconds("nothing", 3).is_empty());
    }
}
