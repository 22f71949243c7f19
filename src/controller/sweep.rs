//! Full sweeps: a sweep ends when every object the controller holds has been looked at
//! (evaluated, or reported as undecodable) since the last one ended. The time it ended is
//! a metric and shows on /readyz; an alert fires when none ends within three resyncs,
//! which is how a controller that still answers /healthz but reconciles nothing shows.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::report::metrics::Metrics;

pub struct Sweep {
    kind: &'static str,
    metrics: Arc<Metrics>,
    /// Objects looked at since the last sweep ended.
    seen: Mutex<HashSet<String>>,
}

impl Sweep {
    /// Counts the start as the last sweep, so the alert fires if the first never ends.
    pub fn new(kind: &'static str, metrics: Arc<Metrics>) -> Self {
        metrics.record_sweep(kind, unix_now());
        Self {
            kind,
            metrics,
            seen: Mutex::default(),
        }
    }

    /// The object `key` was looked at.
    pub fn visited(&self, key: String) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    /// Ends the sweep when every key in `current` (the objects held now) was looked at;
    /// returns whether it ended.
    pub fn end_if_complete(&self, current: impl IntoIterator<Item = String>) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !current.into_iter().all(|key| seen.contains(&key)) {
            return false;
        }
        seen.clear();
        self.metrics.record_sweep(self.kind, unix_now());
        true
    }

    /// Checks every `every` whether the sweep ended, with the keys `current` lists, until
    /// the task is dropped.
    pub async fn watch<F>(self: Arc<Self>, every: Duration, current: F)
    where
        F: Fn() -> Vec<String>,
    {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.end_if_complete(current());
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_ends_once_every_held_object_was_looked_at() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let sweep = Sweep::new("BackedUpDatabase", metrics.clone());
        let started = metrics.last_sweeps()["BackedUpDatabase"];
        let held = || vec!["ns/a".to_string(), "ns/b".to_string()];
        sweep.visited("ns/a".into());
        assert!(!sweep.end_if_complete(held()), "b was not looked at yet");
        sweep.visited("ns/b".into());
        std::thread::sleep(Duration::from_millis(5));
        assert!(sweep.end_if_complete(held()));
        assert!(metrics.last_sweeps()["BackedUpDatabase"] > started);
        assert!(!sweep.end_if_complete(held()), "a new sweep starts empty");
        // A deleted object does not hold the sweep back; nothing held ends it at once.
        sweep.visited("ns/a".into());
        assert!(sweep.end_if_complete(vec!["ns/a".to_string()]));
        assert!(sweep.end_if_complete(Vec::new()));
    }
}
