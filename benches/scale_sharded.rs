//! Benchmark (not a test): N BackedUpDatabases (default 100,000) split by shards over R
//! controller processes (default 4, with 3 shards each) against one API server. Each
//! process is this benchmark run again as one replica: the controller with its shard
//! Leases, and its own in-process AWS model (`backup_warden_testing::model`) holding every
//! instance already backed up as the policy asks, spread over BENCH_ACCOUNTS accounts
//! (default 100). What it measures is holding and sweeping a share of a large estate
//! (`scale_databases` measures converging one):
//! - per replica, the objects held and the memory added over its setup (peak RSS less RSS
//!   once its model is built), per object held;
//! - after one replica is killed, how long until every one of its shards is held by
//!   another (the leases last 15 s), and the survivors' memory once they took them over.
//!
//! With BENCH_REPLICAS=1 it measures one replica holding all N (no takeover).
//!
//!     make bench-scale-sharded             # BENCH_OBJECTS=20000 BENCH_REPLICAS=2 make bench-scale-sharded
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    aws::{ApiCalls, Scope, budget::Rate},
    controller::{
        Timing,
        leader::LeaseSettings,
        shard_leases::ShardLeases,
        shards::{self, Ownership, shard_of},
    },
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, model::AwsModel};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

#[path = "support/measure.rs"]
mod measure;

use measure::{env_number, rss_kib, wait_all_ready};

// The system allocator, counting the bytes in use.
#[global_allocator]
static ALLOC: measure::CountingAlloc = measure::CountingAlloc;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// What the coordinator and the replicas agree on, from the environment.
struct Plan {
    objects: usize,
    replicas: usize,
    shards: u32,
    accounts: usize,
    resync: Duration,
}

impl Plan {
    fn from_env() -> Self {
        let replicas = env_number("BENCH_REPLICAS", 4).max(1);
        Self {
            objects: env_number("BENCH_OBJECTS", 100_000),
            replicas,
            shards: env_number("BENCH_SHARDS", 3 * replicas) as u32,
            accounts: env_number("BENCH_ACCOUNTS", 100).max(1),
            resync: Duration::from_secs(env_number("BENCH_RESYNC_SECONDS", 300)),
        }
    }

    fn id(i: usize) -> String {
        format!("db-{i:06}")
    }

    fn account(&self, i: usize) -> String {
        format!("{:012}", 300_000_000_000 + i % self.accounts)
    }
}

fn identity(replica: usize) -> String {
    format!("bench-replica-{replica}")
}

#[tokio::main]
async fn main() {
    // With the image's malloc settings, as the controller runs in production.
    measure::with_shipped_malloc();
    let plan = Plan::from_env();
    match std::env::var("BENCH_REPLICA") {
        Ok(replica) => run_replica(&plan, replica.parse().expect("BENCH_REPLICA")).await,
        Err(_) => coordinate(&plan).await,
    }
}

/// One replica: its model of every instance, then the controller on the shards it holds.
async fn run_replica(plan: &Plan, replica: usize) {
    let namespace = std::env::var("BENCH_NAMESPACE").expect("BENCH_NAMESPACE");
    // BENCH_LOG=info (tracing's filter syntax) shows the replicas' logs on standard error.
    if let Ok(log) = std::env::var("BENCH_LOG") {
        backup_warden::telemetry::init(&backup_warden::telemetry::LogArgs {
            log_format: backup_warden::telemetry::LogFormat::Text,
            log,
        });
    }
    let env = testing::env();
    let calls = Arc::new(ApiCalls::default());
    let model = AwsModel::new(calls.clone(), Rate::default(), Duration::from_secs(60));
    for i in 0..plan.objects {
        let role = testing::role_arn(&plan.account(i));
        model.add_backed_up_instance(
            &Scope::new(Some(&role), SOURCE),
            &Scope::new(Some(&role), DESTINATION),
            &Plan::id(i),
            7,
        );
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    println!("baseline_kib {}", rss_kib("VmRSS:"));
    // All replicas start together, once every model is built.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("the coordinator's go");
    let timing = Timing {
        resync: plan.resync,
        ..Timing::default()
    };
    let budgets = model.client_budgets().clone();
    let mut ctx = env.model_context(model, calls, Policy::default(), timing).await;
    let owned = Ownership::new(plan.shards);
    // As the controller does: the replica draws its shards' share of each AWS budget.
    shards::on_share(&owned, move |share| {
        budgets.set_share(share);
        std::future::ready(())
    });
    Arc::get_mut(&mut ctx).expect("a new context").shards = owned.clone();
    let _leases = ShardLeases::start(
        ctx.client.clone(),
        LeaseSettings::new(&namespace, &identity(replica)),
        owned,
    );
    let _controller = RunningController::start(ctx, &namespace);
    std::future::pending::<()>().await;
}

struct Replica {
    child: Child,
    baseline_kib: u64,
}

impl Replica {
    /// Starts the process; it builds its model and waits for `go`.
    fn spawn(plan: &Plan, index: usize, namespace: &str) -> Child {
        Command::new(std::env::current_exe().expect("this benchmark"))
            .arg("--bench")
            .env("BENCH_REPLICA", index.to_string())
            .env("BENCH_NAMESPACE", namespace)
            .env("BENCH_OBJECTS", plan.objects.to_string())
            .env("BENCH_REPLICAS", plan.replicas.to_string())
            .env("BENCH_SHARDS", plan.shards.to_string())
            .env("BENCH_ACCOUNTS", plan.accounts.to_string())
            .env("BENCH_RESYNC_SECONDS", plan.resync.as_secs().to_string())
            .stdin(Stdio::piped())
            // Logs to standard error, the baseline alone on standard output.
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a replica")
    }

    /// Waits for the replica's model and baseline; the rest of its output is passed on.
    fn ready(mut child: Child) -> Self {
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the replica's baseline");
        let baseline_kib = line
            .trim()
            .strip_prefix("baseline_kib ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a replica said {line:?}"));
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::stderr()));
        Self { child, baseline_kib }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        stdin.flush().expect("go");
    }

    /// Peak RSS added over the baseline, in KiB.
    fn added_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        peak.saturating_sub(self.baseline_kib)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shard → the identity holding its Lease.
async fn holders(leases: &Api<Lease>, shards: u32) -> BTreeMap<u32, String> {
    let mut found = BTreeMap::new();
    for s in 0..shards {
        let holder = leases
            .get_opt(&format!("backup-warden-shard-{s}"))
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty());
        if let Some(holder) = holder {
            found.insert(s, holder);
        }
    }
    found
}

/// Objects held by each identity, from the shard holders.
fn held(namespace: &str, plan: &Plan, holders: &BTreeMap<u32, String>) -> BTreeMap<String, usize> {
    let mut by_holder = BTreeMap::new();
    for i in 0..plan.objects {
        if let Some(h) = holders.get(&shard_of(namespace, &Plan::id(i), plan.shards)) {
            *by_holder.entry(h.clone()).or_default() += 1;
        }
    }
    by_holder
}

fn print_replicas(
    title: &str,
    namespace: &str,
    plan: &Plan,
    replicas: &[Replica],
    holders: &BTreeMap<u32, String>,
) {
    let objects = held(namespace, plan, holders);
    println!("{title}:");
    println!("  replica  shards  objects  added MiB  KiB per object");
    for (i, r) in replicas.iter().enumerate() {
        let name = identity(i);
        let shards = holders.values().filter(|h| **h == name).count();
        let count = objects.get(&name).copied().unwrap_or(0);
        let added = r.added_kib();
        println!(
            "  {i:>7}  {shards:>6}  {count:>7}  {:>9.1}  {:>14.1}",
            added as f64 / 1024.0,
            added as f64 / count.max(1) as f64
        );
    }
}

async fn coordinate(plan: &Plan) {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "scale-shards").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);

    let setup = Instant::now();
    let ids: Vec<String> = (0..plan.objects).map(Plan::id).collect();
    testing::create_databases(&dbs, &ids, |id| {
        let i: usize = id.trim_start_matches("db-").parse().expect("index");
        json!({"instance": {"identifier": id, "region": SOURCE, "roleArn": testing::role_arn(&plan.account(i))}})
    })
    .await;
    eprintln!(
        "setup: {} objects in {:.1}s",
        plan.objects,
        setup.elapsed().as_secs_f64()
    );

    let children: Vec<Child> = (0..plan.replicas)
        .map(|i| Replica::spawn(plan, i, &namespace))
        .collect();
    let mut replicas: Vec<Replica> = children.into_iter().map(Replica::ready).collect();
    for r in &mut replicas {
        r.go();
    }
    eprintln!(
        "{} replicas started, models built, {:.1}s",
        plan.replicas,
        setup.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let all_ready = wait_all_ready(
        &dbs,
        plan.objects,
        |db| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True"),
        started,
        Duration::from_secs(15),
        Duration::from_secs(3 * 3600),
    )
    .await;
    // One quiet resync: every object held is looked at again.
    tokio::time::sleep(plan.resync + Duration::from_secs(30)).await;
    let before = holders(&leases, plan.shards).await;

    println!(
        "## {} BackedUpDatabases over {} replicas, {} shards, {} accounts (in-process AWS model)",
        plan.objects, plan.replicas, plan.shards, plan.accounts
    );
    println!("resync {:?}; the lease lasts 15 s", plan.resync);
    println!(
        "wall time until all Ready (each replica's first sweep): {:.1}s",
        all_ready.as_secs_f64()
    );
    print_replicas("after one quiet resync", &namespace, plan, &replicas, &before);
    if plan.replicas < 2 {
        // One replica: its memory per object at N is the figure; there is no one to take over.
        return;
    }

    // Replica 0 dies: how long until its shards are held by the others.
    let lost = identity(0);
    let _ = replicas[0].child.kill();
    let killed = Instant::now();
    let taken = loop {
        let now = holders(&leases, plan.shards).await;
        if now.len() == plan.shards as usize && now.values().all(|h| *h != lost) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(300),
            "shards not taken over in 5 minutes: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "replica 0 killed: its {} shards held by the others after {:.1}s",
        before.values().filter(|h| **h == lost).count(),
        taken.as_secs_f64()
    );
    // The shards taken over are listed and looked at again.
    tokio::time::sleep(plan.resync + Duration::from_secs(30)).await;
    let after = holders(&leases, plan.shards).await;
    let survivors = replicas.split_off(1);
    let objects = held(&namespace, plan, &after);
    println!("after the takeover and one more resync:");
    println!("  replica  objects  added MiB  KiB per object");
    for (i, r) in survivors.iter().enumerate() {
        let count = objects.get(&identity(i + 1)).copied().unwrap_or(0);
        let added = r.added_kib();
        println!(
            "  {:>7}  {count:>7}  {:>9.1}  {:>14.1}",
            i + 1,
            added as f64 / 1024.0,
            added as f64 / count.max(1) as f64
        );
    }
}
