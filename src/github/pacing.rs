//! Paces requests to stay well under GitHub's secondary limits: content-creating requests
//! (commits, refs, pull requests) under 80 per minute and 500 per hour, REST reads under
//! 900 points per minute.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

/// Sliding windows of recent writes.
#[derive(Debug)]
pub struct Pacer {
    per_minute: usize,
    per_hour: usize,
    recent: Mutex<VecDeque<Instant>>,
    /// This replica's part of the limits (its shards' share; 1 unsharded).
    share: std::sync::Mutex<f64>,
}

impl Pacer {
    pub fn new(per_minute: usize, per_hour: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            per_hour: per_hour.max(1),
            recent: Mutex::new(VecDeque::new()),
            share: std::sync::Mutex::new(1.0),
        }
    }

    /// A limit per minute only.
    pub fn per_minute(per_minute: usize) -> Self {
        Self::new(per_minute, usize::MAX)
    }

    /// How long a request is remembered: an hour only when the hour's limit can bind (a
    /// minute's limit of reads would otherwise keep an hour of instants, 36,000 at 600).
    fn horizon(&self) -> Duration {
        if self.per_hour / 60 >= self.per_minute {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(3600)
        }
    }

    /// Paces this replica to `share` (0-1] of the limits: replicas that split the shards
    /// split GitHub's limits, which are per installation, as well.
    pub fn set_share(&self, share: f64) {
        *self.share.lock().unwrap_or_else(|p| p.into_inner()) = share.clamp(f64::MIN_POSITIVE, 1.0);
    }

    fn limit(&self, full: usize) -> usize {
        let share = *self.share.lock().unwrap_or_else(|p| p.into_inner());
        ((full as f64 * share).floor() as usize).max(1)
    }

    /// How long a write at `now` must wait, given the writes in `recent`.
    fn wait_at(&self, recent: &VecDeque<Instant>, now: Instant) -> Duration {
        let window_wait = |window: Duration, limit: usize| {
            let inside: Vec<&Instant> = recent
                .iter()
                .filter(|t| now.duration_since(**t) < window)
                .collect();
            if inside.len() < limit {
                Duration::ZERO
            } else {
                // Wait until the oldest write that keeps the window full leaves it.
                let oldest = inside[inside.len() - limit];
                window.saturating_sub(now.duration_since(*oldest))
            }
        };
        window_wait(Duration::from_secs(60), self.limit(self.per_minute))
            .max(window_wait(Duration::from_secs(3600), self.limit(self.per_hour)))
    }

    /// Waits until a write is allowed, then records it.
    pub async fn acquire(&self) {
        loop {
            let mut recent = self.recent.lock().await;
            let now = Instant::now();
            let horizon = self.horizon();
            while recent.front().is_some_and(|t| now.duration_since(*t) >= horizon) {
                recent.pop_front();
            }
            let wait = self.wait_at(&recent, now);
            if wait.is_zero() {
                recent.push_back(now);
                return;
            }
            drop(recent);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_window_fills_then_waits_for_its_oldest_write() {
        let pacer = Pacer::new(3, 100);
        let start = Instant::now();
        let recent: VecDeque<Instant> = [0, 10, 20]
            .iter()
            .map(|s| start + Duration::from_secs(*s))
            .collect();
        let at_30 = start + Duration::from_secs(30);
        assert_eq!(
            pacer.wait_at(&recent, at_30),
            Duration::from_secs(30),
            "the write at 0s leaves at 60s"
        );
        let two: VecDeque<Instant> = recent.iter().take(2).copied().collect();
        assert_eq!(pacer.wait_at(&two, at_30), Duration::ZERO);
    }

    #[test]
    fn the_hour_window_limits_too() {
        let pacer = Pacer::new(100, 2);
        let start = Instant::now();
        let recent: VecDeque<Instant> = [0, 120].iter().map(|s| start + Duration::from_secs(*s)).collect();
        assert_eq!(
            pacer.wait_at(&recent, start + Duration::from_secs(600)),
            Duration::from_secs(3000)
        );
    }

    #[test]
    fn a_replica_with_half_the_shards_paces_to_half_the_limits() {
        let pacer = Pacer::new(4, 100);
        pacer.set_share(0.5);
        let start = Instant::now();
        let two: VecDeque<Instant> = [0, 10].iter().map(|s| start + Duration::from_secs(*s)).collect();
        assert_eq!(
            pacer.wait_at(&two, start + Duration::from_secs(30)),
            Duration::from_secs(30),
            "two writes fill half of four per minute"
        );
    }

    #[tokio::test]
    async fn a_minute_limit_remembers_a_minute_and_waits_for_it() {
        let pacer = Pacer::per_minute(2);
        assert_eq!(pacer.horizon(), Duration::from_secs(60));
        assert_eq!(Pacer::new(40, 400).horizon(), Duration::from_secs(3600));
        pacer.acquire().await;
        pacer.acquire().await;
        let start = Instant::now();
        let third = tokio::time::timeout(Duration::from_millis(200), pacer.acquire()).await;
        assert!(third.is_err(), "a third read in the minute waits");
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn acquire_passes_while_under_the_limits() {
        let pacer = Pacer::new(5, 5);
        let started = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
