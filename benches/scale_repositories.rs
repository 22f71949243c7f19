//! Benchmark (not a test): N BackedUpRepositories (default 50,000) over compliant
//! repositories, the GitHub fake and the in-process S3 model (`backup_warden_testing::model`;
//! the emulator's S3 lists a prefix by scanning the whole bucket, too slow at this size),
//! with the controller running in this process against the local API server. Reports the
//! time until all are Ready, GitHub requests by kind and S3 calls in the first sweep and in
//! a quiet one, status writes in the quiet sweep, and the memory the controller added
//! (peak RSS after setup, less RSS at setup). `BENCH_HEAP_PROFILE=1` adds the heap by
//! holder, as in `scale_databases`.
//!
//! The first sweep reads every repository's workflow and runs through REST: 100,000 reads
//! at 50,000, 20 hours within GitHub's 5,000 an hour. The benchmark lifts the fake's hourly
//! limits (`BENCH_GITHUB_HOURLY`, default 1,000,000, as a GitHub Enterprise Server without
//! rate limiting) and the controller's read pacing, and reports the requests themselves.
//!
//!     make bench-scale-repositories        # BENCH_OBJECTS=5000 make bench-scale-repositories
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use backup_warden::{
    api::{BackedUpRepository, BackedUpRepositorySpec, BackupCoverage, ConditionType},
    aws::{ApiCalls, budget::Rate},
    controller::Timing,
    policy::{
        database::Policy,
        repository::{LifecycleRuleFacts, RepositoryPolicy},
    },
    workflow,
};
use backup_warden_testing::{
    self as testing, RunningRepoController, github_fake::GitHubFake, model::AwsModel, repo_condition,
};
use futures::{StreamExt, stream};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Api, api::PostParams};
use serde_json::json;

#[path = "support/heap_by_holder.rs"]
mod heap_by_holder;
#[path = "support/measure.rs"]
mod measure;

use measure::{
    calls_by_operation, env_number, github_requests, print_calls, print_github_requests, rss_kib,
    status_writes, wait_all_ready,
};

// The system allocator (as the controller's binary), counting the bytes in use; dhat
// records allocations only while a profiler runs.
#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

const PATH: &str = ".github/workflows/backup-daily.yml";
const BUCKET: &str = "company-repository-backups";
const MIB: f64 = 1024.0 * 1024.0;
const HEAP_PROFILE: &str = "target/scale-repositories-heap.json";

#[tokio::main]
async fn main() {
    // With the image's malloc settings, as the controller runs in production.
    measure::with_shipped_malloc();
    let n: usize = env_number("BENCH_OBJECTS", 50_000);
    let resync = Duration::from_secs(env_number("BENCH_RESYNC_SECONDS", 300));
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "scale-repos").await;
    let calls = Arc::new(ApiCalls::default());
    let model = AwsModel::new(calls.clone(), Rate::default(), Duration::from_secs(60));
    // As the company's bucket has: one rule keeping every backup 90 days.
    model.add_bucket(
        BUCKET,
        vec![LifecycleRuleFacts {
            id: "keep-90-days".into(),
            enabled: true,
            prefix: String::new(),
            narrowed: false,
            expiration_days: Some(90),
        }],
    );
    let github = GitHubFake::start().await;
    let hourly = env_number("BENCH_GITHUB_HOURLY", 1_000_000) as u64;
    github.set_hourly_limits(hourly, hourly);
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);

    let setup = Instant::now();
    let ran = Timestamp::now() - SignedDuration::from_hours(1);
    for i in 0..n {
        let name = format!("narrative-io/service-{i:06}");
        let spec: BackedUpRepositorySpec =
            serde_json::from_value(json!({"repository": name, "storage": {"bucket": BUCKET}})).expect("spec");
        github.add_repo(&name, "main");
        github.put_file(&name, "main", PATH, &workflow::render(&spec));
        github.add_run(&name, PATH, Some("success"), &ran.to_string());
        model.put_object(BUCKET, &format!("{name}/backup.tar.gz"), ran);
    }
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let repos = repos.clone();
            async move {
                let object: BackedUpRepository = serde_json::from_value(json!({
                    "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
                    "metadata": {"name": format!("service-{i:06}")},
                    "spec": {"repository": format!("narrative-io/service-{i:06}"), "storage": {"bucket": BUCKET}},
                }))
                .expect("object");
                repos
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create");
            }
        })
        .await;
    eprintln!("setup: {n} repositories in {:.1}s", setup.elapsed().as_secs_f64());

    // The controller's memory is what the process gains from here.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base_kib = rss_kib("VmRSS:");
    measure::reset_heap_peak();
    let (base_heap, _) = measure::heap_bytes();
    let profiler = measure::heap_profiler(HEAP_PROFILE);
    let profiling = profiler.is_some();
    github.reset_requests();
    let timing = Timing {
        resync,
        ..Timing::default()
    };
    let (ctx, writer) = testing::repository_context_on(
        &github.base_url(),
        github.token(),
        model.clone(),
        RepositoryPolicy::default(),
        timing,
        None,
    )
    .await;
    let started = Instant::now();
    let inventory = ctx.clone();
    let metrics = ctx.metrics.clone();
    let _controller = RunningRepoController::start(ctx, writer, &namespace);
    let first_sweep = wait_all_ready(
        &repos,
        n,
        |r| repo_condition(r, ConditionType::Ready).is_some_and(|c| c.0 == "True"),
        started,
        Duration::from_secs(10),
        Duration::from_secs(2 * 3600),
    )
    .await;
    let first_github = github_requests(&github);
    let first_aws = calls_by_operation(&calls);

    // A coverage of the organization: what listing it costs, and what a quiet sweep then holds.
    github.reset_requests();
    let coverages: Api<BackupCoverage> = Api::all(client.clone());
    let coverage_name = format!("scale-{namespace}");
    let coverage: BackupCoverage = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": coverage_name},
        "spec": {"namespace": namespace, "repositories": {"organizations": ["narrative-io"]}},
    }))
    .expect("coverage");
    coverages
        .create(&PostParams::default(), &coverage)
        .await
        .expect("create coverage");
    let databases = testing::env()
        .model_context(model.clone(), calls.clone(), Policy::default(), timing)
        .await;
    let only = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={coverage_name}"));
    let github_client = inventory.github.clone();
    let _coverage = tokio::spawn(backup_warden::controller::coverage::run(
        databases,
        Some(github_client),
        only,
        std::future::pending(),
    ));
    let counted_in = Instant::now();
    let covered = testing::wait_for(&coverages, &coverage_name, Duration::from_secs(1800), |c| {
        c.status
            .as_ref()
            .and_then(|s| s.repositories.as_ref())
            .is_some_and(|r| r.declared == n as i32)
    })
    .await;
    let counted_in = counted_in.elapsed();
    let listing = github_requests(&github);
    let counted = covered.status.and_then(|s| s.repositories).unwrap_or_default();

    // One quiet sweep: a sweep comes once per sweep interval (the resync interval, or longer
    // when paced to the GraphQL budget), so a window of exactly one interval holds one
    // sweep's requests, with nothing changed.
    let interval = inventory.repos.sweep_age(resync);
    github.reset_requests();
    let aws_before = calls_by_operation(&calls);
    let writes_before = status_writes(&client, "backeduprepositories").await;
    let own_before = measure::own_status_writes(&metrics, "BackedUpRepository");
    tokio::time::sleep(interval).await;
    let quiet_github = github_requests(&github);
    let quiet_aws = calls_by_operation(&calls);
    let writes = status_writes(&client, "backeduprepositories").await - writes_before;
    let own_writes = measure::own_status_writes(&metrics, "BackedUpRepository") - own_before;
    let peak_kib = rss_kib("VmHWM:");
    let (_, peak_heap) = measure::heap_bytes();
    drop(profiler);

    println!("## {n} BackedUpRepositories: GitHub fake and the in-process S3 model");
    println!(
        "resync {resync:?}, sweep interval {interval:?} (paced to half of 5,000 GraphQL points an hour)"
    );
    println!(
        "wall time until all Ready (the first sweep): {:.1}s",
        first_sweep.as_secs_f64()
    );
    print_github_requests("GitHub requests, first sweep", &first_github);
    print_calls("S3 calls, first sweep", &first_aws, &BTreeMap::new());
    println!(
        "coverage of the organization: {} discovered, {} declared, {} undeclared, counted {:.1}s after it was created",
        counted.discovered,
        counted.declared,
        counted.undeclared,
        counted_in.as_secs_f64()
    );
    print_github_requests("GitHub requests, listing the organization once", &listing);
    print_github_requests(
        "GitHub requests, one quiet sweep (the coverage's included)",
        &quiet_github,
    );
    let charged: usize = quiet_github
        .values()
        .map(|(all, not_modified)| all - not_modified)
        .sum();
    println!(
        "  charged to the hourly budgets at one sweep every {interval:?}: {:.0} an hour (GitHub allows 5,000 REST and 5,000 GraphQL)",
        charged as f64 * 3600.0 / interval.as_secs_f64()
    );
    print_calls("S3 calls, one quiet sweep", &quiet_aws, &aws_before);
    measure::print_status_writes(writes, own_writes, own_before);
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
    if profiling {
        println!("(RSS includes the heap profiler's own tables in this run)");
        heap_by_holder::print(&heap_by_holder::read(HEAP_PROFILE), n);
    }
}
