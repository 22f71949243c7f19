//! Benchmark (not a test): detection latency with change events at scale. N
//! BackedUpDatabases (default 10,000), already backed up as the policy asks, in the
//! in-process model of RDS and KMS (throttled as AWS is), the controller running in this
//! process with a long resync (default 30 minutes). Then BENCH_EVENTS retentions (default
//! 200) are lowered behind its back, one every BENCH_EVENT_GAP_MS (default 250), each with
//! the event that names it routed as the SQS consumer routes it; reported: the time from
//! each change to its repair (p50, p95, max), the AWS calls of one sweep and so per hour at
//! the long resync, and the calls in BENCH_WINDOW_SECONDS (default 60) between sweeps.
//!
//!     make bench-events                    # BENCH_OBJECTS=2000 make bench-events
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    aws::{ApiCalls, Scope, budget::Rate},
    controller::Timing,
    events::{Target, route::Router},
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, model::AwsModel};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use serde_json::json;

#[path = "support/measure.rs"]
mod measure;

use measure::{calls_by_operation, env_number, print_calls, wait_all_ready};

#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let n: usize = env_number("BENCH_OBJECTS", 10_000);
    let events: usize = env_number("BENCH_EVENTS", 200);
    let gap = Duration::from_millis(env_number("BENCH_EVENT_GAP_MS", 250));
    let window = Duration::from_secs(env_number("BENCH_WINDOW_SECONDS", 60));
    let resync = Duration::from_secs(env_number("BENCH_RESYNC_SECONDS", 1800));
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "events").await;
    let account = testing::unique_account();
    let role = testing::role_arn(&account);
    let (source, destination) = (
        Scope::new(Some(&role), SOURCE),
        Scope::new(Some(&role), DESTINATION),
    );
    let calls = Arc::new(ApiCalls::default());
    let model = AwsModel::new(calls.clone(), Rate::default(), Duration::from_secs(60));
    let ids: Vec<String> = (0..n).map(|i| format!("db-{i:06}")).collect();
    for id in &ids {
        model.add_backed_up_instance(&source, &destination, id, 7);
    }
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    testing::create_databases(
        &dbs,
        &ids,
        |id| json!({"instance": {"identifier": id, "region": SOURCE, "roleArn": role}}),
    )
    .await;

    let timing = Timing {
        resync,
        ..Timing::default()
    };
    let ctx = env
        .model_context(model.clone(), calls.clone(), Policy::default(), timing)
        .await;
    let started = Instant::now();
    let metrics = ctx.metrics.clone();
    let routes = Router {
        databases: Some(ctx.clone()),
        ..Default::default()
    };
    let _controller = RunningController::start(ctx.clone(), &namespace);
    let first = wait_all_ready(
        &dbs,
        n,
        |db| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True"),
        started,
        Duration::from_secs(10),
        Duration::from_secs(3600),
    )
    .await;
    // The first look at a compliant estate is what a quiet sweep costs.
    let sweep = calls_by_operation(&calls);
    // Its settles end; then only resyncs (a resync away) and events remain.
    tokio::time::sleep(Duration::from_secs(35)).await;

    let retention = |id: &str| {
        let mut days = 0;
        model.change_instance(&source, id, |i| days = i.retention_days);
        days
    };
    // The changes whose retention is back, with the time each took, out of `pending`.
    let repaired = |pending: &mut Vec<(String, Instant)>, latencies: &mut Vec<Duration>| {
        pending.retain(|(id, changed)| {
            let back = retention(id) >= 7;
            if back {
                latencies.push(changed.elapsed());
            }
            !back
        });
    };
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let step = (n / events.max(1)).max(1);
    let events_started = Instant::now();
    for k in 0..events {
        let victim = ids[(k * step + step / 2) % n].clone();
        model.change_instance(&source, &victim, |i| i.retention_days = 1);
        let at = Timestamp::now();
        routes.route(
            &[Target::Instance {
                account: Some(account.clone()),
                region: SOURCE.into(),
                identifier: victim.clone(),
            }],
            "aws",
            at,
        );
        pending.push((victim, Instant::now()));
        let next = Instant::now() + gap;
        while Instant::now() < next {
            repaired(&mut pending, &mut latencies);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    while !pending.is_empty() {
        assert!(
            events_started.elapsed() < Duration::from_secs(600),
            "{} changes not repaired",
            pending.len()
        );
        repaired(&mut pending, &mut latencies);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort();
    let after_events = calls_by_operation(&calls);
    tokio::time::sleep(window).await;
    let quiet = calls_by_operation(&calls);
    let quiet_total: u64 =
        quiet.values().map(|c| c.0).sum::<u64>() - after_events.values().map(|c| c.0).sum::<u64>();
    let histogram = metrics.event_detection.with_label_values(&["aws"]);

    println!("## change events: {n} BackedUpDatabases in the in-process AWS model, resync {resync:?}");
    println!(
        "first look at every object (already compliant): {:.1}s",
        first.as_secs_f64()
    );
    println!(
        "{events} retentions lowered, one every {gap:?}, each with its event: repaired after p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.95).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    println!(
        "detection metric (event time to the end of its reconcile): {} observed, mean {:.0} ms",
        histogram.get_sample_count(),
        histogram.get_sample_sum() / histogram.get_sample_count().max(1) as f64 * 1000.0
    );
    let sweep_total: u64 = sweep.values().map(|c| c.0).sum();
    print_calls(
        "AWS calls of one look at every object (a quiet sweep)",
        &sweep,
        &Default::default(),
    );
    println!(
        "a sweep every {resync:?}: {:.0} AWS calls per hour (every 5m, the default without events: {:.0})",
        sweep_total as f64 * 3600.0 / resync.as_secs_f64(),
        sweep_total as f64 * 12.0
    );
    println!("AWS calls in the {window:?} after the events, between sweeps: {quiet_total}");
}
