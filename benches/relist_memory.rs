//! Benchmark (not a test): the heap a relist of the object store costs, with and without
//! sharing the objects whose resourceVersion did not change. While a relist is read, kube's
//! store keeps the objects it had and builds the new list beside them, so without sharing
//! an API server restart (or an expired watch, or a shard handed over) holds every object
//! twice for a moment: the peak RSS of a large estate is set then.
//!
//! No cluster: BENCH_OBJECTS (default 10,000) BackedUpDatabases as the API server lists
//! them (ten conditions and the observed instance and replica each), decoded the way the
//! controller decodes them, in pages of 500, into the same store type.
//!
//!     cargo bench --bench relist_memory            # BENCH_OBJECTS=2000 cargo bench ...
use backup_warden::{
    api::BackedUpDatabase,
    controller::{Decoded, decoded::share_unchanged},
};
use kube::runtime::{reflector, watcher::Event};
use serde_json::{Value, json};

#[path = "support/measure.rs"]
mod measure;

use measure::{env_number, heap_bytes, reset_heap_peak};

// The system allocator, counting the bytes in use.
#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

/// Objects per list page, as kube's watcher asks for.
const PAGE: usize = 500;

fn object(i: usize) -> Value {
    let condition = |type_: &str, message: String| {
        json!({"type": type_, "status": "True", "observedGeneration": 1,
               "lastTransitionTime": "2026-12-01T07:00:00Z", "reason": "Compliant", "message": message})
    };
    let id = format!("db-{i:05}");
    let arn = format!("arn:aws:rds:us-east-1:123456789012:db:{id}");
    let key = format!(
        "arn:aws:kms:us-west-2:123456789012:key/{:08x}-0000-4000-8000-{i:012}",
        i
    );
    let checks = [
        ("BackupsEnabled", "automated backups are enabled".to_string()),
        ("RetentionCompliant", "retention is 7 days (policy 7 days)".into()),
        (
            "BackupsFresh",
            "restorable within 1h; newest snapshot within 26h".into(),
        ),
        ("ReplicationActive", "replicating to us-west-2".into()),
        ("ReplicaKeyCompliant", format!("dedicated key {key}")),
        (
            "ReplicaRetentionCompliant",
            "replica retention is 7 days (policy 7 days)".into(),
        ),
        ("ReplicaFresh", "replica restorable within 2h".into()),
    ];
    let mut conditions: Vec<Value> = checks.iter().map(|(t, m)| condition(t, m.clone())).collect();
    conditions.push(condition("Ready", "all 7 checks pass".into()));
    conditions.push(
        json!({"type": "Reconciling", "status": "False", "observedGeneration": 1,
        "lastTransitionTime": "2026-12-01T07:00:00Z", "reason": "Idle", "message": ""}),
    );
    conditions.push(
        json!({"type": "Stalled", "status": "False", "observedGeneration": 1,
        "lastTransitionTime": "2026-12-01T07:00:00Z", "reason": "NotStalled", "message": ""}),
    );
    json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {
            "name": id, "namespace": "data-platform", "uid": format!("8a1c2f3e-0000-4000-8000-{i:012}"),
            "resourceVersion": format!("{}", 100_000 + i), "generation": 1,
            "creationTimestamp": "2026-11-30T07:00:00Z",
        },
        "spec": {"mode": "Enforce", "instance": {"identifier": id, "region": "us-east-1"},
                 "backups": {"retentionDays": 7, "applyImmediately": false},
                 "replication": {"destinationRegion": "us-west-2", "retentionDays": 7,
                                 "kmsKey": {"create": true}, "allowReplicationRestart": false},
                 "freshness": {"maxRestoreLag": "1h", "maxSnapshotAge": "26h", "maxReplicaLag": "2h"}},
        "status": {"observedGeneration": 1, "conditions": conditions,
                   "instance": {"arn": arn, "status": "available", "retentionDays": 7,
                                "latestSnapshotTime": "2026-12-01T05:00:00Z"},
                   "replica": {"arn": format!("arn:aws:rds:us-west-2:123456789012:auto-backup:ab-{i:026}"),
                               "region": "us-west-2", "status": "replicating", "retentionDays": 7,
                               "kmsKeyArn": key}},
    })
}

/// One page as the API server sends it: the bytes of a list.
fn page(objects: &[Value]) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabaseList",
                               "metadata": {}, "items": objects}),
    )
    .expect("json")
}

fn decode(body: &[u8]) -> Vec<Decoded<BackedUpDatabase>> {
    serde_json::from_slice::<kube::core::ObjectList<Decoded<BackedUpDatabase>>>(body)
        .expect("list")
        .items
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let n: usize = env_number("BENCH_OBJECTS", 10_000);
    let pages: Vec<Vec<u8>> = (0..n)
        .map(object)
        .collect::<Vec<_>>()
        .chunks(PAGE)
        .map(page)
        .collect();
    println!("## relist of {n} BackedUpDatabases (pages of {PAGE})");
    for share in [false, true] {
        let (store, mut writer) = reflector::store::<Decoded<BackedUpDatabase>>();
        let before = heap_bytes().0;
        for body in &pages {
            for object in decode(body) {
                writer.apply_watcher_event(&Event::Apply(object));
            }
        }
        let held = heap_bytes().0 - before;
        reset_heap_peak();
        writer.apply_watcher_event(&Event::Init);
        for body in &pages {
            for object in decode(body) {
                let event = Event::InitApply(object);
                let event = if share {
                    share_unchanged(&store, event)
                } else {
                    event
                };
                writer.apply_watcher_event(&event);
            }
        }
        writer.apply_watcher_event(&Event::InitDone);
        let (after, peak) = heap_bytes();
        assert_eq!(store.len(), n);
        println!(
            "{}: store {:.1} MiB ({:.2} KiB per object); relist peak +{:.1} MiB over it, {:.1} MiB after",
            if share {
                "sharing unchanged objects"
            } else {
                "without sharing"
            },
            held as f64 / MIB,
            held as f64 / 1024.0 / n as f64,
            (peak - before - held) as f64 / MIB,
            (after - before) as f64 / MIB,
        );
        drop((store, writer));
    }
}
