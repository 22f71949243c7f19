//! How fast messages go out (a token bucket) and when a flood of notifications becomes a
//! digest (a sliding window of recent notifications).

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// A token bucket: `burst` messages back to back, then `per_second` on average.
#[derive(Debug)]
pub(super) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// Starts full. A rate that is not positive (or not a number) falls back to one per
    /// second, and a burst of zero to one, so the sender can never stall for good.
    pub(super) fn new(per_second: f64, burst: u32, now: Instant) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            per_second,
            tokens: capacity,
            updated: now,
        }
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    pub(super) fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
        }
    }

    /// Waits until a token is there and takes it.
    pub(super) async fn take(&mut self) {
        while let Err(wait) = self.try_take(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Counts the notifications handled in the last `window`, to tell a flood from news.
#[derive(Debug)]
pub(super) struct FloodWindow {
    threshold: usize,
    window: Duration,
    recent: VecDeque<(Instant, usize)>,
    last_digest: Option<Instant>,
}

// During a flood, a digest goes out at most this many times per window.
const DIGESTS_PER_WINDOW: u32 = 6;

impl FloodWindow {
    pub(super) fn new(threshold: usize, window: Duration) -> Self {
        Self {
            threshold,
            window,
            recent: VecDeque::new(),
            last_digest: None,
        }
    }

    /// Whether `waiting` notifications at `now` make a flood: more than the threshold
    /// within the window, counting those already handled in it.
    pub(super) fn is_flood(&mut self, now: Instant, waiting: usize) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            self.recent.pop_front();
        }
        let handled: usize = self.recent.iter().map(|(_, n)| n).sum();
        handled.saturating_add(waiting) > self.threshold
    }

    /// When the next digest may go out: at once, unless one went out recently.
    pub(super) fn next_digest_at(&self, now: Instant) -> Instant {
        let spacing = self.window / DIGESTS_PER_WINDOW;
        self.last_digest.map_or(now, |last| (last + spacing).max(now))
    }

    /// Records `count` notifications handled at `now`, in a digest or one message.
    pub(super) fn record(&mut self, now: Instant, count: usize, digest: bool) {
        self.recent.push_back((now, count));
        if digest {
            self.last_digest = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_bucket_allows_a_burst_then_paces() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 2, t0);
        assert!(bucket.try_take(t0).is_ok());
        assert!(bucket.try_take(t0).is_ok());
        let wait = bucket.try_take(t0).expect_err("the burst is used up");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert!(bucket.try_take(t0 + secs(0.5)).is_err());
        assert!(bucket.try_take(t0 + secs(1.0)).is_ok());
        // A long pause refills only up to the burst.
        let later = t0 + secs(100.0);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn a_nonsense_rate_still_lets_messages_out() {
        let t0 = Instant::now();
        for rate in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            let mut bucket = TokenBucket::new(rate, 0, t0);
            assert!(bucket.try_take(t0).is_ok());
            let wait = bucket.try_take(t0).expect_err("one token only");
            assert!(wait <= secs(1.0), "{rate}: {wait:?}");
        }
    }

    #[test]
    fn a_flood_counts_handled_and_waiting_notifications_in_the_window() {
        let t0 = Instant::now();
        let mut window = FloodWindow::new(3, secs(60.0));
        assert!(!window.is_flood(t0, 3));
        assert!(window.is_flood(t0, 4), "more waiting than the threshold");
        window.record(t0, 1, false);
        window.record(t0 + secs(1.0), 1, false);
        assert!(!window.is_flood(t0 + secs(2.0), 1));
        assert!(window.is_flood(t0 + secs(2.0), 2));
        assert!(
            !window.is_flood(t0 + secs(61.0), 2),
            "what left the window no longer counts"
        );
    }

    #[test]
    fn digests_in_a_flood_are_spaced_by_a_sixth_of_the_window() {
        let t0 = Instant::now();
        let mut window = FloodWindow::new(3, secs(60.0));
        assert_eq!(window.next_digest_at(t0), t0);
        window.record(t0, 10, true);
        assert_eq!(window.next_digest_at(t0 + secs(1.0)), t0 + secs(10.0));
        assert_eq!(window.next_digest_at(t0 + secs(30.0)), t0 + secs(30.0));
    }
}
