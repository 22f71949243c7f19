//! Benchmark (not a test): the evidence log's cost and the report's at scale, against the
//! emulator's S3. BENCH_OBJECTS objects (default 500) over BENCH_DAYS days (default 30),
//! each with its daily attestation (the object as the controller writes it) and, on every
//! tenth object-day, a drift, an action and its resolution. Reported: records and bytes per
//! day, S3 PUTs per upload of a day's records, the time to upload them, then the report of
//! the whole period: GETs, the time to read and build it, the HTML's size and the heap peak.
//!
//!     make bench-evidence                  # BENCH_OBJECTS=2000 BENCH_DAYS=7 make bench-evidence
use std::{sync::Arc, time::Instant};

use backup_warden::{
    aws::{ApiCalls, Scope},
    evidence::{self, Body, EvidenceLog, ObjectRef, read, upload},
    report::metrics::Metrics,
};
use backup_warden_testing as testing;
use k8s_openapi::jiff::{Timestamp, ToSpan, civil::Date};
use serde_json::json;

#[path = "support/measure.rs"]
mod measure;

use measure::{calls_by_operation, env_number, print_calls};

#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

const PREFIX: &str = "evidence/";

/// An object's attestation as the pipeline writes it: every condition and its spec and status.
fn attestation(n: usize) -> Body {
    let name = format!("db-{n:05}");
    let object = json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": name, "namespace": format!("team-{}", n % 20), "uid": format!("uid-{n}"), "generation": 1,
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"mode": "Enforce", "instance": {"identifier": name, "region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/backup-warden"},
                 "replication": {"kmsKey": {"create": true}}},
        "status": {"observedGeneration": 1,
                   "instance": {"arn": format!("arn:aws:rds:us-east-1:123456789012:db:{name}"), "status": "available", "retentionDays": 7},
                   "replica": {"region": "us-west-2", "status": "replicating", "retentionDays": 7}},
    });
    let checks = [
        "Ready",
        "Reconciling",
        "Stalled",
        "BackupsEnabled",
        "RetentionCompliant",
        "ReplicationActive",
        "ReplicaKeyCompliant",
        "ReplicaRetentionCompliant",
        "SnapshotFresh",
        "ReplicaFresh",
    ];
    let pass = |t: &str| !matches!(t, "Reconciling" | "Stalled");
    Body::Attestation {
        mode: "Enforce".into(),
        suspended: false,
        checks: checks
            .iter()
            .map(|t| evidence::CheckState {
                type_: t.to_string(),
                status: if pass(t) { "True" } else { "False" }.into(),
                reason: "Compliant".into(),
                message: "retention is 7 days (policy 7 days)".into(),
            })
            .collect(),
        state: object,
    }
}

fn who(n: usize) -> ObjectRef {
    ObjectRef {
        kind: "BackedUpDatabase".into(),
        namespace: format!("team-{}", n % 20),
        name: format!("db-{n:05}"),
        uid: Some(format!("uid-{n}")),
        generation: Some(1),
    }
}

#[tokio::main]
async fn main() {
    let objects: usize = env_number("BENCH_OBJECTS", 500);
    let days: i64 = env_number("BENCH_DAYS", 30);
    let env = testing::env();
    let calls = Arc::new(ApiCalls::default());
    let aws = backup_warden::aws::AwsClients::new(
        env.aws_config("us-east-1").await,
        backup_warden::aws::AwsSettings {
            endpoint_url: Some(env.aws_endpoint.clone()),
            concurrency: 16,
            timeouts: Default::default(),
            rds_rate: Default::default(),
            kms_write_rate: backup_warden::aws::budget::Rate::KMS_WRITES,
        },
        calls.clone(),
    );
    let s3 = aws.for_scope(&Scope::new(None, "us-east-1")).await.s3;
    let bucket = testing::unique_name("bench-evidence").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let to = upload::Destination {
        s3: s3.clone(),
        bucket: bucket.clone(),
        prefix: PREFIX.into(),
    };
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let log = EvidenceLog::open(
        &evidence::Settings {
            spool_dir: None,
            spool_max_bytes: 1 << 30,
        },
        evidence::Controller {
            version: env!("CARGO_PKG_VERSION").into(),
            replica: "bench-0".into(),
        },
        metrics.clone(),
    )
    .expect("log");

    let first: Date = evidence::day(Timestamp::now())
        .checked_sub((days - 1).days())
        .expect("first day");
    println!("{objects} objects over {days} days, into the emulator's S3");
    let (mut upload_time, mut records_per_day, mut bytes) = (0.0, 0, 0usize);
    let before = calls_by_operation(&calls);
    for d in 0..days {
        let day = first.checked_add(d.days()).expect("day");
        let midnight = day
            .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
            .expect("zoned")
            .timestamp();
        let mut count = 0;
        for n in 0..objects {
            let at = |s: i64| midnight.checked_add((60 + s + n as i64).seconds()).expect("time");
            let body = attestation(n);
            bytes += serde_json::to_string(&body).map(|s| s.len()).unwrap_or_default();
            log.record_at(at(0), Some(who(n)), body);
            count += 1;
            if (n + d as usize).is_multiple_of(10) {
                let drift = Body::Drift {
                    check: "RetentionCompliant".into(),
                    reason: "DriftDetected".into(),
                    message: "retention is 1 day (policy 7 days)".into(),
                };
                let action = Body::Action {
                    action: "RetentionRaised".into(),
                    description: "raised backup retention from 1 day to 7 days".into(),
                    failed: false,
                    request_ids: vec!["ModifyDBInstance 5e1c0b7a-4f5e-4f8e-9d3c-2f0c1a6b7e21".into()],
                };
                let resolved = Body::Resolved {
                    check: "RetentionCompliant".into(),
                    message: "retention is 7 days (policy 7 days)".into(),
                };
                log.record_at(at(3600), Some(who(n)), drift);
                log.record_at(at(3601), Some(who(n)), action);
                log.record_at(at(3602), Some(who(n)), resolved);
                count += 3;
            }
        }
        records_per_day = count;
        let started = Instant::now();
        upload::flush(&log, &to, None).await.expect("upload");
        upload_time += started.elapsed().as_secs_f64();
    }
    let uploaded = calls_by_operation(&calls);
    let puts = uploaded.get("S3.PutObject").map(|c| c.0).unwrap_or_default()
        - before.get("S3.PutObject").map(|c| c.0).unwrap_or_default();
    println!(
        "records per day: {records_per_day} ({objects} attestations); attestation size {} bytes",
        bytes / (objects * days as usize)
    );
    println!(
        "S3 PUTs per day: {}; upload of a day's records: {:.2} s (emulator)",
        puts / days as u64,
        upload_time / days as f64
    );

    measure::reset_heap_peak();
    let started = Instant::now();
    let last = first.checked_add((days - 1).days()).expect("last");
    // As `report` does: one day at a time into the builder.
    let mut builder = backup_warden::auditor::build::Builder::new(first, last, Timestamp::now());
    let read = read::each_day(
        &s3,
        &bucket,
        PREFIX,
        (first, last),
        usize::from(read::CONCURRENCY),
        |day| {
            for record in day {
                builder.add(record);
            }
        },
    )
    .await
    .expect("read");
    let read_time = started.elapsed();
    let built = Instant::now();
    let source = backup_warden::auditor::build::Source {
        location: format!("s3://{bucket}/{PREFIX}"),
        object_lock: None,
        objects: read.objects,
        objects_locked: read.objects_locked,
        live_state: "not read".into(),
    };
    let report = builder.finish(source);
    let html = backup_warden::auditor::html::render(&report);
    let build_time = built.elapsed();
    let (_, peak) = measure::heap_bytes();
    print_calls("report: AWS calls", &calls_by_operation(&calls), &uploaded);
    println!(
        "report of {days} days: {} records from {} objects read and folded in {:.1} s ({:.0} objects/s), finished and rendered in {:.2} s; HTML {} KiB; heap peak {} MiB",
        report.records,
        read.objects,
        read_time.as_secs_f64(),
        read.objects as f64 / read_time.as_secs_f64(),
        build_time.as_secs_f64(),
        html.len() / 1024,
        peak / (1 << 20)
    );
    assert_eq!(
        report.records,
        records_per_day * days as usize,
        "every record read back"
    );
    assert_eq!(report.resources.len(), objects);
}
