//! The BackedUpDatabase controller end to end: the real API server, the AWS emulator, the
//! controller running in this process. Each test works in its own namespace and its own
//! AWS account (through `spec.instance.roleArn`), so tests never see each other's resources.

use std::time::Duration;

use crate::support::{CONVERGE, DESTINATION, SOURCE, World, is, world};
use aws_sdk_kms::types::KeyUsageType;
use backup_warden::{
    api::{BackedUpDatabase, ConditionType, DatabaseCheck},
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use serde_json::json;

/// Mutating calls: none of them may happen in Audit mode.
const WRITES: [&str; 5] = [
    "ModifyDBInstance",
    "CreateKey",
    "CreateAlias",
    "StartDBInstanceAutomatedBackupsReplication",
    "StopDBInstanceAutomatedBackupsReplication",
];

impl World {
    async fn instance(&self, identifier: &str, retention: i32) {
        testing::create_instance(&self.rds_source, identifier, retention).await;
    }

    async fn event_reasons(&self) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.dbs.clone().into_client(), &self.namespace);
        let list = events.list(&ListParams::default()).await.expect("events");
        list.items.into_iter().filter_map(|e| e.reason).collect()
    }
}

async fn controller(w: &World, policy: Policy) -> RunningController {
    let ctx = testing::env().context(policy, testing::fast_timing()).await;
    RunningController::start(ctx, &w.namespace)
}

#[tokio::test]
async fn enforce_makes_a_noncompliant_database_ready_and_deleting_it_leaves_aws_alone() {
    let w = world("bdb-enforce").await;
    w.instance("orders-db", 1).await;
    w.apply("orders", "orders-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;

    let db = wait_for(&w.dbs, "orders", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("orders-db").await, 7);
    let replicas = w.replicas("orders-db").await;
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert_eq!(replicas[0].0, "replicating");
    let status = db.status.clone().expect("status");
    let replica = status.replica.expect("observed replica");
    assert_eq!(replica.region.as_deref(), Some(DESTINATION));
    assert_eq!(replica.retention_days, Some(7));
    assert_eq!(replica.kms_key_arn.as_deref(), Some(replicas[0].1.as_str()));
    assert_eq!(status.instance.and_then(|i| i.retention_days), Some(7));

    // The replica's key is the dedicated one, under the per-database alias.
    let alias = w
        .aliases()
        .await
        .into_iter()
        .find(|(name, _)| name == "alias/backup-warden/us-east-1/orders-db")
        .map(|(_, target)| target)
        .expect("alias exists");
    assert!(
        replicas[0].1.ends_with(&alias),
        "{} uses the aliased key {alias}",
        replicas[0].1
    );
    assert_eq!(w.keys_made_for("orders-db").await.len(), 1);
    for check in ConditionType::DATABASE_CHECKS {
        assert_eq!(
            condition(&db, check).map(|c| c.0).as_deref(),
            Some("True"),
            "{check:?}"
        );
    }
    let reasons = w.event_reasons().await;
    for reason in [
        "DriftDetected",
        "RetentionRaised",
        "ReplicaKeyCreated",
        "ReplicationStarted",
        "DriftResolved",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }

    // Deleting the resource stops management and touches nothing in AWS.
    w.dbs
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    assert_eq!(w.retention("orders-db").await, 7);
    assert_eq!(w.replicas("orders-db").await, replicas);
    let key = w
        .kms_destination
        .describe_key()
        .key_id(&alias)
        .send()
        .await
        .expect("key still there");
    assert_eq!(
        key.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str()),
        Some("Enabled")
    );
}

#[tokio::test]
async fn audit_reports_every_finding_and_changes_nothing() {
    let w = world("bdb-audit").await;
    w.instance("billing-db", 1).await;
    w.apply("billing", "billing-db", json!({"mode": "Audit"})).await;
    let c = controller(&w, Policy::default()).await;

    let db = wait_for(&w.dbs, "billing", CONVERGE, is("False", ConditionType::Ready)).await;
    let (_, reason, message) = condition(&db, ConditionType::Ready).expect("ready");
    assert_eq!(reason, "AuditOnly");
    for finding in [
        "retention is 1 day (policy 7 days)",
        "no replication to us-west-2",
        "no dedicated replica key yet",
    ] {
        assert!(message.contains(finding), "{message:?} lacks {finding:?}");
    }
    assert_eq!(
        condition(&db, DatabaseCheck::RetentionCompliant).map(|c| (c.0, c.1)),
        Some(("False".into(), "AuditOnly".into()))
    );
    // Nothing will fix it: a person must act, which GitOps tools read as Failed/Degraded.
    assert_eq!(
        condition(&db, ConditionType::Stalled).map(|c| (c.0, c.1)),
        Some(("True".into(), "AuditOnly".into()))
    );

    // Several resyncs later: still nothing written.
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    for op in WRITES {
        assert_eq!(c.ctx.calls.calls(op), 0, "{op} in Audit mode");
    }
    assert!(
        c.ctx.calls.calls("DescribeDBInstances") > 0,
        "the counter sees calls: {:?}",
        c.ctx.calls.snapshot()
    );
    assert_eq!(w.retention("billing-db").await, 1);
    assert!(w.replicas("billing-db").await.is_empty());
    assert_eq!(w.keys_made_for("billing-db").await.len(), 0);
}

#[tokio::test]
async fn the_controller_wide_audit_flag_overrides_enforce() {
    let w = world("bdb-audit-only").await;
    w.instance("ledger-db", 1).await;
    w.apply("ledger", "ledger-db", json!({"mode": "Enforce"})).await;
    let c = controller(
        &w,
        Policy {
            audit_only: true,
            ..Policy::default()
        },
    )
    .await;
    let db = wait_for(&w.dbs, "ledger", CONVERGE, is("False", ConditionType::Ready)).await;
    // The spec says Enforce, but nothing will be fixed: status says audit, not "being fixed".
    for t in [
        ConditionType::Ready,
        ConditionType::Stalled,
        DatabaseCheck::RetentionCompliant.into(),
    ] {
        assert_eq!(
            condition(&db, t).map(|c| c.1).as_deref(),
            Some("AuditOnly"),
            "{t:?}"
        );
    }
    tokio::time::sleep(testing::fast_timing().resync).await;
    for op in WRITES {
        assert_eq!(c.ctx.calls.calls(op), 0, "{op} with --audit-only");
    }
    assert_eq!(w.retention("ledger-db").await, 1);
}

#[tokio::test]
async fn drift_made_in_aws_is_found_within_a_resync_and_healed() {
    let w = world("bdb-drift").await;
    w.instance("search-db", 3).await;
    w.apply("search", "search-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "search", CONVERGE, is("True", ConditionType::Ready)).await;

    // Someone lowers the retention by hand; no Kubernetes event tells the controller.
    w.set_retention("search-db", 1).await;
    let deadline = tokio::time::Instant::now() + testing::fast_timing().resync * 3 + Duration::from_secs(5);
    while w.retention("search-db").await != 7 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention not restored within a resync"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(&w.dbs, "search", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.replicas("search-db").await.len(), 1, "still one replication");
}

#[tokio::test]
async fn a_higher_retention_in_aws_is_kept() {
    let w = world("bdb-higher").await;
    w.instance("archive-db", 14).await;
    w.apply("archive", "archive-db", json!({})).await;
    let c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "archive", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("archive-db").await, 14);
    assert_eq!(c.ctx.calls.calls("ModifyDBInstance"), 0);
}

#[tokio::test]
async fn a_disabled_replica_key_stalls_naming_the_key() {
    let w = world("bdb-key").await;
    w.instance("crm-db", 7).await;
    w.apply("crm", "crm-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;
    let db = wait_for(&w.dbs, "crm", CONVERGE, is("True", ConditionType::Ready)).await;
    let key_arn = db
        .status
        .and_then(|s| s.replica)
        .and_then(|r| r.kms_key_arn)
        .expect("replica key");

    w.kms_destination
        .disable_key()
        .key_id(&key_arn)
        .send()
        .await
        .expect("disable key");
    let db = wait_for(&w.dbs, "crm", CONVERGE, is("True", ConditionType::Stalled)).await;
    let (status, reason, message) =
        condition(&db, DatabaseCheck::ReplicaKeyCompliant).expect("key condition");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "KeyNotUsable"));
    assert!(
        message.contains(&key_arn) && message.contains("Disabled"),
        "{message}"
    );
    let (_, stalled_reason, stalled_message) = condition(&db, ConditionType::Stalled).expect("stalled");
    assert_eq!(stalled_reason, "KeyNotUsable");
    assert!(stalled_message.contains(&key_arn));
}

#[tokio::test]
async fn a_given_key_is_used_and_a_missing_one_stalls() {
    let w = world("bdb-given-key").await;
    w.instance("hr-db", 7).await;
    w.instance("ops-db", 7).await;
    let key = w
        .kms_destination
        .create_key()
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .expect("key")
        .key_metadata
        .and_then(|m| m.arn)
        .expect("arn");
    w.apply("hr", "hr-db", json!({"replication": {"kmsKey": {"arn": key}}}))
        .await;
    let missing = format!(
        "arn:aws:kms:{DESTINATION}:{}:key/00000000-0000-0000-0000-000000000000",
        w.account
    );
    w.apply(
        "ops",
        "ops-db",
        json!({"replication": {"kmsKey": {"arn": missing}}}),
    )
    .await;
    let c = controller(&w, Policy::default()).await;

    wait_for(&w.dbs, "hr", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(
        w.replicas("hr-db").await,
        [("replicating".to_string(), key.clone())]
    );

    let db = wait_for(&w.dbs, "ops", CONVERGE, is("True", ConditionType::Stalled)).await;
    let (_, reason, message) = condition(&db, ConditionType::Stalled).expect("stalled");
    assert_eq!(reason, "KeyNotFound");
    assert!(message.contains(&missing), "{message}");
    assert!(w.replicas("ops-db").await.is_empty());
    assert_eq!(
        c.ctx.calls.calls("CreateKey"),
        0,
        "a given key is never replaced by a created one"
    );
}

#[tokio::test]
async fn a_missing_instance_stalls_with_its_name() {
    let w = world("bdb-missing").await;
    w.apply("ghost", "ghost-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;
    let db = wait_for(&w.dbs, "ghost", CONVERGE, is("True", ConditionType::Stalled)).await;
    let (_, reason, message) = condition(&db, ConditionType::Stalled).expect("stalled");
    assert_eq!(reason, "InstanceNotFound");
    assert!(message.contains("ghost-db not found in us-east-1"), "{message}");
}

#[tokio::test]
async fn restarting_the_controller_mid_way_makes_no_second_key_or_replication() {
    let w = world("bdb-restart").await;
    w.instance("cart-db", 1).await;
    w.apply("cart", "cart-db", json!({})).await;

    // First controller: killed as soon as it has started acting.
    let first = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "cart", CONVERGE, is("True", ConditionType::Reconciling)).await;
    first.kill();

    // Second and third controllers, each with empty caches, finish the job.
    let second = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "cart", CONVERGE, is("True", ConditionType::Ready)).await;
    second.kill();
    let third = controller(&w, Policy::default()).await;
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    wait_for(&w.dbs, "cart", CONVERGE, is("True", ConditionType::Ready)).await;

    assert_eq!(
        w.keys_made_for("cart-db").await.len(),
        1,
        "one key across restarts"
    );
    let replicas = w.replicas("cart-db").await;
    assert_eq!(replicas.len(), 1, "one replication across restarts: {replicas:?}");
    for op in [
        "CreateKey",
        "StartDBInstanceAutomatedBackupsReplication",
        "ModifyDBInstance",
    ] {
        assert_eq!(
            third.ctx.calls.calls(op),
            0,
            "the third controller had nothing to do: {op}"
        );
    }
}

#[tokio::test]
async fn enabling_backups_from_zero_waits_for_the_maintenance_window() {
    let w = world("bdb-window").await;
    w.instance("events-db", 0).await;
    w.apply("events", "events-db", json!({})).await;
    let c = controller(&w, Policy::default()).await;

    let db = wait_for(&w.dbs, "events", CONVERGE, |db| {
        db.status
            .as_ref()
            .and_then(|s| s.instance.as_ref())
            .and_then(|i| i.pending_retention_days)
            == Some(7)
    })
    .await;
    let (status, reason, _) = condition(&db, DatabaseCheck::BackupsEnabled).expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ActionPending"));
    let (reconciling, _, message) = condition(&db, ConditionType::Reconciling).expect("reconciling");
    assert_eq!(reconciling, "True");
    assert!(
        message.contains("replication starts once automated backups are enabled"),
        "{message}"
    );
    assert_eq!(
        w.retention("events-db").await,
        0,
        "nothing applied before the window"
    );
    assert_eq!(c.ctx.calls.calls("StartDBInstanceAutomatedBackupsReplication"), 0);
    tokio::time::sleep(testing::fast_timing().resync).await;
    assert_eq!(
        c.ctx.calls.calls("ModifyDBInstance"),
        1,
        "scheduled once, not again while pending"
    );

    // The maintenance window passes.
    let (code, body) = testing::env().emulator_post(
        "/moto-api/backup-warden/maintenance",
        &json!({"account_id": w.account, "region": SOURCE, "db_instance_identifier": "events-db"}),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(&w.dbs, "events", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("events-db").await, 7);
    assert_eq!(w.replicas("events-db").await.len(), 1);
}

#[tokio::test]
async fn apply_immediately_enables_backups_now() {
    let w = world("bdb-now").await;
    w.instance("metrics-db", 0).await;
    w.apply(
        "metrics",
        "metrics-db",
        json!({"backups": {"applyImmediately": true}}),
    )
    .await;
    let _c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "metrics", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("metrics-db").await, 7);
}

#[tokio::test]
async fn the_replication_quota_stalls_with_its_reason() {
    let w = world("bdb-quota").await;
    let (code, body) = testing::env().emulator_post(
        "/moto-api/backup-warden/quota",
        &json!({"account_id": w.account, "region": DESTINATION, "replications": 1}),
    );
    assert_eq!(code, 200, "{body}");
    w.instance("first-db", 7).await;
    w.instance("second-db", 7).await;
    w.apply("first", "first-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "first", CONVERGE, is("True", ConditionType::Ready)).await;

    w.apply("second", "second-db", json!({})).await;
    let db = wait_for(&w.dbs, "second", CONVERGE, is("True", ConditionType::Stalled)).await;
    let (_, reason, message) = condition(&db, ConditionType::Stalled).expect("stalled");
    assert_eq!(reason, "QuotaExceeded", "{message}");
    assert!(message.contains("Service Quotas"), "{message}");
    assert!(w.replicas("second-db").await.is_empty());
}

#[tokio::test]
async fn each_drifting_check_is_its_own_event_and_the_fix_comes_between() {
    let w = world("bdb-events").await;
    // Retention 1, no replication, no key: three checks drift at once.
    w.instance("events-db", 1).await;
    w.apply("events", "events-db", json!({})).await;
    let _c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "events", CONVERGE, is("True", ConditionType::Ready)).await;

    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(w.dbs.clone().into_client(), &w.namespace);
    // The recorder publishes in order; give the last ones a moment to be listed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let mut events = api.list(&ListParams::default()).await.expect("events").items;
        events.sort_by_key(|e| e.event_time.clone().map(|t| t.0));
        let resolved = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("DriftResolved"));
        if resolved.count() >= 3 || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.action.clone().unwrap_or_default(),
            )
        })
        .collect();
    let checks = ["RetentionCompliant", "ReplicationActive", "ReplicaKeyCompliant"];
    let position = |reason: &str, action: &str| {
        seen.iter()
            .position(|(r, a)| r == reason && a == action)
            .unwrap_or_else(|| panic!("no {reason} event for {action}: {seen:?}"))
    };
    let drifted: Vec<usize> = checks.iter().map(|c| position("DriftDetected", c)).collect();
    let resolved: Vec<usize> = checks.iter().map(|c| position("DriftResolved", c)).collect();
    let actions: Vec<usize> = ["RetentionRaised", "ReplicaKeyCreated", "ReplicationStarted"]
        .iter()
        .map(|a| position(a, a))
        .collect();
    let (last_drift, first_action) = (drifted.iter().max(), actions.iter().min());
    let (last_action, first_resolved) = (actions.iter().max(), resolved.iter().min());
    assert!(last_drift < first_action, "drift found, then the fix: {seen:?}");
    assert!(
        last_action < first_resolved,
        "the fix, then drift resolved: {seen:?}"
    );
    for event in &events {
        let note = event.note.as_deref().unwrap_or_default();
        let action = event.action.as_deref().unwrap_or_default();
        if checks.contains(&action) {
            assert!(note.starts_with(action), "the note names its check: {note}");
        }
    }
}

#[tokio::test]
async fn drift_on_a_stopped_instance_waits_for_it_saying_instance_not_available() {
    let w = world("bdb-stopped").await;
    w.instance("nightly-db", 1).await;
    w.rds_source
        .stop_db_instance()
        .db_instance_identifier("nightly-db")
        .send()
        .await
        .expect("stop");
    w.apply("nightly", "nightly-db", json!({})).await;
    let c = controller(&w, Policy::default()).await;

    let waiting = |db: &BackedUpDatabase| {
        condition(db, ConditionType::Reconciling)
            .is_some_and(|c| c.0 == "True" && c.1 == "InstanceNotAvailable")
    };
    let db = wait_for(&w.dbs, "nightly", CONVERGE, waiting).await;
    let (status, reason, message) = condition(&db, ConditionType::Ready).expect("ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InstanceNotAvailable")
    );
    assert!(message.contains("retention is 1 day"), "{message}");
    let (_, _, waits) = condition(&db, ConditionType::Reconciling).expect("reconciling");
    assert_eq!(waits, "instance is stopped; acting once it is available");
    assert_eq!(c.ctx.calls.calls("ModifyDBInstance"), 0);

    // Started again: fixed as usual.
    w.rds_source
        .start_db_instance()
        .db_instance_identifier("nightly-db")
        .send()
        .await
        .expect("start");
    wait_for(&w.dbs, "nightly", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("nightly-db").await, 7);
}

/// A sweep that finds nothing new writes no status: no relative ages in messages, no
/// latest restorable time (it moves every few minutes) in status.
#[tokio::test]
async fn a_quiet_sweep_writes_no_status() {
    let w = world("bdb-quiet").await;
    w.instance("quiet-db", 1).await;
    w.apply("quiet", "quiet-db", json!({})).await;
    let c = controller(&w, Policy::default()).await;
    wait_for(&w.dbs, "quiet", CONVERGE, is("True", ConditionType::Ready)).await;
    testing::assert_quiet_sweeps_write_nothing(&w.dbs, "quiet", &c.ctx.metrics, "BackedUpDatabase").await;
}

/// A read that finds an instance changed wakes the object of that instance at once, rather
/// than at its next resync: drift is found within one resync of the change, not two.
#[tokio::test]
async fn a_read_that_finds_an_instance_changed_wakes_its_object() {
    let w = world("bdb-wake").await;
    w.instance("first-db", 9).await;
    w.instance("second-db", 9).await;
    w.apply("first", "first-db", json!({"mode": "Audit"})).await;
    w.apply("second", "second-db", json!({"mode": "Audit"})).await;
    // A resync far away: only a wake can explain a second look at `second`.
    let timing = backup_warden::controller::Timing {
        resync: Duration::from_secs(3600),
        ..testing::fast_timing()
    };
    let ctx = testing::env().context(Policy::default(), timing).await;
    let _c = RunningController::start(ctx.clone(), &w.namespace);
    let retention = |db: &BackedUpDatabase| db.status.as_ref()?.instance.as_ref()?.retention_days;
    for name in ["first", "second"] {
        wait_for(&w.dbs, name, CONVERGE, |db| retention(db) == Some(9)).await;
    }

    w.set_retention("second-db", 12).await;
    // A read of the whole region (another object's resync, say) finds second-db changed.
    let scope = backup_warden::aws::Scope::new(Some(&testing::role_arn(&w.account)), SOURCE);
    ctx.inventory
        .instance(&scope, "first-db", Duration::ZERO)
        .await
        .expect("read");
    wait_for(&w.dbs, "second", Duration::from_secs(20), |db| {
        retention(db) == Some(12)
    })
    .await;
}
