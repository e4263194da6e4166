//! A latency histogram that records with three relaxed atomic adds: no lock
//! and no allocation per observation, so the proxied path can afford one per
//! request. prometheus-client's own `Histogram` takes a mutex per `observe`.
//!
//! It encodes as a Prometheus histogram (seconds), and [`Snapshot`]s of it
//! subtract, so the status page can compute percentiles over the last minute
//! from two snapshots.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Bucket upper bounds, in seconds, for request and upstream latency.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug)]
struct Inner {
    /// One count per bound, then the `+Inf` bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// A shared histogram over [`LATENCY_BUCKETS`]; clones record into the same one.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Arc<Inner>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(Arc::new(Inner {
            counts: (0..=LATENCY_BUCKETS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }))
    }
}

impl LatencyHistogram {
    /// Record one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self
                .0
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_nanos: self.0.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// The counts of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Per bucket (not cumulative), the last one `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of the observations, in nanoseconds.
    pub sum_nanos: u64,
}

impl Snapshot {
    /// Observations in this snapshot.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            counts: self
                .counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
                .collect(),
            sum_nanos: self.sum_nanos.saturating_sub(earlier.sum_nanos),
        }
    }

    /// The `q` quantile (0..=1) in seconds, interpolated inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    // In the +Inf bucket: the highest finite bound is all we know.
                    return Some(lower);
                };
                let within = (rank - seen as f64) / c as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += c;
        }
        LATENCY_BUCKETS.last().copied()
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.snapshot();
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(snap.counts.iter().copied())
            .collect();
        let sum = snap.sum_nanos as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, snap.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_quantiles_interpolate() {
        let h = LatencyHistogram::default();
        for _ in 0..90 {
            h.observe(Duration::from_micros(800)); // (0.5ms, 1ms]
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(200)); // (100ms, 250ms]
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.counts[1], 90);
        assert_eq!(s.counts[8], 10);
        let p50 = s.quantile(0.5).unwrap_or_default();
        assert!((0.0005..=0.001).contains(&p50), "{p50}");
        let p99 = s.quantile(0.99).unwrap_or_default();
        assert!((0.1..=0.25).contains(&p99), "{p99}");
        assert_eq!(Snapshot::default().quantile(0.5), None);
    }

    #[test]
    fn snapshots_subtract() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_millis(3));
        let before = h.snapshot();
        h.observe(Duration::from_secs(60));
        let delta = h.snapshot().since(&before);
        assert_eq!(delta.count(), 1);
        assert_eq!(delta.counts[LATENCY_BUCKETS.len()], 1);
        assert_eq!(delta.quantile(0.5), Some(30.0));
    }
}
