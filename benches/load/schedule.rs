//! When requests are sent and when the run stops.
//!
//! A [`Budget`] bounds the whole run (deadline, request cap, stop on a fatal
//! error). A [`Schedule`] paces one traffic class: closed loop (each worker
//! sends its next request when the last one is answered) or open loop (request
//! `k` is due at `start + k / rate`, whoever sends it). In open loop the
//! latency is measured from the due time, so a stalled server shows up as
//! latency instead of silently lowering the send rate (coordinated omission).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bounds shared by every worker of a run.
#[derive(Debug)]
pub struct Budget {
    end: Instant,
    cap: u64,
    used: AtomicU64,
    stopped: AtomicBool,
    fatal: Mutex<Option<String>>,
}

impl Budget {
    /// Stop at `end` or after `cap` requests, whichever comes first.
    pub fn new(end: Instant, cap: u64) -> Self {
        Self {
            end,
            cap,
            used: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            fatal: Mutex::new(None),
        }
    }

    /// The deadline.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// May one more request be sent at `now`? Takes it from the cap when so.
    pub fn take(&self, now: Instant) -> bool {
        if self.stopped.load(Ordering::Relaxed) || now >= self.end {
            return false;
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.cap {
            true
        } else {
            self.stopped.store(true, Ordering::Relaxed);
            false
        }
    }

    /// Requests taken so far (never more than the cap).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed).min(self.cap)
    }

    /// True once the cap is spent or [`Budget::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Stop every worker at its next request; `why` becomes the run's fatal error.
    pub fn stop(&self, why: impl Into<String>) {
        let mut fatal = match self.fatal.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        fatal.get_or_insert_with(|| why.into());
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// The first fatal error, if any.
    pub fn fatal(&self) -> Option<String> {
        match self.fatal.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// How a class is paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the workers go.
    Closed,
    /// A fixed number of requests per second.
    Open {
        /// Requests per second.
        per_sec: f64,
    },
}

/// When request number `k` of an open-loop schedule is due.
pub fn due(start: Instant, per_sec: f64, k: u64) -> Instant {
    start + Duration::from_secs_f64(k as f64 / per_sec)
}

/// One request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Open loop: when it was due (latency counts from here). Closed loop: `None`.
    pub due: Option<Instant>,
}

/// The pacing of one class.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    pace: Pace,
    next: AtomicU64,
}

impl Schedule {
    /// A class that starts sending at `start`.
    pub fn new(start: Instant, pace: Pace) -> Self {
        Self {
            start,
            pace,
            next: AtomicU64::new(0),
        }
    }

    /// When the class starts.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The next request, or `None` when the run is over. Open loop: the caller
    /// waits until `ticket.due` before sending.
    pub fn next(&self, budget: &Budget, now: Instant) -> Option<Ticket> {
        match self.pace {
            Pace::Closed => budget
                .take(now.max(self.start))
                .then_some(Ticket { due: None }),
            Pace::Open { per_sec } => {
                // The run ends at its deadline even when the workers fell behind:
                // requests still queued then are not sent (the report says it fell behind).
                if now >= budget.end() {
                    return None;
                }
                let k = self.next.fetch_add(1, Ordering::Relaxed);
                let at = due(self.start, per_sec, k);
                budget.take(at).then_some(Ticket { due: Some(at) })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_times_are_evenly_spaced() {
        let t0 = Instant::now();
        assert_eq!(due(t0, 1000.0, 0), t0);
        assert_eq!(due(t0, 1000.0, 1), t0 + Duration::from_millis(1));
        assert_eq!(due(t0, 4.0, 10), t0 + Duration::from_millis(2500));
        let s = Schedule::new(t0, Pace::Open { per_sec: 100.0 });
        let budget = Budget::new(t0 + Duration::from_secs(1), u64::MAX);
        let times: Vec<_> = std::iter::from_fn(|| s.next(&budget, t0))
            .map(|t| t.due)
            .collect();
        // Due times are assigned from the schedule, not from when a worker asks:
        // a late worker gets an old due time and its latency counts the delay.
        assert_eq!(times.len(), 100);
        assert_eq!(times[42], Some(t0 + Duration::from_millis(420)));
    }

    #[test]
    fn open_loop_stops_at_the_deadline_even_when_behind() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, Pace::Open { per_sec: 100.0 });
        let budget = Budget::new(t0 + Duration::from_secs(1), u64::MAX);
        assert!(s.next(&budget, t0).is_some());
        // A worker asking after the deadline gets nothing, though earlier due times remain.
        assert!(s.next(&budget, t0 + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn request_cap_bounds_every_class() {
        let t0 = Instant::now();
        let budget = Budget::new(t0 + Duration::from_secs(60), 5);
        let a = Schedule::new(t0, Pace::Closed);
        let b = Schedule::new(t0, Pace::Open { per_sec: 1e6 });
        let mut sent = 0;
        while a.next(&budget, t0).is_some() || b.next(&budget, t0).is_some() {
            sent += 1;
            assert!(sent <= 5);
        }
        assert_eq!(sent, 5);
        assert_eq!(budget.used(), 5);
        assert!(budget.stopped());
        assert_eq!(budget.fatal(), None);
    }

    #[test]
    fn deadline_and_fatal_stop() {
        let t0 = Instant::now();
        let budget = Budget::new(t0 + Duration::from_secs(1), u64::MAX);
        let s = Schedule::new(t0, Pace::Closed);
        assert!(s.next(&budget, t0).is_some());
        assert!(s.next(&budget, t0 + Duration::from_secs(1)).is_none());
        budget.stop("unsupported_grant_type");
        budget.stop("second reason is not kept");
        assert!(s.next(&budget, t0).is_none());
        assert_eq!(budget.fatal().as_deref(), Some("unsupported_grant_type"));
    }
}
