//! Table tests of evaluate and plan: every check, every ineligible case, the safety rules.
// `..InstanceChange::default()` keeps the expected change sets as they are when a field is added.
#![allow(clippy::needless_update)]

use super::*;
use crate::api::database::{BackedUpDatabaseSpec, KmsKeySpec};

const SRC: &str = "us-east-1";
const DST: &str = "us-west-2";
const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).expect("timestamp")
}

fn spec() -> BackedUpDatabaseSpec {
    serde_json::from_value(serde_json::json!({"instance": {"identifier": "orders-db", "region": SRC}}))
        .expect("spec")
}

/// A spec that names the key `id` of the destination instead of creating one.
fn spec_naming(id: &str) -> BackedUpDatabaseSpec {
    let mut spec = spec();
    spec.replication.kms_key = KmsKeySpec {
        create: false,
        arn: Some(key(DST, id).arn),
    };
    spec
}

fn key(arn_region: &str, id: &str) -> KeyFacts {
    KeyFacts {
        arn: format!("arn:aws:kms:{arn_region}:123456789012:key/{id}"),
        key_id: id.to_string(),
        state: "Enabled".into(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        key_usage: "ENCRYPT_DECRYPT".into(),
        key_manager: "CUSTOMER".into(),
        created: Some(at(30 * 24 * 3600)),
    }
}

fn instance() -> InstanceFacts {
    InstanceFacts {
        identifier: "orders-db".into(),
        arn: "arn:aws:rds:us-east-1:123456789012:db:orders-db".into(),
        region: SRC.into(),
        status: "available".into(),
        engine: "postgres".into(),
        retention_days: 7,
        latest_restorable_time: Some(at(300)),
        kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/source-key".into()),
        ..Default::default()
    }
}

fn replica() -> ReplicaFacts {
    ReplicaFacts {
        arn: "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-1".into(),
        source_arn: instance().arn,
        status: "replicating".into(),
        retention_days: Some(7),
        kms_key_arn: Some(key(DST, "replica-key").arn),
        latest_time: Some(at(600)),
        ..Default::default()
    }
}

/// A fully compliant observation; tests change one thing at a time.
fn compliant() -> DatabaseObservation {
    DatabaseObservation {
        instance: Some(instance()),
        newest_snapshot: Some(at(3 * 3600)),
        replica: Some(replica()),
        replica_key: Some(KeyLookup::Found(key(DST, "replica-key"))),
        desired_key: KeyLookup::Found(key(DST, "replica-key")),
        source_region_supported: true,
        other_key_users: Vec::new(),
        quota_exhausted_at: None,
        now: at(0),
    }
}

fn noncompliant() -> DatabaseObservation {
    let mut obs = compliant();
    inst(&mut obs).retention_days = 1;
    obs.replica = None;
    obs.replica_key = None;
    obs.desired_key = KeyLookup::AliasMissing(replica_key_alias(SRC, "orders-db"));
    obs
}

fn inst(obs: &mut DatabaseObservation) -> &mut InstanceFacts {
    obs.instance.as_mut().expect("instance")
}

fn finding(findings: &[Finding], check: DatabaseCheck) -> &Finding {
    findings
        .iter()
        .find(|f| f.check == check.into())
        .expect("finding for every check")
}

fn policy() -> Policy {
    Policy::default()
}

#[test]
fn a_compliant_database_passes_every_check_and_plans_nothing() {
    let findings = evaluate(&spec(), &compliant(), &policy());
    assert_eq!(
        findings.iter().map(|f| f.check).collect::<Vec<_>>(),
        ConditionType::DATABASE_CHECKS
    );
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Pass, "{f:?}");
        assert_eq!(f.reason, Reason::Compliant);
    }
    assert_eq!(plan(&spec(), &compliant(), &findings, &policy()), Plan::default());
}

#[test]
fn each_check_reports_its_drift() {
    type Change = fn(&mut DatabaseObservation);
    let cases: Vec<(DatabaseCheck, Change, Verdict, Reason, &str)> = vec![
        (
            BackupsEnabled,
            |o| o.instance.as_mut().map_or((), |i| i.retention_days = 0),
            Verdict::Drift,
            Reason::DriftDetected,
            "disabled",
        ),
        (
            RetentionCompliant,
            |o| o.instance.as_mut().map_or((), |i| i.retention_days = 1),
            Verdict::Drift,
            Reason::DriftDetected,
            "retention is 1 day (policy 7 days)",
        ),
        (
            ReplicationActive,
            |o| o.replica = None,
            Verdict::Drift,
            Reason::DriftDetected,
            "no replication to us-west-2",
        ),
        (
            ReplicationActive,
            |o| o.replica.as_mut().map_or((), |r| r.status = "retained".into()),
            Verdict::Drift,
            Reason::DriftDetected,
            "stopped (status retained)",
        ),
        (
            ReplicationActive,
            |o| o.replica.as_mut().map_or((), |r| r.status = "PENDING".into()),
            Verdict::Pending,
            Reason::ActionPending,
            "starting",
        ),
        (
            ReplicaKeyCompliant,
            |o| {
                o.replica_key = Some(KeyLookup::Found(KeyFacts {
                    state: "Disabled".into(),
                    ..key(DST, "replica-key")
                }))
            },
            Verdict::Blocked,
            Reason::KeyNotUsable,
            "is Disabled",
        ),
        (
            ReplicaKeyCompliant,
            |o| {
                o.replica_key = Some(KeyLookup::Found(KeyFacts {
                    key_spec: "RSA_2048".into(),
                    ..key(DST, "replica-key")
                }))
            },
            Verdict::Blocked,
            Reason::KeyNotUsable,
            "symmetric",
        ),
        (
            ReplicaKeyCompliant,
            |o| o.replica_key = Some(KeyLookup::Found(key(DST, "source-key"))),
            Verdict::Blocked,
            Reason::KeyNotUsable,
            "source instance's own key",
        ),
        (
            ReplicaKeyCompliant,
            |o| o.replica_key = Some(KeyLookup::Found(key("eu-west-1", "replica-key"))),
            Verdict::Blocked,
            Reason::KeyNotUsable,
            "not in the destination region",
        ),
        (
            ReplicaKeyCompliant,
            |o| o.replica_key = Some(KeyLookup::NotFound("arn:aws:kms:us-west-2:1:key/gone".into())),
            Verdict::Blocked,
            Reason::KeyNotFound,
            "key/gone not found in us-west-2",
        ),
        (
            ReplicaRetentionCompliant,
            |o| o.replica.as_mut().map_or((), |r| r.retention_days = Some(3)),
            Verdict::Blocked,
            Reason::RestartRequired,
            "allowReplicationRestart",
        ),
        (
            BackupsFresh,
            |o| {
                o.instance
                    .as_mut()
                    .map_or((), |i| i.latest_restorable_time = Some(at(3 * 3600)))
            },
            Verdict::Drift,
            Reason::Stale,
            "restorable only to 2027-01-15T05:00:00Z (limit 1h)",
        ),
        (
            BackupsFresh,
            |o| o.newest_snapshot = Some(at(30 * 3600)),
            Verdict::Drift,
            Reason::Stale,
            "newest automated snapshot is from 2027-01-14T02:00:00Z (limit 26h)",
        ),
        (
            BackupsFresh,
            |o| o.newest_snapshot = None,
            Verdict::Drift,
            Reason::Stale,
            "no automated snapshot",
        ),
        (
            ReplicaFresh,
            |o| {
                o.replica
                    .as_mut()
                    .map_or((), |r| r.latest_time = Some(at(5 * 3600)))
            },
            Verdict::Drift,
            Reason::Stale,
            "replica restorable only to 2027-01-15T03:00:00Z (limit 2h)",
        ),
    ];
    for (check, change, verdict, reason, text) in cases {
        let mut obs = compliant();
        change(&mut obs);
        let findings = evaluate(&spec(), &obs, &policy());
        let f = finding(&findings, check);
        assert_eq!((f.verdict, f.reason), (verdict, reason), "{check:?}: {f:?}");
        assert!(
            f.message.contains(text),
            "{check:?}: {:?} lacks {text:?}",
            f.message
        );
        // The compliant baseline passes everything else that does not depend on the changed fact.
        assert!(
            findings.iter().filter(|g| !g.is_pass()).count() <= 3,
            "{check:?}: {findings:?}"
        );
    }
}

#[test]
fn a_missing_instance_blocks_every_check_naming_it() {
    let mut obs = compliant();
    obs.instance = None;
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(findings.len(), CHECKS.len());
    for f in &findings {
        assert_eq!(
            (f.verdict, f.reason),
            (Verdict::Blocked, Reason::InstanceNotFound)
        );
        assert!(
            f.message.contains("orders-db not found in us-east-1"),
            "{}",
            f.message
        );
    }
    assert!(plan(&spec(), &obs, &findings, &policy()).actions.is_empty());
}

#[test]
fn ineligible_instances_are_reported_as_what_they_are_and_never_acted_on() {
    type Change = fn(&mut DatabaseObservation);
    let cases: Vec<(&str, Change, DatabaseCheck, Reason, &str)> = vec![
        (
            "aurora member",
            |o| {
                o.instance.as_mut().map_or((), |i| {
                    i.cluster_identifier = Some("orders-cluster".into());
                    i.engine = "aurora-postgresql".into();
                    i.retention_days = 1
                })
            },
            ReplicationActive,
            Reason::Unsupported,
            "member of DB cluster orders-cluster",
        ),
        (
            "aurora member retention",
            |o| {
                o.instance.as_mut().map_or((), |i| {
                    i.cluster_identifier = Some("orders-cluster".into());
                    i.retention_days = 1
                })
            },
            RetentionCompliant,
            Reason::Unsupported,
            "set it on the cluster",
        ),
        (
            "multi-az db cluster member",
            |o| {
                o.instance
                    .as_mut()
                    .map_or((), |i| i.cluster_identifier = Some("maz-cluster".into()))
            },
            ReplicaKeyCompliant,
            Reason::Unsupported,
            "Multi-AZ DB clusters",
        ),
        (
            "read replica",
            |o| {
                o.instance.as_mut().map_or((), |i| {
                    i.read_replica_source = Some("orders-primary".into());
                    i.retention_days = 0
                })
            },
            BackupsEnabled,
            Reason::Unsupported,
            "read replica of orders-primary",
        ),
        (
            "aws backup",
            |o| {
                o.instance.as_mut().map_or((), |i| {
                    i.aws_backup_recovery_point_arn =
                        Some("arn:aws:backup:us-east-1:1:recovery-point:x".into());
                    i.retention_days = 1
                })
            },
            RetentionCompliant,
            Reason::ManagedByAwsBackup,
            "AWS Backup manages",
        ),
        (
            "unsupported region pair",
            |o| {
                o.source_region_supported = false;
                o.replica = None
            },
            ReplicationActive,
            Reason::Unsupported,
            "cannot replicate automated backups from us-east-1 to us-west-2",
        ),
    ];
    for (what, change, check, reason, text) in cases {
        let mut obs = compliant();
        change(&mut obs);
        let findings = evaluate(&spec(), &obs, &policy());
        let f = finding(&findings, check);
        assert_eq!((f.verdict, f.reason), (Verdict::Blocked, reason), "{what}: {f:?}");
        assert!(f.message.contains(text), "{what}: {:?}", f.message);
        let actions = plan(&spec(), &obs, &findings, &policy()).actions;
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, DbAction::StartReplication { .. } | DbAction::StopReplication))
                || !matches!(check, ReplicationActive | ReplicaKeyCompliant),
            "{what}: {actions:?}"
        );
        if matches!(reason, Reason::Unsupported | Reason::ManagedByAwsBackup) && check == RetentionCompliant {
            assert!(
                !actions
                    .iter()
                    .any(|a| matches!(a, DbAction::ModifyInstance { .. })),
                "{what}: {actions:?}"
            );
        }
    }
}

#[test]
fn an_unavailable_instance_is_reported_and_waited_for() {
    let mut obs = noncompliant();
    inst(&mut obs).status = "modifying".into();
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(finding(&findings, RetentionCompliant).verdict, Verdict::Drift);
    let plan = plan(&spec(), &obs, &findings, &policy());
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.holding,
        Some((
            Reason::InstanceNotAvailable,
            "instance is modifying; acting once it is available".to_string()
        ))
    );
}

#[test]
fn enforce_plans_the_whole_fix_in_order() {
    let obs = noncompliant();
    let findings = evaluate(&spec(), &obs, &policy());
    let plan = plan(&spec(), &obs, &findings, &policy());
    assert_eq!(
        plan.actions,
        [
            DbAction::ModifyInstance {
                change: InstanceChange {
                    backup_retention_days: Some(7),
                    apply_immediately: false,
                    ..InstanceChange::default()
                },
                from: InstanceChange {
                    backup_retention_days: Some(1),
                    ..InstanceChange::default()
                }
            },
            DbAction::CreateReplicaKey {
                alias: "alias/backup-warden/us-east-1/orders-db".into()
            },
            DbAction::StartReplication {
                key: KeyChoice::Created,
                retention_days: 7
            },
        ]
    );
}

#[test]
fn a_given_key_is_used_as_is() {
    let spec = spec_naming("team-key");
    let mut obs = noncompliant();
    obs.desired_key = KeyLookup::Found(key(DST, "team-key"));
    let findings = evaluate(&spec, &obs, &policy());
    let actions = plan(&spec, &obs, &findings, &policy()).actions;
    assert_eq!(
        actions[1],
        DbAction::StartReplication {
            key: KeyChoice::Arn(key(DST, "team-key").arn),
            retention_days: 7
        }
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, DbAction::CreateReplicaKey { .. }))
    );

    obs.desired_key = KeyLookup::NotFound(key(DST, "team-key").arn);
    let findings = evaluate(&spec, &obs, &policy());
    assert_eq!(
        finding(&findings, ReplicaKeyCompliant).reason,
        Reason::KeyNotFound
    );
    let actions = plan(&spec, &obs, &findings, &policy()).actions;
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, DbAction::StartReplication { .. })),
        "no start with a missing key"
    );
}

#[test]
fn enabling_backups_from_zero_waits_for_the_maintenance_window_unless_asked() {
    let mut obs = noncompliant();
    inst(&mut obs).retention_days = 0;
    let findings = evaluate(&spec(), &obs, &policy());
    let p = plan(&spec(), &obs, &findings, &policy());
    assert_eq!(
        p.actions,
        [DbAction::ModifyInstance {
            change: InstanceChange {
                backup_retention_days: Some(7),
                apply_immediately: false,
                ..InstanceChange::default()
            },
            from: InstanceChange {
                backup_retention_days: Some(0),
                ..InstanceChange::default()
            }
        }],
        "replication waits for backups"
    );
    assert_eq!(
        p.holding.map(|(_, message)| message).as_deref(),
        Some("replication starts once automated backups are enabled")
    );

    let mut now = spec();
    now.backups.apply_immediately = true;
    let p = plan(&now, &obs, &findings, &policy());
    assert_eq!(
        p.actions[0],
        DbAction::ModifyInstance {
            change: InstanceChange {
                backup_retention_days: Some(7),
                apply_immediately: true,
                ..InstanceChange::default()
            },
            from: InstanceChange {
                backup_retention_days: Some(0),
                ..InstanceChange::default()
            }
        }
    );

    // Once scheduled, it is pending, not planned again.
    inst(&mut obs).pending_retention_days = Some(7);
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(finding(&findings, BackupsEnabled).verdict, Verdict::Pending);
    assert_eq!(finding(&findings, RetentionCompliant).verdict, Verdict::Pending);
    assert!(plan(&spec(), &obs, &findings, &policy()).actions.is_empty());
}

#[test]
fn retention_is_never_lowered() {
    for (have, spec_days, floor) in [(14, 7, 7), (35, 7, 7), (10, 1, 7), (8, 8, 1)] {
        let mut obs = compliant();
        inst(&mut obs).retention_days = have;
        let mut spec = spec();
        spec.backups.retention_days = spec_days;
        let policy = Policy {
            min_retention_days: floor,
            audit_only: false,
        };
        let findings = evaluate(&spec, &obs, &policy);
        assert!(
            finding(&findings, RetentionCompliant).is_pass(),
            "{have} >= max({spec_days}, {floor})"
        );
        assert!(
            plan(&spec, &obs, &findings, &policy).actions.is_empty(),
            "a retention of {have} is left alone"
        );
    }
    // Whatever the inputs, a planned change only ever raises.
    for have in 0..=35 {
        for spec_days in 1..=35 {
            let mut obs = compliant();
            inst(&mut obs).retention_days = have;
            let mut spec = spec();
            spec.backups.retention_days = spec_days;
            let findings = evaluate(&spec, &obs, &policy());
            for action in plan(&spec, &obs, &findings, &policy()).actions {
                if let DbAction::ModifyInstance { change, from } = action {
                    let (to, was) = (change.backup_retention_days, from.backup_retention_days);
                    assert!(to > was && was == Some(have), "{have} -> {to:?}");
                }
            }
        }
    }
}

#[test]
fn the_policy_floor_raises_a_lower_spec() {
    let mut spec = spec();
    spec.backups.retention_days = 3;
    let mut obs = compliant();
    inst(&mut obs).retention_days = 3;
    let findings = evaluate(
        &spec,
        &obs,
        &Policy {
            min_retention_days: 7,
            audit_only: false,
        },
    );
    assert_eq!(
        finding(&findings, RetentionCompliant).message,
        "retention is 3 days (policy 7 days)"
    );
    let findings = evaluate(
        &spec,
        &obs,
        &Policy {
            min_retention_days: 1,
            audit_only: false,
        },
    );
    assert!(finding(&findings, RetentionCompliant).is_pass());
}

#[test]
fn audit_plans_nothing() {
    let obs = noncompliant();
    let mut audit = spec();
    audit.mode = Mode::Audit;
    let findings = evaluate(&audit, &obs, &policy());
    let p = plan(&audit, &obs, &findings, &policy());
    assert_eq!(p, Plan::default(), "nothing planned and nothing under way");

    let controller_wide = Policy {
        audit_only: true,
        ..policy()
    };
    let findings = evaluate(&spec(), &obs, &controller_wide);
    assert!(
        plan(&spec(), &obs, &findings, &controller_wide)
            .actions
            .is_empty()
    );
}

#[test]
fn replication_is_never_stopped_without_the_opt_in() {
    let mut obs = compliant();
    obs.replica.as_mut().expect("replica").retention_days = Some(3);
    let findings = evaluate(&spec(), &obs, &policy());
    assert!(plan(&spec(), &obs, &findings, &policy()).actions.is_empty());

    let mut allowed = spec();
    allowed.replication.allow_replication_restart = true;
    let findings = evaluate(&allowed, &obs, &policy());
    assert_eq!(
        finding(&findings, ReplicaRetentionCompliant).verdict,
        Verdict::Drift
    );
    assert_eq!(
        plan(&allowed, &obs, &findings, &policy()).actions,
        [
            DbAction::StopReplication,
            DbAction::StartReplication {
                key: KeyChoice::Arn(key(DST, "replica-key").arn),
                retention_days: 7
            }
        ]
    );
}

#[test]
fn a_replica_under_another_key_than_the_given_one_needs_the_restart_opt_in() {
    let spec = spec_naming("team-key");
    let mut obs = compliant();
    obs.desired_key = KeyLookup::Found(key(DST, "team-key"));
    let findings = evaluate(&spec, &obs, &policy());
    let f = finding(&findings, ReplicaKeyCompliant);
    assert_eq!((f.verdict, f.reason), (Verdict::Blocked, Reason::RestartRequired));
    assert!(plan(&spec, &obs, &findings, &policy()).actions.is_empty());
}

#[test]
fn a_multi_region_replica_of_the_source_key_counts_as_the_source_key() {
    let mut obs = noncompliant();
    inst(&mut obs).kms_key_id = Some("arn:aws:kms:us-east-1:123456789012:key/mrk-1234".into());
    obs.desired_key = KeyLookup::Found(key(DST, "mrk-1234"));
    let spec = spec_naming("mrk-1234");
    let findings = evaluate(&spec, &obs, &policy());
    let f = finding(&findings, ReplicaKeyCompliant);
    assert_eq!(f.reason, Reason::KeyNotUsable, "{f:?}");
    assert!(
        !plan(&spec, &obs, &findings, &policy())
            .actions
            .iter()
            .any(|a| matches!(a, DbAction::StartReplication { .. }))
    );
}

#[test]
fn a_second_replication_is_never_planned_while_one_is_active_or_pending() {
    for status in ["replicating", "pending", "Replicating"] {
        let mut obs = noncompliant();
        obs.replica = Some(ReplicaFacts {
            status: status.into(),
            ..replica()
        });
        obs.replica_key = Some(KeyLookup::Found(key(DST, "replica-key")));
        let findings = evaluate(&spec(), &obs, &policy());
        let actions = plan(&spec(), &obs, &findings, &policy()).actions;
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                DbAction::StartReplication { .. } | DbAction::CreateReplicaKey { .. }
            )),
            "{status}: {actions:?}"
        );
    }
}

fn other_backup(source: &str, key_id: &str, status: &str) -> ReplicaFacts {
    ReplicaFacts {
        arn: format!("arn:aws:rds:us-west-2:123456789012:auto-backup:ab-{source}"),
        source_arn: format!("arn:aws:rds:us-east-1:123456789012:db:{source}"),
        status: status.into(),
        kms_key_arn: Some(key(DST, key_id).arn),
        ..Default::default()
    }
}

fn starts(actions: &[DbAction]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, DbAction::StartReplication { .. }))
}

#[test]
fn a_given_key_must_be_customer_managed_and_used_by_no_other_source() {
    let spec = spec_naming("team-key");
    type Change = fn(&mut DatabaseObservation);
    let cases: Vec<(&str, Change, Option<&str>)> = vec![
        (
            "AWS managed (alias/aws/rds)",
            |o| {
                o.desired_key = KeyLookup::Found(KeyFacts {
                    key_manager: "AWS".into(),
                    ..key(DST, "team-key")
                })
            },
            Some("is AWS managed"),
        ),
        (
            "replicating backup of another instance",
            |o| o.other_key_users = vec![other_backup("billing-db", "team-key", "replicating")],
            Some(
                "already encrypts the automated backups of arn:aws:rds:us-east-1:123456789012:db:billing-db in us-west-2",
            ),
        ),
        (
            "retained backup of another instance",
            |o| o.other_key_users = vec![other_backup("billing-db", "team-key", "retained")],
            Some("db:billing-db in"),
        ),
        (
            "several other instances",
            |o| {
                o.other_key_users = vec![
                    other_backup("billing-db", "team-key", "replicating"),
                    other_backup("users-db", "team-key", "retained"),
                ]
            },
            Some("db:billing-db and 1 more in us-west-2"),
        ),
        (
            "another key's user is no concern",
            |o| o.other_key_users = vec![other_backup("billing-db", "some-other-key", "replicating")],
            None,
        ),
    ];
    for (what, change, problem) in cases {
        let mut obs = noncompliant();
        obs.desired_key = KeyLookup::Found(key(DST, "team-key"));
        change(&mut obs);
        let findings = evaluate(&spec, &obs, &policy());
        let f = finding(&findings, ReplicaKeyCompliant);
        let actions = plan(&spec, &obs, &findings, &policy()).actions;
        match problem {
            Some(text) => {
                assert_eq!(
                    (f.verdict, f.reason),
                    (Verdict::Blocked, Reason::KeyNotDedicated),
                    "{what}: {f:?}"
                );
                assert!(f.message.contains(text), "{what}: {:?}", f.message);
                assert!(!starts(&actions), "{what}: no replication with it: {actions:?}");
            }
            None => {
                assert_eq!(f.verdict, Verdict::Pass, "{what}: {f:?}");
                assert!(starts(&actions), "{what}: {actions:?}");
            }
        }
    }
}

#[test]
fn a_replica_under_a_shared_key_is_restarted_under_the_dedicated_one_only_with_the_opt_in() {
    let mut spec = spec_naming("team-key");
    let mut obs = compliant();
    obs.desired_key = KeyLookup::Found(key(DST, "team-key"));
    obs.other_key_users = vec![other_backup("billing-db", "replica-key", "replicating")];
    let findings = evaluate(&spec, &obs, &policy());
    let f = finding(&findings, ReplicaKeyCompliant);
    assert_eq!(
        (f.verdict, f.reason),
        (Verdict::Blocked, Reason::RestartRequired),
        "{f:?}"
    );
    assert!(f.message.contains("db:billing-db"), "{}", f.message);
    assert!(plan(&spec, &obs, &findings, &policy()).actions.is_empty());

    spec.replication.allow_replication_restart = true;
    let findings = evaluate(&spec, &obs, &policy());
    assert_eq!(finding(&findings, ReplicaKeyCompliant).verdict, Verdict::Drift);
    assert_eq!(
        plan(&spec, &obs, &findings, &policy()).actions,
        [
            DbAction::StopReplication,
            DbAction::StartReplication {
                key: KeyChoice::Arn(key(DST, "team-key").arn),
                retention_days: 7
            }
        ]
    );

    // With no fit key to move to, it is reported and left alone.
    obs.desired_key = KeyLookup::Found(key(DST, "replica-key"));
    let findings = evaluate(&spec, &obs, &policy());
    let f = finding(&findings, ReplicaKeyCompliant);
    assert_eq!(
        (f.verdict, f.reason),
        (Verdict::Blocked, Reason::KeyNotDedicated),
        "{f:?}"
    );
    assert!(plan(&spec, &obs, &findings, &policy()).actions.is_empty());
}

#[test]
fn no_key_is_created_while_the_destination_quota_is_known_to_be_exhausted() {
    let mut obs = noncompliant();
    obs.quota_exhausted_at = Some(20);
    let findings = evaluate(&spec(), &obs, &policy());
    let f = finding(&findings, ReplicationActive);
    assert_eq!(
        (f.verdict, f.reason),
        (Verdict::Blocked, Reason::QuotaExceeded),
        "{f:?}"
    );
    assert!(f.message.contains("20 active"), "{}", f.message);
    let actions = plan(&spec(), &obs, &findings, &policy()).actions;
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            DbAction::CreateReplicaKey { .. } | DbAction::StartReplication { .. }
        )),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, DbAction::ModifyInstance { .. })),
        "the retention is still raised: {actions:?}"
    );

    // A database that already has its key tries again: that costs no key.
    obs.desired_key = KeyLookup::Found(key(DST, "replica-key"));
    let findings = evaluate(&spec(), &obs, &policy());
    assert_eq!(finding(&findings, ReplicationActive).verdict, Verdict::Drift);
    let actions = plan(&spec(), &obs, &findings, &policy()).actions;
    assert!(starts(&actions), "{actions:?}");
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, DbAction::CreateReplicaKey { .. }))
    );
}

#[test]
fn the_check_table_lists_every_check_once_in_declaration_order() {
    let table: Vec<DatabaseCheck> = CHECKS.iter().map(|c| c.check).collect();
    assert_eq!(table, DatabaseCheck::ALL);
    for c in &CHECKS {
        assert!(
            !(c.desired)(&spec(), &policy()).is_empty(),
            "{:?} says what it wants",
            c.check
        );
    }
}

#[test]
fn facts_that_differ_only_in_restorable_times_are_the_same() {
    let moved = |i: &mut InstanceFacts| i.latest_restorable_time = Some(at(1));
    let mut later = instance();
    moved(&mut later);
    assert!(instance().same_but_times(&later));
    let changes: [fn(&mut InstanceFacts); 4] = [
        |i| i.retention_days = 1,
        |i| i.pending_retention_days = Some(1),
        |i| i.replications.push("arn:replica".into()),
        |i| i.kms_key_id = None,
    ];
    for change in changes {
        let mut other = later.clone();
        change(&mut other);
        assert!(!instance().same_but_times(&other), "{other:?}");
    }
    let mut r = replica();
    r.latest_time = Some(at(1));
    assert!(replica().same_but_times(&r));
    r.status = "retained".into();
    assert!(!replica().same_but_times(&r));
}
