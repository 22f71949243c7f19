//! What every reconcile shares: clients, inventories, policy settings, timing, and the
//! per-object failure counts behind the backoff.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::report::recorder::Recorder;

use super::key_cleanup::{KeyCleanup, KeyCleanupSettings};
use crate::{
    aws::{ApiCalls, inventory::Inventory, kms::Kms, rds::Rds},
    policy::database::Policy,
    report::{metrics::Metrics, slack::Notifier},
};

/// How often things are looked at.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Every object is checked again this often; drift in AWS fires no watch event.
    pub resync: Duration,
    /// While work is under way (a pending change), look again this soon.
    pub settle: Duration,
    /// First delay after a transient failure; doubles up to `resync`.
    pub backoff_base: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(300),
            settle: Duration::from_secs(30),
            backoff_base: Duration::from_secs(5),
        }
    }
}

pub struct Context {
    pub client: kube::Client,
    pub rds: Arc<dyn Rds>,
    pub kms: Arc<dyn Kms>,
    pub inventory: Inventory,
    pub calls: Arc<ApiCalls>,
    pub policy: Policy,
    pub timing: Timing,
    pub recorder: Recorder,
    pub backoff: Backoff,
    pub metrics: Arc<Metrics>,
    /// Where drift is announced (Slack, or nowhere).
    pub notifier: Arc<dyn Notifier>,
    /// Which AWS roles each namespace may use.
    pub tenancy: Arc<crate::tenancy::Tenancy>,
    /// The shards this replica acts on (all, unsharded).
    pub shards: Arc<super::shards::Ownership>,
    /// The cleanup of backup-warden's own orphan replica keys.
    pub key_cleanup: KeyCleanup,
    /// The objects change events woke.
    pub wakes: Arc<crate::events::route::Wakes<crate::api::BackedUpDatabase>>,
    /// The coverages, once their controller runs: an instance created or deleted makes the
    /// regions they scan read again.
    pub coverages:
        std::sync::OnceLock<kube::runtime::reflector::Store<super::Decoded<crate::api::BackupCoverage>>>,
    /// Repositories the webhooks saw created, archived, renamed, moved or deleted, for the
    /// coverages' organization listings.
    pub listings: crate::events::Listings,
    /// The evidence log (off without an evidence bucket).
    pub evidence: Arc<crate::evidence::EvidenceLog>,
}

/// Per-object failure counts behind the retry delays.
pub struct Backoff {
    timing: Timing,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after a transient failure (see [`backoff_delay`]).
    pub fn delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(&self.timing, key, *n)
    }

    /// A success resets the backoff.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Where a reconcile reports beyond status and events.
#[derive(Clone)]
pub struct Reporters {
    pub metrics: Arc<Metrics>,
    pub notifier: Arc<dyn Notifier>,
    /// The evidence log (off without an evidence bucket).
    pub evidence: Arc<crate::evidence::EvidenceLog>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        rds: Arc<dyn Rds>,
        kms: Arc<dyn Kms>,
        calls: Arc<ApiCalls>,
        policy: Policy,
        timing: Timing,
        reporters: Reporters,
    ) -> Self {
        let Reporters {
            metrics,
            notifier,
            evidence,
        } = reporters;
        let recorder = Recorder::new(client.clone(), "backup-warden".into());
        Self {
            metrics,
            notifier,
            client,
            inventory: Inventory::new(rds.clone(), kms.clone()),
            rds,
            kms,
            calls,
            policy,
            timing,
            recorder,
            backoff: Backoff::new(timing),
            tenancy: Arc::new(crate::tenancy::Tenancy::single_team()),
            shards: super::shards::Ownership::all(),
            key_cleanup: KeyCleanup::new(KeyCleanupSettings::default()),
            wakes: Default::default(),
            coverages: Default::default(),
            listings: Default::default(),
            evidence,
        }
    }

    /// The same context with these orphan key cleanup settings.
    pub fn with_key_cleanup(mut self, settings: KeyCleanupSettings) -> Self {
        self.key_cleanup = KeyCleanup::new(settings);
        self
    }
}

/// Exponential from `backoff_base`, capped at the resync interval, plus up to 25% jitter so
/// that many objects failing together do not retry together.
pub fn backoff_delay(timing: &Timing, key: &str, attempt: u32) -> Duration {
    let exp = timing
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(timing.resync);
    capped + capped.mul_f64(jitter_fraction(key, attempt) * 0.25)
}

/// A fraction in [0, 1) that differs per object and attempt, without a random source.
fn jitter_fraction(key: &str, attempt: u32) -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let hash = RandomState::new().hash_one((key, attempt));
    (hash % 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_timing() -> Timing {
        Timing {
            resync: Duration::from_secs(60),
            settle: Duration::from_secs(1),
            backoff_base: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_is_capped_at_the_resync() {
        let d: Vec<Duration> = (1..=8)
            .map(|n| backoff_delay(&context_timing(), "ns/db", n))
            .collect();
        let base = [5, 10, 20, 40, 60, 60, 60, 60];
        for (delay, secs) in d.iter().zip(base) {
            let floor = Duration::from_secs(secs);
            assert!(
                *delay >= floor && *delay <= floor.mul_f64(1.25),
                "{delay:?} for base {floor:?}"
            );
        }
    }

    #[test]
    fn jitter_differs_between_objects() {
        let spread: std::collections::HashSet<u64> = (0..20)
            .map(|i| (jitter_fraction(&format!("ns/db-{i}"), 1) * 1000.0) as u64)
            .collect();
        assert!(spread.len() > 5, "jitter spreads retries: {spread:?}");
    }
}
