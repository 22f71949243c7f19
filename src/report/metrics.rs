//! Prometheus metrics: per-object compliance and backup ages, and the controller's own
//! health (reconciles, errors, durations, external calls, GitHub rate limit, Slack).
//! Labels are bounded: kinds, names, checks, locations, operations; never messages, ARNs
//! or error text.

use std::{collections::HashSet, sync::Mutex, time::Duration};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::{
    api::ConditionType,
    policy::{Finding, Verdict},
};

/// Where a backup age is measured.
pub const LOCATIONS: [&str; 3] = ["source", "replica", "s3"];

pub struct Metrics {
    registry: Registry,
    check_compliant: IntGaugeVec,
    ready: IntGaugeVec,
    backup_age: GaugeVec,
    pub reconciles: IntCounterVec,
    pub reconcile_errors: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub external_calls: IntCounterVec,
    /// Registered when GitHub first answers: without GitHub there is no series (a 0 would
    /// read as an exhausted rate limit).
    github_rate_limit_remaining: std::sync::OnceLock<Option<IntGauge>>,
    pub slack_notifications: IntCounterVec,
    /// When each controller last finished a full sweep (every object looked at once).
    last_sweep: GaugeVec,
    /// The resync interval, so that an alert can say "no sweep within 3 resyncs".
    pub resync_interval: prometheus::Gauge,
    /// The same as `last_sweep`, readable without going through the registry.
    sweeps: Mutex<std::collections::BTreeMap<String, f64>>,
    pub orphan_keys_scheduled: IntCounterVec,
    /// Objects with series, so that a deleted object's series can be removed.
    objects: Mutex<HashSet<(String, String, String)>>,
}

impl Metrics {
    /// Creates and registers every metric. Fails only on an invalid name or label set,
    /// which the tests would catch.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        fn add<C: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            c: C,
        ) -> Result<C, prometheus::Error> {
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        }
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            add(&registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            add(&registry, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        Ok(Self {
            check_compliant: gauges(
                "backup_warden_check_compliant",
                "1 when the policy check passes for the object, 0 when it does not.",
                &["kind", "namespace", "name", "check"],
            )?,
            ready: gauges(
                "backup_warden_ready",
                "1 when the object is Ready (every check passes).",
                &["kind", "namespace", "name"],
            )?,
            backup_age: add(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "backup_warden_backup_age_seconds",
                        "Age of the newest backup, at the source, the replica or in S3.",
                    ),
                    &["kind", "namespace", "name", "location"],
                )?,
            )?,
            reconciles: counters("backup_warden_reconciles_total", "Reconciles run.", &["kind"])?,
            reconcile_errors: counters(
                "backup_warden_reconcile_errors_total",
                "Reconciles that failed, by error category.",
                &["kind", "category"],
            )?,
            reconcile_duration: add(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "backup_warden_reconcile_duration_seconds",
                        "Time one reconcile takes.",
                    )
                    .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                    &["kind"],
                )?,
            )?,
            external_calls: counters(
                "backup_warden_external_calls_total",
                "Calls to AWS and GitHub, by service, operation and outcome.",
                &["service", "operation", "outcome"],
            )?,
            github_rate_limit_remaining: std::sync::OnceLock::new(),
            slack_notifications: counters(
                "backup_warden_slack_notifications_total",
                "Slack notifications by outcome.",
                &["outcome"],
            )?,
            last_sweep: add(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "backup_warden_last_sweep_timestamp_seconds",
                        "When the controller of a kind last finished a full sweep: every object \
                         looked at once (set to the start time until the first one ends).",
                    ),
                    &["kind"],
                )?,
            )?,
            resync_interval: add(
                &registry,
                prometheus::Gauge::new(
                    "backup_warden_resync_interval_seconds",
                    "How often every object is checked (--resync-interval).",
                )?,
            )?,
            sweeps: Mutex::default(),
            orphan_keys_scheduled: counters(
                "backup_warden_orphan_keys_scheduled_total",
                "Replica keys backup-warden made, left without alias or use, whose deletion it scheduled (30-day window).",
                &["region"],
            )?,
            objects: Mutex::new(HashSet::new()),
            registry,
        })
        .and_then(Self::with_process_and_build)
    }

    /// The process (CPU, memory, file descriptors, start time) and the build (`version`).
    fn with_process_and_build(self) -> Result<Self, prometheus::Error> {
        #[cfg(target_os = "linux")]
        self.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "backup_warden_build_info",
                "Always 1; the labels say which build of backup-warden runs.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        self.registry.register(Box::new(build))?;
        Ok(self)
    }

    /// GitHub's `x-ratelimit-remaining`, as last seen.
    pub fn github_rate_limit(&self, remaining: u64) {
        let gauge = self.github_rate_limit_remaining.get_or_init(|| {
            let gauge = IntGauge::new(
                "backup_warden_github_rate_limit_remaining",
                "GitHub's x-ratelimit-remaining, as last seen (no series until GitHub answers).",
            )
            .ok()?;
            self.registry.register(Box::new(gauge.clone())).ok()?;
            Some(gauge)
        });
        if let Some(gauge) = gauge {
            gauge.set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
    }

    /// Sets an object's series from its findings and backup ages. A check not evaluated yet
    /// (`Unknown`) has no series: it is neither compliant nor in drift.
    pub fn record_object(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        findings: &[Finding],
        ages: &[(&str, Option<Duration>)],
    ) {
        for f in findings {
            let labels = [kind, namespace, name, f.check.as_str()];
            if f.verdict == Verdict::Unknown {
                let _ = self.check_compliant.remove_label_values(&labels);
                continue;
            }
            self.check_compliant
                .with_label_values(&labels)
                .set(i64::from(f.verdict == Verdict::Pass));
        }
        // As the Ready condition: no check fails (Unknown does not fail).
        let ready = findings
            .iter()
            .all(|f| f.is_pass() || f.verdict == Verdict::Unknown);
        self.ready
            .with_label_values(&[kind, namespace, name])
            .set(i64::from(ready));
        for (location, age) in ages {
            match age {
                Some(age) => self
                    .backup_age
                    .with_label_values(&[kind, namespace, name, location])
                    .set(age.as_secs_f64()),
                None => {
                    let _ = self
                        .backup_age
                        .remove_label_values(&[kind, namespace, name, location]);
                }
            }
        }
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert((
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        ));
    }

    /// An object that cannot be evaluated (its spec cannot be read) is not ready.
    pub fn record_not_ready(&self, kind: &str, namespace: &str, name: &str) {
        self.ready.with_label_values(&[kind, namespace, name]).set(0);
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert((
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        ));
    }

    /// A full sweep of `kind` ended at `unix_seconds`.
    pub fn record_sweep(&self, kind: &str, unix_seconds: f64) {
        self.last_sweep.with_label_values(&[kind]).set(unix_seconds);
        self.sweeps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind.to_string(), unix_seconds);
    }

    /// When each kind's last full sweep ended (Unix seconds), for /readyz.
    pub fn last_sweeps(&self) -> std::collections::BTreeMap<String, f64> {
        self.sweeps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Removes every series of a deleted object.
    pub fn forget_object(&self, kind: &str, namespace: &str, name: &str) {
        let known = self.objects.lock().unwrap_or_else(|p| p.into_inner()).remove(&(
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        ));
        if !known {
            return;
        }
        let checks = ConditionType::DATABASE_CHECKS
            .iter()
            .chain(ConditionType::REPOSITORY_CHECKS.iter());
        for check in checks {
            let _ = self
                .check_compliant
                .remove_label_values(&[kind, namespace, name, check.as_str()]);
        }
        let _ = self.ready.remove_label_values(&[kind, namespace, name]);
        for location in LOCATIONS {
            let _ = self
                .backup_age
                .remove_label_values(&[kind, namespace, name, location]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Adds what Slack did since `counted` to the notification counter; returns `now`.
    pub fn count_slack(
        &self,
        counted: crate::report::slack::SlackOutcomes,
        now: crate::report::slack::SlackOutcomes,
    ) -> crate::report::slack::SlackOutcomes {
        let pairs = [
            ("sent", counted.sent, now.sent),
            ("rate_limited", counted.rate_limited, now.rate_limited),
            ("failed_permanent", counted.failed_permanent, now.failed_permanent),
            ("failed_transient", counted.failed_transient, now.failed_transient),
            ("dropped", counted.dropped, now.dropped),
            ("digest", counted.digests, now.digests),
        ];
        for (outcome, before, after) in pairs {
            self.slack_notifications
                .with_label_values(&[outcome])
                .inc_by(after.saturating_sub(before));
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DatabaseCheck;
    use crate::{api::Reason, report::slack::SlackOutcomes};

    #[test]
    fn slack_outcomes_become_counter_increments() {
        let metrics = Metrics::new().expect("metrics");
        let first = SlackOutcomes {
            sent: 3,
            failed_permanent: 1,
            ..Default::default()
        };
        let counted = metrics.count_slack(SlackOutcomes::default(), first);
        metrics.count_slack(
            counted,
            SlackOutcomes {
                sent: 5,
                failed_permanent: 1,
                ..first
            },
        );
        let get = |outcome: &str| metrics.slack_notifications.with_label_values(&[outcome]).get();
        assert_eq!((get("sent"), get("failed_permanent"), get("dropped")), (5, 1, 0));
    }

    #[test]
    fn an_object_s_series_follow_its_findings_and_leave_with_it() {
        let metrics = Metrics::new().expect("metrics");
        let findings = [
            Finding::pass(DatabaseCheck::BackupsEnabled, "ok"),
            Finding::new(
                DatabaseCheck::RetentionCompliant,
                Verdict::Drift,
                Reason::DriftDetected,
                "retention is 1 day",
            ),
            Finding::new(
                DatabaseCheck::ReplicaFresh,
                Verdict::Unknown,
                Reason::NotYetChecked,
                "no replica yet",
            ),
        ];
        metrics.record_object(
            "BackedUpDatabase",
            "ns",
            "db",
            &findings,
            &[("source", Some(Duration::from_secs(90))), ("replica", None)],
        );
        let text = metrics.render();
        assert!(text.contains(r#"backup_warden_check_compliant{check="BackupsEnabled",kind="BackedUpDatabase",name="db",namespace="ns"} 1"#), "{text}");
        assert!(text.contains(r#"backup_warden_check_compliant{check="RetentionCompliant",kind="BackedUpDatabase",name="db",namespace="ns"} 0"#));
        assert!(text.contains(r#"backup_warden_ready{kind="BackedUpDatabase",name="db",namespace="ns"} 0"#));
        assert!(text.contains(r#"backup_warden_backup_age_seconds{kind="BackedUpDatabase",location="source",name="db",namespace="ns"} 90"#));
        assert!(
            !text.contains("ReplicaFresh"),
            "a check not evaluated yet has no series: {text}"
        );
        assert!(!text.contains(r#"location="replica""#));
        metrics.forget_object("BackedUpDatabase", "ns", "db");
        assert!(!metrics.render().contains(r#"name="db""#));
    }
}

#[cfg(test)]
mod process_and_github {
    use super::*;

    #[test]
    fn process_and_build_series_exist_and_github_only_once_it_answers() {
        let metrics = Metrics::new().expect("metrics");
        let text = metrics.render();
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains(&format!(
            "backup_warden_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(!text.contains("github_rate_limit"), "{text}");
        metrics.github_rate_limit(4999);
        metrics.github_rate_limit(4998);
        assert!(
            metrics
                .render()
                .contains("backup_warden_github_rate_limit_remaining 4998")
        );
    }
}
