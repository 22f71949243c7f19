use super::*;
use crate::evidence::{Controller, ObjectRef, record::FORMAT};

fn at(time: &str, body: Body) -> Record {
    Record {
        v: FORMAT,
        id: format!("{time}-{}", body_tag(&body)),
        time: time.into(),
        controller: Controller {
            version: "0.1.0".into(),
            replica: "pod-0".into(),
        },
        object: Some(ObjectRef {
            kind: "BackedUpDatabase".into(),
            namespace: "team".into(),
            name: "orders".into(),
            uid: None,
            generation: Some(1),
        }),
        body,
    }
}

fn body_tag(body: &Body) -> &'static str {
    match body {
        Body::Drift { .. } => "drift",
        Body::Resolved { .. } => "resolved",
        Body::Action { .. } => "action",
        Body::Attestation { .. } => "attestation",
        Body::Gap { .. } => "gap",
    }
}

fn check(type_: &str, status: &str) -> CheckState {
    CheckState {
        type_: type_.into(),
        status: status.into(),
        reason: if status == "True" {
            "Compliant"
        } else {
            "DriftDetected"
        }
        .into(),
        message: format!("{type_} is {status}"),
    }
}

fn attestation(retention: &str) -> Body {
    let ready = if retention == "True" { "True" } else { "False" };
    Body::Attestation {
        mode: "Enforce".into(),
        suspended: false,
        checks: vec![check("Ready", ready), check("RetentionCompliant", retention)],
        state: serde_json::json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
            "metadata": {"name": "orders", "namespace": "team", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"instance": {"identifier": "orders-db", "region": "us-east-1"}},
            "status": {"conditions": [], "instance": {"retentionDays": 7}},
        }),
    }
}

fn source(lock: Option<&str>, objects: usize, locked: usize) -> Source {
    Source {
        location: "s3://evidence/backup-warden/".into(),
        object_lock: lock.map(str::to_string),
        objects,
        objects_locked: locked,
        live_state: "not read".into(),
    }
}

fn date(s: &str) -> Date {
    s.parse().expect("date")
}

fn now() -> Timestamp {
    "2026-12-05T12:00:00Z".parse().expect("now")
}

#[test]
fn a_drift_healed_in_five_minutes_makes_one_drift_day_and_its_episode() {
    let records = vec![
        at("2026-12-01T00:01:00Z", attestation("True")),
        at("2026-12-02T00:01:00Z", attestation("True")),
        at(
            "2026-12-02T10:00:00Z",
            Body::Drift {
                check: "RetentionCompliant".into(),
                reason: "DriftDetected".into(),
                message: "retention is 1 day".into(),
            },
        ),
        at(
            "2026-12-02T10:00:01Z",
            Body::Action {
                action: "RetentionRaised".into(),
                description: "raised retention to 7 days".into(),
                failed: false,
                request_ids: vec!["ModifyDBInstance r-1".into()],
            },
        ),
        at(
            "2026-12-02T10:05:00Z",
            Body::Resolved {
                check: "RetentionCompliant".into(),
                message: "retention is 7 days".into(),
            },
        ),
        at("2026-12-03T00:01:00Z", attestation("True")),
    ];
    let report = build(
        &records,
        date("2026-12-01"),
        date("2026-12-04"),
        source(None, 4, 0),
        now(),
    );
    assert_eq!(report.resources.len(), 1);
    let r = &report.resources[0];
    assert_eq!(
        r.days,
        [
            DayState::Compliant,
            DayState::Drift,
            DayState::Compliant,
            DayState::NoEvidence
        ]
    );
    assert_eq!(r.compliance_percent, Some(50.0));
    assert_eq!(r.episodes.len(), 1);
    let e = &r.episodes[0];
    assert_eq!(
        (e.check.as_str(), e.heal_seconds),
        ("RetentionCompliant", Some(300.0))
    );
    assert!(!e.resolved_by_attestation);
    assert_eq!(r.actions[0].request_ids, ["ModifyDBInstance r-1"]);
    assert_eq!(r.current, Compliance::Compliant);
    assert_eq!(
        report.estate.databases[0].compliance,
        Compliance::Compliant,
        "the map shows the end state"
    );
    assert_eq!(
        r.subject,
        "RDS instance orders-db in us-east-1 (account self) → us-west-2"
    );
    assert_eq!(report.estate.databases.len(), 1);
    assert_eq!(report.days[1].drift, 1);
    assert_eq!(report.days[3].no_evidence, 1);
}

#[test]
fn attestations_open_an_unrecorded_drift_and_close_one_whose_resolution_was_not_recorded() {
    let records = vec![
        at("2026-12-01T00:01:00Z", attestation("False")),
        at("2026-12-02T00:01:00Z", attestation("True")),
    ];
    let report = build(
        &records,
        date("2026-12-01"),
        date("2026-12-02"),
        source(None, 2, 0),
        now(),
    );
    let e = &report.resources[0].episodes[0];
    assert!(e.resolved_by_attestation);
    assert_eq!(e.heal_seconds, Some(86_400.0));
    // The drift lasted into the second day.
    assert_eq!(report.resources[0].days, [DayState::Drift, DayState::Drift]);
}

#[test]
fn an_open_drift_is_current_and_days_before_creation_do_not_count() {
    let records = vec![
        at("2026-11-02T00:01:00Z", attestation("True")),
        at(
            "2026-11-02T08:00:00Z",
            Body::Drift {
                check: "RetentionCompliant".into(),
                reason: "AuditOnly".into(),
                message: "retention is 1 day".into(),
            },
        ),
    ];
    let report = build(
        &records,
        date("2026-10-31"),
        date("2026-11-02"),
        source(None, 1, 0),
        now(),
    );
    let r = &report.resources[0];
    assert_eq!(r.days, [DayState::Absent, DayState::NoEvidence, DayState::Drift]);
    assert_eq!(r.compliance_percent, Some(0.0));
    assert_eq!(r.current, Compliance::Drift);
    assert_eq!(r.episodes[0].resolved_at, None);
}

#[test]
fn tamper_evidence_needs_compliance_mode_on_the_bucket_and_every_object() {
    let evident = tamper_evidence(&source(Some("COMPLIANCE 400 days"), 3, 3));
    assert!(evident.tamper_evident, "{}", evident.statement);
    assert!(evident.statement.starts_with("Tamper-evident"));
    let partial = tamper_evidence(&source(Some("COMPLIANCE 400 days"), 3, 2));
    assert!(!partial.tamper_evident);
    assert!(partial.statement.contains("only 2 of 3"));
    let governance = tamper_evidence(&source(Some("GOVERNANCE 30 days"), 3, 0));
    assert!(!governance.tamper_evident && governance.statement.contains("governance"));
    let none = tamper_evidence(&source(None, 3, 0));
    assert!(!none.tamper_evident && none.statement.contains("no Object Lock"));
}

#[test]
fn a_gap_and_a_coverage_attestation_are_reported() {
    let mut gap = at(
        "2026-12-01T05:00:00Z",
        Body::Gap {
            dropped: 12,
            from: "2026-12-01T04:00:00Z".into(),
            to: "2026-12-01T04:30:00Z".into(),
        },
    );
    gap.object = None;
    let mut cov = at(
        "2026-12-01T06:00:00Z",
        Body::Attestation {
            mode: "Report".into(),
            suspended: false,
            checks: vec![],
            state: serde_json::json!({
                "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
                "metadata": {"name": "all"},
                "spec": {"namespace": "adopted"},
                "status": {"databases": {"discovered": 3, "declared": 1, "exempt": 1, "undeclared": 1,
                    "exemptResources": [{"name": "scratch-db", "account": "self", "region": "us-east-1", "reason": "test data, CTO 2026-10"}]}},
            }),
        },
    );
    cov.object = Some(ObjectRef {
        kind: "BackupCoverage".into(),
        name: "all".into(),
        ..Default::default()
    });
    let report = build(
        &[gap, cov],
        date("2026-12-01"),
        date("2026-12-01"),
        source(None, 2, 0),
        now(),
    );
    assert_eq!(report.gaps[0].dropped, 12);
    assert!(report.resources.is_empty(), "neither is a resource");
    let c = &report.coverage[0];
    assert_eq!(
        c.counts,
        ["RDS instances: 3 in scope, 1 declared, 1 exempt, 1 undeclared"]
    );
    assert_eq!(c.exemptions[0].reason, "test data, CTO 2026-10");
}

#[test]
fn a_drift_resolved_after_the_days_attestation_ends_compliant_on_the_map() {
    let records = vec![
        at("2026-12-01T00:01:00Z", attestation("False")),
        at(
            "2026-12-01T00:01:01Z",
            Body::Resolved {
                check: "RetentionCompliant".into(),
                message: "retention is 7 days".into(),
            },
        ),
    ];
    let report = build(
        &records,
        date("2026-12-01"),
        date("2026-12-01"),
        source(None, 1, 0),
        now(),
    );
    assert_eq!(report.resources[0].current, Compliance::Compliant);
    assert_eq!(report.estate.databases[0].compliance, Compliance::Compliant);
    assert_eq!(report.resources[0].episodes[0].heal_seconds, Some(1.0));
}
