//! Prometheus metrics: per-object compliance and backup ages, and the controller's own
//! health (reconciles, errors, durations, external calls, GitHub rate limit, Slack).
//! Labels are bounded: kinds, names, checks, locations, operations; never messages, ARNs
//! or error text.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::{
    api::ConditionType,
    policy::{Finding, Verdict},
};

/// Where a backup age is measured.
pub const LOCATIONS: [&str; 4] = ["source", "replica", "s3", "cloudtrail"];

/// Ages reported whether or not the object is Ready: the audit trail's latest delivery
/// (few trails, and the alert on late delivery reads it).
const ALWAYS_REPORTED: [&str; 1] = ["cloudtrail"];

pub struct Metrics {
    registry: Registry,
    check_compliant: IntGaugeVec,
    ready: IntGaugeVec,
    backup_age: GaugeVec,
    pub reconciles: IntCounterVec,
    /// Status PATCHes sent: a quiet sweep sends none.
    pub status_writes: IntCounterVec,
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
    /// Events (CloudTrail through SQS, GitHub webhooks) by source and outcome: matched
    /// (woke some object), ignored (concerned none), failed (could not be read), refused
    /// (a webhook delivery that failed its checks). Received is their sum.
    pub events: IntCounterVec,
    /// Webhook deliveries refused, by why.
    pub webhook_refusals: IntCounterVec,
    /// From an event's own time to the end of the reconcile it caused.
    pub event_detection: HistogramVec,
    /// When the SQS queue was last polled successfully (a poll that found nothing counts).
    pub event_queue_last_poll: prometheus::Gauge,
    /// Restore drills ended, by kind and result (succeeded, failed).
    pub restore_drills: IntCounterVec,
    /// Evidence records by outcome: kept (buffered), written (uploaded), dropped (the
    /// buffer was full).
    pub evidence_records: IntCounterVec,
    /// Evidence records buffered, not uploaded yet.
    pub evidence_pending: prometheus::IntGauge,
    /// When the evidence log was last uploaded (or opened), and upload attempts that failed.
    pub evidence_last_write: prometheus::Gauge,
    pub evidence_write_errors: prometheus::IntCounter,
    /// Objects, ready objects and failing checks by kind and namespace: bounded by the
    /// namespaces, whatever the number of objects.
    objects_total: IntGaugeVec,
    objects_ready: IntGaugeVec,
    checks_failing: IntGaugeVec,
    /// Resources each coverage accounts for, by kind and standing (discovered, declared,
    /// exempt, undeclared): a few series per coverage, whatever the estate's size.
    coverage_resources: IntGaugeVec,
    /// What each object last reported, so that its series and the counts move on a change
    /// and leave with it.
    objects: Mutex<HashMap<ObjectKey, Reported>>,
}

type ObjectKey = (String, String, String);

/// One object's last report: the per-object series it has (only while it is not compliant).
#[derive(Clone, Debug, Default, PartialEq)]
struct Reported {
    ready: bool,
    failing: Vec<&'static str>,
    ages: Vec<&'static str>,
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
                "0 while the policy check fails for the object; no series while it passes or is not evaluated.",
                &["kind", "namespace", "name", "check"],
            )?,
            ready: gauges(
                "backup_warden_ready",
                "0 while the object is not Ready; no series while it is.",
                &["kind", "namespace", "name"],
            )?,
            objects_total: gauges(
                "backup_warden_objects",
                "Objects the controller holds, by kind and namespace.",
                &["kind", "namespace"],
            )?,
            objects_ready: gauges(
                "backup_warden_objects_ready",
                "Objects that are Ready (no check fails), by kind and namespace.",
                &["kind", "namespace"],
            )?,
            checks_failing: gauges(
                "backup_warden_checks_failing",
                "Objects whose check fails, by kind, namespace and check.",
                &["kind", "namespace", "check"],
            )?,
            coverage_resources: gauges(
                "backup_warden_coverage_resources",
                "Resources a BackupCoverage accounts for, by kind and standing: discovered (in scope), declared, exempt, undeclared.",
                &["coverage", "kind", "standing"],
            )?,
            backup_age: add(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "backup_warden_backup_age_seconds",
                        "Age of the newest backup, at the source, the replica or in S3, while the object is not Ready; and of an audit trail's latest delivery (cloudtrail), always.",
                    ),
                    &["kind", "namespace", "name", "location"],
                )?,
            )?,
            reconciles: counters("backup_warden_reconciles_total", "Reconciles run.", &["kind"])?,
            status_writes: counters(
                "backup_warden_status_writes_total",
                "Status writes sent to the API server (only when the status changed).",
                &["kind"],
            )?,
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
            events: counters(
                "backup_warden_events_total",
                "Change events received, by source (aws, github) and outcome (matched, ignored, failed, refused).",
                &["source", "outcome"],
            )?,
            webhook_refusals: counters(
                "backup_warden_webhook_refusals_total",
                "GitHub webhook deliveries refused, by reason (bad_signature, replayed, too_large, malformed, ...).",
                &["reason"],
            )?,
            event_detection: add(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "backup_warden_event_detection_seconds",
                        "From a change event's own time to the end of the reconcile it caused, by source.",
                    )
                    .buckets(vec![0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
                    &["source"],
                )?,
            )?,
            event_queue_last_poll: add(
                &registry,
                prometheus::Gauge::new(
                    "backup_warden_event_queue_last_poll_timestamp_seconds",
                    "When the SQS queue of change events was last polled successfully (absent without --events-queue-url).",
                )?,
            )?,
            restore_drills: counters(
                "backup_warden_restore_drills_total",
                "Restore drills ended, by kind and result (succeeded, failed).",
                &["kind", "result"],
            )?,
            evidence_records: counters(
                "backup_warden_evidence_records_total",
                "Evidence records by outcome: kept (buffered for upload), written (uploaded to the evidence bucket), dropped (the buffer was full).",
                &["outcome"],
            )?,
            evidence_pending: add(
                &registry,
                prometheus::IntGauge::new(
                    "backup_warden_evidence_pending_records",
                    "Evidence records buffered and not uploaded yet.",
                )?,
            )?,
            evidence_last_write: add(
                &registry,
                prometheus::Gauge::new(
                    "backup_warden_evidence_last_write_timestamp_seconds",
                    "When the evidence log was last uploaded to its bucket (or opened, before the first upload).",
                )?,
            )?,
            evidence_write_errors: add(
                &registry,
                prometheus::IntCounter::new(
                    "backup_warden_evidence_write_errors_total",
                    "Uploads of evidence records to the evidence bucket that failed (the records stay buffered).",
                )?,
            )?,
            objects: Mutex::new(HashMap::new()),
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

    /// Sets an object's series from its findings and backup ages. An object has per-object
    /// series only while it is not compliant: one per failing check, `ready` 0 and its
    /// backup ages. A check not evaluated yet (`Unknown`) is neither compliant nor in drift.
    /// The counts by namespace move with it.
    pub fn record_object(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        findings: &[Finding],
        ages: &[(&'static str, Option<Duration>)],
    ) {
        let failing: Vec<&'static str> = findings
            .iter()
            .filter(|f| !f.is_pass() && f.verdict != Verdict::Unknown)
            .map(|f| f.check.as_str())
            .collect();
        // As the Ready condition: no check fails.
        let ready = failing.is_empty();
        let now = Reported {
            ready,
            ages: ages
                .iter()
                .filter(|(l, a)| a.is_some() && (!ready || ALWAYS_REPORTED.contains(l)))
                .map(|(l, _)| *l)
                .collect(),
            failing,
        };
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        self.report(&key, Some(now.clone()));
        for check in &now.failing {
            self.check_compliant
                .with_label_values(&[kind, namespace, name, check])
                .set(0);
        }
        if !ready {
            self.ready.with_label_values(&[kind, namespace, name]).set(0);
        }
        for (location, age) in ages {
            if let Some(age) = age
                && (!ready || ALWAYS_REPORTED.contains(location))
            {
                self.backup_age
                    .with_label_values(&[kind, namespace, name, location])
                    .set(age.as_secs_f64());
            }
        }
    }

    /// An object that cannot be evaluated (its spec cannot be read, it is refused) is not
    /// ready.
    pub fn record_not_ready(&self, kind: &str, namespace: &str, name: &str) {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        self.report(&key, Some(Reported::default()));
        self.ready.with_label_values(&[kind, namespace, name]).set(0);
    }

    /// Removes every series of a deleted object.
    pub fn forget_object(&self, kind: &str, namespace: &str, name: &str) {
        let key = (kind.to_string(), namespace.to_string(), name.to_string());
        self.report(&key, None);
    }

    /// Removes every series of the objects of `kind` that `keep` (namespace, name) refuses:
    /// those of a shard another replica acts on now.
    pub fn retain_objects(&self, kind: &str, keep: impl Fn(&str, &str) -> bool) {
        let gone: Vec<ObjectKey> = self
            .objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|(k, namespace, name)| k == kind && !keep(namespace, name))
            .cloned()
            .collect();
        for key in gone {
            self.report(&key, None);
        }
    }

    /// Replaces what `key` last reported with `now` (`None`: it is gone): removes the
    /// per-object series it no longer has and moves the counts by namespace.
    fn report(&self, key: &ObjectKey, now: Option<Reported>) {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let before = match &now {
            Some(now) => objects.insert(key.clone(), now.clone()),
            None => objects.remove(key),
        };
        let (kind, namespace, name) = (key.0.as_str(), key.1.as_str(), key.2.as_str());
        let at = [kind, namespace];
        if let Some(before) = &before {
            for check in &before.failing {
                let _ = self
                    .check_compliant
                    .remove_label_values(&[kind, namespace, name, check]);
                self.checks_failing
                    .with_label_values(&[kind, namespace, check])
                    .dec();
            }
            let _ = self.ready.remove_label_values(&[kind, namespace, name]);
            for location in &before.ages {
                let _ = self
                    .backup_age
                    .remove_label_values(&[kind, namespace, name, location]);
            }
            self.objects_total.with_label_values(&at).dec();
            if before.ready {
                self.objects_ready.with_label_values(&at).dec();
            }
        }
        if let Some(now) = &now {
            for check in &now.failing {
                self.checks_failing
                    .with_label_values(&[kind, namespace, check])
                    .inc();
            }
            self.objects_total.with_label_values(&at).inc();
            if now.ready {
                self.objects_ready.with_label_values(&at).inc();
            }
        }
        // A namespace without objects leaves no series behind.
        if self.objects_total.with_label_values(&at).get() == 0 {
            let _ = self.objects_total.remove_label_values(&at);
            let _ = self.objects_ready.remove_label_values(&at);
            for check in ConditionType::all_checks() {
                let _ = self
                    .checks_failing
                    .remove_label_values(&[kind, namespace, check.as_str()]);
            }
        }
    }

    /// A full sweep of `kind` ended at `unix_seconds`.
    /// What a coverage's last scan counted for one kind.
    pub fn set_coverage(&self, coverage: &str, kind: &str, tally: &crate::policy::coverage::Tally) {
        for (standing, n) in [
            ("discovered", tally.discovered),
            ("declared", tally.declared),
            ("exempt", tally.exempt),
            ("undeclared", tally.undeclared),
        ] {
            self.coverage_resources
                .with_label_values(&[coverage, kind, standing])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A coverage deleted: its series go with it.
    pub fn forget_coverage(&self, coverage: &str, kind: &str) {
        for standing in ["discovered", "declared", "exempt", "undeclared"] {
            let _ = self
                .coverage_resources
                .remove_label_values(&[coverage, kind, standing]);
        }
    }

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
    fn an_object_has_series_only_while_not_compliant_and_the_counts_follow_it() {
        let metrics = Metrics::new().expect("metrics");
        let drifting = [
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
        let ages = [("source", Some(Duration::from_secs(90))), ("replica", None)];
        metrics.record_object("BackedUpDatabase", "ns", "db", &drifting, &ages);
        metrics.record_object("BackedUpDatabase", "ns", "other", &drifting[..1], &ages);
        let text = metrics.render();
        for series in [
            r#"backup_warden_check_compliant{check="RetentionCompliant",kind="BackedUpDatabase",name="db",namespace="ns"} 0"#,
            r#"backup_warden_ready{kind="BackedUpDatabase",name="db",namespace="ns"} 0"#,
            r#"backup_warden_backup_age_seconds{kind="BackedUpDatabase",location="source",name="db",namespace="ns"} 90"#,
            r#"backup_warden_objects{kind="BackedUpDatabase",namespace="ns"} 2"#,
            r#"backup_warden_objects_ready{kind="BackedUpDatabase",namespace="ns"} 1"#,
            r#"backup_warden_checks_failing{check="RetentionCompliant",kind="BackedUpDatabase",namespace="ns"} 1"#,
        ] {
            assert!(text.contains(series), "no {series} in {text}");
        }
        assert!(
            !text.contains(r#"check="BackupsEnabled""#),
            "a passing check has no series: {text}"
        );
        assert!(
            !text.contains("ReplicaFresh"),
            "nor one not evaluated yet: {text}"
        );
        assert!(
            !text.contains(r#"name="other""#),
            "a compliant object has none: {text}"
        );
        assert!(!text.contains(r#"location="replica""#));

        // Fixed: its series go, the counts move.
        metrics.record_object("BackedUpDatabase", "ns", "db", &drifting[..1], &ages);
        let text = metrics.render();
        assert!(!text.contains(r#"name="db""#), "{text}");
        assert!(text.contains(r#"backup_warden_objects_ready{kind="BackedUpDatabase",namespace="ns"} 2"#));
        assert!(text.contains(r#"backup_warden_checks_failing{check="RetentionCompliant",kind="BackedUpDatabase",namespace="ns"} 0"#));

        // Deleted: nothing of the namespace is left once its last object goes.
        metrics.record_not_ready("BackedUpDatabase", "ns", "db");
        assert!(
            metrics
                .render()
                .contains(r#"backup_warden_ready{kind="BackedUpDatabase",name="db",namespace="ns"} 0"#)
        );
        metrics.forget_object("BackedUpDatabase", "ns", "db");
        metrics.forget_object("BackedUpDatabase", "ns", "other");
        let text = metrics.render();
        assert!(!text.contains(r#"namespace="ns""#), "{text}");
    }

    #[test]
    fn ten_thousand_compliant_objects_add_no_series() {
        let metrics = Metrics::new().expect("metrics");
        let empty = metrics.render().len();
        let ok = [Finding::pass(DatabaseCheck::BackupsEnabled, "ok")];
        let ages = [("source", Some(Duration::from_secs(60)))];
        for i in 0..10_000 {
            metrics.record_object("BackedUpDatabase", "ns", &format!("db-{i}"), &ok, &ages);
        }
        let text = metrics.render();
        assert!(text.contains(r#"backup_warden_objects{kind="BackedUpDatabase",namespace="ns"} 10000"#));
        // Only the counts by namespace were added, whatever the number of objects.
        assert!(text.len() - empty < 1_000, "{} bytes more", text.len() - empty);
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
