//! Round-robin over a route's upstreams with passive health: an upstream that
//! refused a connection is skipped until its cooldown passes. When every
//! upstream is cooling down, the next one in turn is tried anyway.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::UpstreamTarget;

#[derive(Debug)]
struct Member {
    target: UpstreamTarget,
    /// Milliseconds after `Balancer::epoch` until which the member is skipped.
    down_until_ms: AtomicU64,
}

/// Chooses an upstream for each request.
#[derive(Debug)]
pub struct Balancer {
    members: Vec<Member>,
    next: AtomicUsize,
    cooldown: Duration,
    epoch: Instant,
}

impl Balancer {
    /// A balancer over `targets` (at least one).
    pub fn new(targets: Vec<UpstreamTarget>, cooldown: Duration) -> Self {
        Self {
            members: targets
                .into_iter()
                .map(|target| Member {
                    target,
                    down_until_ms: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            cooldown,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are none (never, for a validated route).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The next healthy upstream's index, in round-robin order.
    pub fn pick(&self) -> usize {
        let n = self.members.len();
        if n <= 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| self.members[i].down_until_ms.load(Ordering::Relaxed) <= now)
            .unwrap_or(start)
    }

    /// The healthy upstream after `after`, for a retry; `None` when there is no other.
    pub fn pick_other(&self, after: usize) -> Option<usize> {
        let n = self.members.len();
        let now = self.now_ms();
        (1..n)
            .map(|i| (after + i) % n)
            .find(|&i| self.members[i].down_until_ms.load(Ordering::Relaxed) <= now)
    }

    /// The next upstream in round-robin order that `usable` accepts and
    /// passive health does not skip (or, when passive health skips all the
    /// usable ones, the first usable one); `None` when `usable` accepts none.
    /// Routes with active health checks pick through this.
    pub fn pick_where(&self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let now = self.now_ms();
        let order = (0..n).map(|i| (start + i) % n);
        let mut first_usable = None;
        for i in order {
            if !usable(i) {
                continue;
            }
            if self.members[i].down_until_ms.load(Ordering::Relaxed) <= now {
                return Some(i);
            }
            first_usable.get_or_insert(i);
        }
        first_usable
    }

    /// Like [`Balancer::pick_other`], among the upstreams `usable` accepts.
    pub fn pick_other_where(&self, after: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.members.len();
        let now = self.now_ms();
        (1..n)
            .map(|i| (after + i) % n)
            .find(|&i| usable(i) && self.members[i].down_until_ms.load(Ordering::Relaxed) <= now)
    }

    /// The upstream at `index`.
    pub fn target(&self, index: usize) -> &UpstreamTarget {
        &self.members[index.min(self.members.len().saturating_sub(1))].target
    }

    /// Skip `index` for the cooldown.
    pub fn mark_down(&self, index: usize) {
        if let Some(m) = self.members.get(index) {
            let until = self.now_ms() + self.cooldown.as_millis() as u64;
            m.down_until_ms.store(until, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_upstream_for_tests as up;

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_down_members_until_cooldown() {
        let b = Balancer::new(
            vec![up("http://a:1"), up("http://b:1"), up("http://c:1")],
            Duration::from_secs(10),
        );
        let picks: Vec<usize> = (0..6).map(|_| b.pick()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        b.mark_down(1);
        let picks: Vec<usize> = (0..4).map(|_| b.pick()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(b.pick_other(0), Some(2));
        tokio::time::advance(Duration::from_secs(11)).await;
        let picks: Vec<usize> = (0..3).map(|_| b.pick()).collect();
        assert!(picks.contains(&1));
    }

    #[tokio::test(start_paused = true)]
    async fn all_down_still_picks() {
        let b = Balancer::new(
            vec![up("http://a:1"), up("http://b:1")],
            Duration::from_secs(10),
        );
        b.mark_down(0);
        b.mark_down(1);
        // With every upstream down, picks still rotate (a dead pool does not
        // pin one member), and there is nobody to retry on.
        let picks: Vec<usize> = (0..4).map(|_| b.pick()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(b.pick_other(0), None);
        assert_eq!(b.pick_other(1), None);
    }
}
