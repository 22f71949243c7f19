//! Table tests of the audit-trail policy.

use super::*;

const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).expect("timestamp")
}

fn spec(mode: &str) -> RetainedAuditTrailSpec {
    serde_json::from_value(serde_json::json!({
        "mode": mode,
        "trail": {"name": "org-audit", "region": "us-east-1"},
    }))
    .expect("spec")
}

fn rule(id: &str, prefix: &str, days: Option<i32>, noncurrent: Option<i32>) -> ExpirationRule {
    ExpirationRule {
        id: id.into(),
        enabled: true,
        prefix: prefix.into(),
        expiration_days: days,
        expiration_date: None,
        noncurrent_days: noncurrent,
    }
}

fn compliant() -> TrailObservation {
    TrailObservation {
        trail: Some(TrailFacts {
            arn: "arn:aws:cloudtrail:us-east-1:123456789012:trail/org-audit".into(),
            bucket: "audit-logs".into(),
            prefix: Some("trail".into()),
            multi_region: true,
            log_file_validation: true,
            organization: false,
            log_group_arn: Some("arn:aws:logs:us-east-1:123456789012:log-group:audit/trail:*".into()),
            logging: true,
            latest_delivery: Some(at(600)),
            latest_delivery_error: None,
            management: ManagementEvents {
                read: true,
                write: true,
                excluded_sources: Vec::new(),
            },
        }),
        bucket: Some(Ok(BucketFacts {
            region: "us-east-1".into(),
            rules: vec![
                rule("logs", "trail/AWSLogs/", Some(400), None),
                rule("tmp", "tmp/", Some(1), None),
            ],
            versioning: Versioning::Off,
            object_lock: None,
        })),
        log_group: Some(Ok(LogGroupFacts {
            name: "audit/trail".into(),
            region: "us-east-1".into(),
            retention_days: Some(400),
        })),
        now: at(0),
    }
}

fn trail(obs: &mut TrailObservation) -> &mut TrailFacts {
    obs.trail.as_mut().expect("trail")
}

fn bucket(obs: &mut TrailObservation) -> &mut BucketFacts {
    obs.bucket.as_mut().expect("read").as_mut().expect("bucket")
}

fn finding(findings: &[Finding], check: TrailCheck) -> &Finding {
    let check = ConditionType::from(check);
    findings.iter().find(|f| f.check == check).expect("finding")
}

fn judged(obs: &TrailObservation) -> Vec<Finding> {
    evaluate(&spec("Enforce"), obs, &TrailPolicy::default())
}

#[test]
fn a_compliant_trail_passes_every_check_and_plans_nothing() {
    let obs = compliant();
    let findings = judged(&obs);
    assert_eq!(findings.len(), TrailCheck::ALL.len());
    assert!(findings.iter().all(Finding::is_pass), "{findings:#?}");
    assert_eq!(
        finding(&findings, LogsRetained).message,
        "s3://audit-logs/trail/AWSLogs/ kept 400 days; log group audit/trail keeps 400 days (policy 365 days)"
    );
    assert!(plan(&spec("Enforce"), &obs, &findings, &TrailPolicy::default()).is_empty());
}

#[test]
fn each_check_has_its_drift() {
    type Case = (
        &'static str,
        fn(&mut TrailObservation),
        TrailCheck,
        Verdict,
        Reason,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            "stopped",
            |o| trail(o).logging = false,
            TrailLogging,
            Verdict::Drift,
            Reason::DriftDetected,
            "logging is stopped",
        ),
        (
            "one region",
            |o| trail(o).multi_region = false,
            TrailLogging,
            Verdict::Drift,
            Reason::DriftDetected,
            "it records one region only",
        ),
        (
            "write only",
            |o| trail(o).management.read = false,
            TrailLogging,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            "its event selectors leave out read management events: log all read and write management events (PutEventSelectors)",
        ),
        (
            "kms left out",
            |o| trail(o).management.excluded_sources = vec!["kms.amazonaws.com".into()],
            TrailLogging,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            "its event selectors leave out the management events of kms.amazonaws.com: log all read and write management events (PutEventSelectors)",
        ),
        (
            "no validation",
            |o| trail(o).log_file_validation = false,
            LogFileValidation,
            Verdict::Drift,
            Reason::DriftDetected,
            "log file integrity validation is off",
        ),
        (
            "30-day rule",
            |o| bucket(o).rules[0].expiration_days = Some(30),
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            "lifecycle rule \"logs\" on \"trail/AWSLogs/\" expires objects after 30 days (policy 365 days)",
        ),
        (
            "whole-bucket rule",
            |o| bucket(o).rules.push(rule("all", "", Some(90), None)),
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            "lifecycle rule \"all\" on \"\" expires objects after 90 days (policy 365 days)",
        ),
        (
            "a rule on part of the logs",
            |o| {
                bucket(o).rules.push(rule(
                    "digests",
                    "trail/AWSLogs/123456789012/CloudTrail-Digest/",
                    Some(7),
                    None,
                ))
            },
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            "lifecycle rule \"digests\" on \"trail/AWSLogs/123456789012/CloudTrail-Digest/\" expires objects after 7 days (policy 365 days)",
        ),
        (
            "noncurrent versions, versioned",
            |o| {
                bucket(o).versioning = Versioning::Enabled;
                bucket(o).rules[0].noncurrent_days = Some(30);
            },
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            "lifecycle rule \"logs\" on \"trail/AWSLogs/\" expires noncurrent versions after 30 days (policy 365 days)",
        ),
        (
            "a dated expiration",
            |o| bucket(o).rules[0].expiration_date = Some("2027-01-01T00:00:00Z".into()),
            LogsRetained,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            "lifecycle rule \"logs\" expires objects under \"trail/AWSLogs/\" on 2027-01-01T00:00:00Z (policy 365 days): change it by hand",
        ),
        (
            "short log group",
            |o| {
                o.log_group = Some(Ok(LogGroupFacts {
                    name: "audit/trail".into(),
                    region: "us-east-1".into(),
                    retention_days: Some(90),
                }))
            },
            LogsRetained,
            Verdict::Drift,
            Reason::DriftDetected,
            "log group audit/trail keeps events 90 days (policy 365 days)",
        ),
        (
            "no bucket",
            |o| {
                o.bucket = Some(Err((
                    Reason::ManualFixRequired,
                    "bucket audit-logs does not exist: the trail cannot deliver there".into(),
                )))
            },
            LogsRetained,
            Verdict::Blocked,
            Reason::ManualFixRequired,
            "bucket audit-logs does not exist: the trail cannot deliver there",
        ),
        (
            "bucket denied",
            |o| {
                o.bucket = Some(Err((
                    Reason::AccessDenied,
                    "AWS refused GetBucketLifecycleConfiguration".into(),
                )))
            },
            LogsRetained,
            Verdict::Blocked,
            Reason::AccessDenied,
            "AWS refused GetBucketLifecycleConfiguration",
        ),
        (
            "late",
            |o| trail(o).latest_delivery = Some(at(3 * 3600)),
            LogsDelivered,
            Verdict::Drift,
            Reason::Stale,
            "the latest delivery was 2027-01-15T05:00:00Z (limit 2h)",
        ),
        (
            "never",
            |o| trail(o).latest_delivery = None,
            LogsDelivered,
            Verdict::Drift,
            Reason::Stale,
            "no log file delivered to s3://audit-logs yet",
        ),
        (
            "failing",
            |o| trail(o).latest_delivery_error = Some("AccessDenied".into()),
            LogsDelivered,
            Verdict::Blocked,
            Reason::DeliveryFailed,
            "the latest delivery to s3://audit-logs failed: AccessDenied (check the bucket policy and the trail's KMS key)",
        ),
    ];
    for (name, change, check, verdict, reason, message) in cases {
        let mut obs = compliant();
        change(&mut obs);
        let findings = judged(&obs);
        let f = finding(&findings, *check);
        assert_eq!((f.verdict, f.reason), (*verdict, *reason), "{name}: {f:?}");
        assert_eq!(f.message, *message, "{name}");
        let others_pass = findings
            .iter()
            .filter(|g| g.check != ConditionType::from(*check))
            .all(Finding::is_pass);
        assert!(others_pass, "{name}: {findings:#?}");
    }
}

#[test]
fn what_does_not_touch_the_logs_does_not_count() {
    let mut obs = compliant();
    // Another prefix, a disabled rule, noncurrent versions of an unversioned bucket, and a
    // long rule: none expires the logs before 365 days.
    bucket(&mut obs).rules = vec![
        rule("tmp", "tmp/", Some(1), None),
        ExpirationRule {
            enabled: false,
            ..rule("off", "", Some(1), None)
        },
        rule("old-versions", "trail/", None, Some(1)),
        rule("long", "", Some(400), None),
    ];
    bucket(&mut obs).object_lock = Some(("COMPLIANCE".into(), 400));
    obs.log_group = Some(Ok(log_group_never()));
    let findings = judged(&obs);
    let f = finding(&findings, LogsRetained);
    assert!(f.is_pass(), "{f:?}");
    assert_eq!(
        f.message,
        "s3://audit-logs/trail/AWSLogs/ kept 400 days; log group audit/trail never expires; Object Lock COMPLIANCE 400 days (policy 365 days)"
    );
    // No rule at all: the logs never expire.
    bucket(&mut obs).rules.clear();
    obs.log_group = None;
    let f = judged(&obs)
        .into_iter()
        .find(|f| f.check == LogsRetained.into())
        .expect("finding");
    assert_eq!(
        f.message,
        "s3://audit-logs/trail/AWSLogs/ never expires; Object Lock COMPLIANCE 400 days (policy 365 days)"
    );
}

fn log_group_never() -> LogGroupFacts {
    LogGroupFacts {
        name: "audit/trail".into(),
        region: "us-east-1".into(),
        retention_days: None,
    }
}

#[test]
fn enforce_fixes_what_it_may_and_never_lowers() {
    let mut obs = compliant();
    trail(&mut obs).logging = false;
    trail(&mut obs).multi_region = false;
    trail(&mut obs).log_file_validation = false;
    trail(&mut obs).prefix = None;
    bucket(&mut obs).versioning = Versioning::Enabled;
    bucket(&mut obs).rules = vec![
        rule("short", "AWSLogs/", Some(30), Some(400)),
        rule("long", "", Some(400), Some(10)),
        rule("elsewhere", "tmp/", Some(1), Some(1)),
    ];
    obs.log_group = Some(Ok(LogGroupFacts {
        retention_days: Some(90),
        ..log_group_never()
    }));
    let findings = judged(&obs);
    let actions = plan(&spec("Enforce"), &obs, &findings, &TrailPolicy::default());
    assert_eq!(
        actions,
        [
            TrailAction::StartLogging,
            TrailAction::UpdateTrail,
            TrailAction::RaiseLifecycle {
                bucket: "audit-logs".into(),
                region: "us-east-1".into(),
                rules: vec![
                    // 30 is raised to 365; the noncurrent 400 is left alone.
                    RuleRaise {
                        id: "short".into(),
                        expiration_days: Some(365),
                        noncurrent_days: None,
                    },
                    // A 400-day expiration stays 400; its short noncurrent one is raised.
                    RuleRaise {
                        id: "long".into(),
                        expiration_days: None,
                        noncurrent_days: Some(365),
                    },
                ],
            },
            TrailAction::RaiseLogRetention {
                name: "audit/trail".into(),
                region: "us-east-1".into(),
                days: 365,
            },
        ]
    );
    assert!(plan(&spec("Audit"), &obs, &findings, &TrailPolicy::default()).is_empty());
    let audit_only = TrailPolicy {
        audit_only: true,
        ..TrailPolicy::default()
    };
    assert!(plan(&spec("Enforce"), &obs, &findings, &audit_only).is_empty());
}

#[test]
fn the_floor_wins_over_a_lower_spec_and_log_retention_takes_an_allowed_value() {
    let mut low = spec("Enforce");
    low.retention_days = 30;
    assert_eq!(required_retention(&low, &TrailPolicy::default()), 365);
    let mut high = spec("Enforce");
    high.retention_days = 500;
    assert_eq!(required_retention(&high, &TrailPolicy::default()), 500);
    assert_eq!(log_retention_at_least(365), 365);
    assert_eq!(log_retention_at_least(500), 545);
    assert_eq!(log_retention_at_least(3653), 3653);
    // A 400-day rule passes a 365-day policy, and a 500-day one would raise it to 500.
    let obs = compliant();
    let findings = evaluate(&high, &obs, &TrailPolicy::default());
    assert!(!finding(&findings, LogsRetained).is_pass());
    let actions = plan(&high, &obs, &findings, &TrailPolicy::default());
    assert!(actions.contains(&TrailAction::RaiseLogRetention {
        name: "audit/trail".into(),
        region: "us-east-1".into(),
        days: 545,
    }));
}

#[test]
fn a_missing_trail_blocks_every_check_and_plans_nothing() {
    let obs = TrailObservation {
        trail: None,
        bucket: None,
        log_group: None,
        now: at(0),
    };
    let findings = judged(&obs);
    assert!(
        findings
            .iter()
            .all(|f| f.verdict == Verdict::Blocked && f.reason == Reason::TrailNotFound)
    );
    assert!(plan(&spec("Enforce"), &obs, &findings, &TrailPolicy::default()).is_empty());
}

#[test]
fn where_the_logs_land() {
    let mut t = compliant().trail.expect("trail");
    assert_eq!(t.logs_prefix(), "trail/AWSLogs/");
    t.prefix = Some("a/b/".into());
    assert_eq!(t.logs_prefix(), "a/b/AWSLogs/");
    t.prefix = None;
    assert_eq!(t.logs_prefix(), "AWSLogs/");
    assert_eq!(t.log_group(), Some(("audit/trail".into(), "us-east-1".into())));
}
