//! What an operator does to one object: pause it (`spec.suspend`) and ask for a reconcile
//! now (backup-warden's annotation or Flux's), with the real API server and the emulator.

use std::time::Duration;

use crate::support::{CONVERGE, World, is, world};
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    controller::Timing,
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use kube::api::{Patch, PatchParams};
use serde_json::json;

async fn controller(w: &World, timing: Timing) -> RunningController {
    RunningController::start(
        testing::env().context(Policy::default(), timing).await,
        &w.namespace,
    )
}

async fn merge(w: &World, name: &str, patch: serde_json::Value) {
    w.dbs
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

fn observed_retention(db: &BackedUpDatabase) -> Option<i32> {
    db.status.as_ref()?.instance.as_ref()?.retention_days
}

fn handled(db: &BackedUpDatabase) -> Option<&str> {
    db.status.as_ref()?.last_handled_reconcile_at.as_deref()
}

#[tokio::test]
async fn a_suspended_object_is_neither_read_nor_changed_until_resumed() {
    let w = world("bdb-suspend").await;
    testing::create_instance(&w.rds_source, "paused-db", 1).await;
    w.apply("paused", "paused-db", json!({"suspend": true})).await;
    let c = controller(&w, testing::fast_timing()).await;

    let db = wait_for(&w.dbs, "paused", CONVERGE, |db| {
        condition(db, ConditionType::Reconciling).is_some_and(|c| c.1 == "Suspended")
            && db.status.as_ref().and_then(|s| s.observed_generation) == db.metadata.generation
    })
    .await;
    assert_eq!(
        condition(&db, ConditionType::Ready).map(|c| (c.0, c.1)),
        Some(("Unknown".into(), "Suspended".into()))
    );
    // Several resyncs later: nothing read, nothing written.
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    assert_eq!(c.ctx.calls.snapshot().len(), 0, "{:?}", c.ctx.calls.snapshot());
    assert_eq!(w.retention("paused-db").await, 1);

    // Resumed: enforced as usual.
    merge(&w, "paused", json!({"spec": {"suspend": false}})).await;
    wait_for(&w.dbs, "paused", CONVERGE, is("True", ConditionType::Ready)).await;
    assert_eq!(w.retention("paused-db").await, 7);

    // Suspended again: the last look is kept and the pause is said.
    merge(&w, "paused", json!({"spec": {"suspend": true}})).await;
    let db = wait_for(&w.dbs, "paused", CONVERGE, |db| {
        condition(db, ConditionType::Reconciling).is_some_and(|c| c.1 == "Suspended")
            && db.status.as_ref().and_then(|s| s.observed_generation) == db.metadata.generation
    })
    .await;
    assert_eq!(
        condition(&db, ConditionType::Ready).map(|c| c.0).as_deref(),
        Some("True")
    );
    let calls = c.ctx.calls.snapshot();
    w.set_retention("paused-db", 2).await;
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    assert_eq!(w.retention("paused-db").await, 2, "not healed while suspended");
    assert_eq!(c.ctx.calls.snapshot(), calls, "nothing read while suspended");
}

#[tokio::test]
async fn a_reconcile_request_reads_afresh_at_once_and_is_echoed() {
    let w = world("bdb-request").await;
    testing::create_instance(&w.rds_source, "asked-db", 9).await;
    w.apply("asked", "asked-db", json!({"mode": "Audit"})).await;
    // A resync far away: only the request can make the controller look again.
    let timing = Timing {
        resync: Duration::from_secs(3600),
        ..testing::fast_timing()
    };
    let _c = controller(&w, timing).await;
    wait_for(&w.dbs, "asked", CONVERGE, |db| observed_retention(db) == Some(9)).await;

    // A fix by hand, then Flux's habit: the controller looks at once, with nothing cached.
    w.set_retention("asked-db", 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = w.dbs.get("asked").await.expect("get");
    assert_eq!(observed_retention(&db), Some(9), "no look without a request");
    merge(
        &w,
        "asked",
        json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-30T17:00:00Z"}}}),
    )
    .await;
    let db = wait_for(&w.dbs, "asked", Duration::from_secs(20), |db| {
        observed_retention(db) == Some(10)
    })
    .await;
    assert_eq!(handled(&db), Some("2026-11-30T17:00:00Z"));

    // backup-warden's own annotation wins over Flux's.
    w.set_retention("asked-db", 12).await;
    merge(
        &w,
        "asked",
        json!({"metadata": {"annotations": {"backupwarden.io/reconcile-requested-at": "second"}}}),
    )
    .await;
    let db = wait_for(&w.dbs, "asked", Duration::from_secs(20), |db| {
        observed_retention(db) == Some(12)
    })
    .await;
    assert_eq!(handled(&db), Some("second"));
}
