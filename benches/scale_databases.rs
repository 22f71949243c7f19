//! Benchmark (not a test): N BackedUpDatabases (default 10,000) converge against the
//! in-process model of RDS and KMS (`backup_warden_testing::model`, throttled as AWS is per
//! account and region), with the controller running in this process against the local API
//! server. Reports the time to converge at the default RDS budget, AWS calls by operation
//! (converging, and in one quiet sweep), status writes in that sweep (the API server's own
//! request counter), the detection latency of a retention lowered by hand, and the memory
//! the controller added to the process (peak RSS after setup, less RSS at setup).
//!
//! With `BENCH_HEAP_PROFILE=1` it also profiles the heap (DHAT) from setup on and reports the
//! bytes by holder (object store, inventories, metrics, ...) at the heap's peak and at the
//! end; the profiler slows the run and adds its own tables to RSS, so RSS is read from a run
//! without it.
//!
//!     make bench-scale                     # BENCH_OBJECTS=2000 make bench-scale
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use backup_warden::{
    api::{BackedUpDatabase, BackupCoverage, ConditionType},
    aws::{ApiCalls, Scope, budget::Rate},
    controller::Timing,
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, model::AwsModel};
use kube::Api;
use serde_json::json;

#[path = "support/heap_by_holder.rs"]
mod heap_by_holder;
#[path = "support/measure.rs"]
mod measure;

use measure::{calls_by_operation, env_number, print_calls, rss_kib, status_writes, wait_all_ready};

// The system allocator (as the controller's binary), counting the bytes in use; dhat
// records allocations only while a profiler runs.
#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

const REGION: &str = "us-east-1";
const MIB: f64 = 1024.0 * 1024.0;
const HEAP_PROFILE: &str = "target/scale-heap.json";

#[tokio::main]
async fn main() {
    // With the image's malloc settings, as the controller runs in production.
    measure::with_shipped_malloc();
    let n: usize = env_number("BENCH_OBJECTS", 10_000);
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "scale").await;
    let account = testing::unique_account();
    let scope = Scope::new(Some(&testing::role_arn(&account)), REGION);
    let calls = Arc::new(ApiCalls::default());
    let model = AwsModel::new(calls.clone(), Rate::default(), Duration::from_secs(60));

    let setup = Instant::now();
    let ids: Vec<String> = (0..n).map(|i| format!("db-{i:06}")).collect();
    for id in &ids {
        model.add_instance(&scope, id, 1);
    }
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let role = testing::role_arn(&account);
    testing::create_databases(
        &dbs,
        &ids,
        |id| json!({"instance": {"identifier": id, "region": REGION, "roleArn": role}}),
    )
    .await;
    eprintln!(
        "setup: {n} instances and objects in {:.1}s",
        setup.elapsed().as_secs_f64()
    );

    // The controller's memory is what the process gains from here.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base_kib = rss_kib("VmRSS:");
    measure::reset_heap_peak();
    let (base_heap, _) = measure::heap_bytes();
    let profiler = measure::heap_profiler(HEAP_PROFILE);
    let profiling = profiler.is_some();
    let resync = Duration::from_secs(env_number("BENCH_RESYNC_SECONDS", 300));
    let timing = Timing {
        resync,
        ..Timing::default()
    };
    let ctx = env
        .model_context(model.clone(), calls.clone(), Policy::default(), timing)
        .await;
    let started = Instant::now();
    let metrics = ctx.metrics.clone();
    let _controller = RunningController::start(ctx.clone(), &namespace);
    let converged = wait_all_ready(
        &dbs,
        n,
        |db| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True"),
        started,
        Duration::from_secs(10),
        Duration::from_secs(4 * 3600),
    )
    .await;
    let converging = calls_by_operation(&calls);

    // A coverage of the account and region: what scanning everything adds to a quiet sweep.
    let coverages: Api<BackupCoverage> = Api::all(client.clone());
    let coverage_name = format!("scale-{namespace}");
    let coverage: BackupCoverage = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": coverage_name},
        "spec": {"namespace": namespace, "databases": {"accounts": [{"roleArn": role, "regions": [REGION]}]}},
    }))
    .expect("coverage");
    coverages
        .create(&Default::default(), &coverage)
        .await
        .expect("create coverage");
    let only = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={coverage_name}"));
    let _coverage = tokio::spawn(backup_warden::controller::coverage::run(
        ctx,
        None,
        only,
        std::future::pending(),
    ));
    let covered = testing::wait_for(&coverages, &coverage_name, Duration::from_secs(600), |c| {
        c.status
            .as_ref()
            .and_then(|s| s.databases.as_ref())
            .is_some_and(|d| d.declared == n as i32)
    })
    .await;
    let counted = covered.status.and_then(|s| s.databases).unwrap_or_default();
    let before_coverage = calls_by_operation(&calls);
    let lists_before = measure::api_lists(&client, "backedupdatabases").await;

    // One quiet sweep: in a window of one resync interval every object is looked at once
    // (each resync is one interval after the last), with nothing to change.
    let writes_before = status_writes(&client, "backedupdatabases").await;
    let own_before = measure::own_status_writes(&metrics, "BackedUpDatabase");
    tokio::time::sleep(resync).await;
    let quiet = calls_by_operation(&calls);
    let lists = measure::api_lists(&client, "backedupdatabases").await - lists_before;
    let writes = status_writes(&client, "backedupdatabases").await - writes_before;
    let own_writes = measure::own_status_writes(&metrics, "BackedUpDatabase") - own_before;

    // A retention lowered by hand: how long until the controller has it raised again.
    let victim = &ids[n / 2];
    model.change_instance(&scope, victim, |i| i.retention_days = 1);
    let changed = Instant::now();
    let detected = loop {
        if model_retention(&model, &scope, victim) >= 7 {
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < 3 * resync,
            "the lowered retention was not found"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let peak_kib = rss_kib("VmHWM:");
    let (_, peak_heap) = measure::heap_bytes();
    drop(profiler);
    // The model's own heap at the end (it only grows): what forgetting everything frees.
    let (held, _) = measure::heap_bytes();
    model.forget_everything();
    let model_heap = held.saturating_sub(measure::heap_bytes().0);

    println!("## converge {n} BackedUpDatabases against the in-process AWS model");
    println!(
        "resync {resync:?}, settle 30s, RDS budget 12/s burst 300 (the defaults); KMS CreateKey and CreateAlias 5/s"
    );
    println!("wall time to converge: {:.1}s", converged.as_secs_f64());
    print_calls("AWS calls while converging", &converging, &BTreeMap::new());
    print_calls("AWS calls in one quiet sweep", &quiet, &before_coverage);
    println!(
        "coverage of the account and region: {} discovered, {} declared, {} undeclared; in the quiet sweep it listed the objects in {lists} pages (LIST backedupdatabases, every client)",
        counted.discovered, counted.declared, counted.undeclared
    );
    measure::print_status_writes(writes, own_writes, own_before);
    println!(
        "retention lowered by hand, raised again after: {:.1}s",
        detected.as_secs_f64()
    );
    let added = peak_kib.saturating_sub(base_kib);
    println!(
        "controller memory: peak RSS {:.1} MiB over {:.1} MiB at setup: {:.1} MiB added, {:.1} KiB per object",
        peak_kib as f64 / 1024.0,
        base_kib as f64 / 1024.0,
        added as f64 / 1024.0,
        added as f64 / n as f64
    );
    println!(
        "heap in use (what the allocator was asked for): peak {:.1} MiB over {:.1} MiB at setup, {:.1} KiB per object",
        peak_heap as f64 / MIB,
        base_heap as f64 / MIB,
        peak_heap.saturating_sub(base_heap) as f64 / 1024.0 / n as f64
    );
    println!(
        "the model's heap at the end (in both figures, not the controller's): {:.1} MiB",
        model_heap as f64 / MIB
    );
    if profiling {
        println!("(RSS includes the heap profiler's own tables in this run)");
        heap_by_holder::print(&heap_by_holder::read(HEAP_PROFILE), n);
    }
}

fn model_retention(model: &AwsModel, scope: &Scope, id: &str) -> i32 {
    let mut retention = 0;
    model.change_instance(scope, id, |i| retention = i.retention_days);
    retention
}
