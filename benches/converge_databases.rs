//! Benchmark (not a test): converge N BackedUpDatabases (default 1,000) from non-compliant
//! (retention 1, no replication, no key) to Ready, with the release binary running as the
//! controller against the local API server and the AWS emulator. Reports AWS calls by
//! operation while converging and in one quiet sweep after (read from the controller's
//! /metrics), status writes in that sweep, wall time and the controller's peak RSS. The
//! quiet sweep is the figure to hold against `scale_databases` (the in-process model) at
//! the same N and resync: the two must agree on calls by operation.
//!
//!     make bench            # or: cargo bench --bench converge_databases
//!     BENCH_OBJECTS=200 make bench
//!     BENCH_SETTLE=2s make bench   # the settle interval (default 30s, the controller's)
//!     BENCH_RESYNC_SECONDS=120 make bench   # the resync interval (default 600)
//!     BENCH_BINARY=/path/to/backup-warden make bench   # another build as the controller
#[path = "support/measure.rs"]
mod measure;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use backup_warden::api::{BackedUpDatabase, ConditionType};
use backup_warden_testing::{self as testing, condition};
use futures::{StreamExt, stream};
use kube::{Api, api::ListParams};
use serde_json::json;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "bench").await;
    let account = testing::unique_account();
    // A large company raises the replication quota (20 per region by default).
    let (code, body) = env.emulator_post(
        "/moto-api/backup-warden/quota",
        &json!({"account_id": account, "region": DESTINATION, "replications": n + 10}),
    );
    assert_eq!(code, 200, "raise the emulator's replication quota: {body}");

    let setup = Instant::now();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    let ids: Vec<String> = (0..n).map(|i| format!("db-{i:05}")).collect();
    stream::iter(ids.iter())
        .for_each_concurrent(16, |id| {
            let rds = rds.clone();
            async move {
                testing::create_instance(&rds, id, 1).await;
            }
        })
        .await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let role = testing::role_arn(&account);
    testing::create_databases(
        &dbs,
        &ids,
        |id| json!({"instance": {"identifier": id, "region": SOURCE, "roleArn": role}}),
    )
    .await;
    eprintln!(
        "setup: {n} instances and resources in {:.1}s",
        setup.elapsed().as_secs_f64()
    );

    let settle = std::env::var("BENCH_SETTLE").unwrap_or_else(|_| "30s".into());
    let resync = Duration::from_secs(measure::env_number("BENCH_RESYNC_SECONDS", 600));
    let metrics_address = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        free.local_addr().expect("its address")
    };
    let log_path = std::env::temp_dir().join(format!("{namespace}.log"));
    let started = Instant::now();
    // BENCH_BINARY runs another build of the controller (to compare two).
    let binary = std::env::var("BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_backup-warden").into());
    let mut child = Command::new(binary)
        // The image's malloc settings, as in production.
        .env("GLIBC_TUNABLES", measure::shipped_malloc_tunables())
        .args([
            "run",
            "--listen-address",
            &metrics_address.to_string(),
            "--namespace",
            &namespace,
        ])
        .args([
            "--aws-endpoint-url",
            &env.aws_endpoint,
            "--tenancy-file",
            &testing::open_tenancy_file().display().to_string(),
            "--resync-interval",
            &format!("{}s", resync.as_secs()),
            // The default settle interval unless BENCH_SETTLE says otherwise.
            "--settle-interval",
            &settle,
        ])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", SOURCE)
        .env("BACKUP_WARDEN_LOG", "warn,backup_warden=info")
        // Logs go to a file: a pipe nobody reads would fill up and stall the controller.
        .stdout(Stdio::from(std::fs::File::create(&log_path).expect("log file")))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start backup-warden run");
    let pid = child.id();

    let mut ready = 0;
    while ready < n {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let list = dbs.list(&ListParams::default()).await.expect("list");
        ready = list
            .items
            .iter()
            .filter(|db| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True"))
            .count();
        assert!(child.try_wait().expect("wait").is_none(), "the controller exited");
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {ready} of {n} Ready after 30 minutes"
        );
    }
    let converged = started.elapsed();
    let converging = calls_by_operation(metrics_address);

    // One quiet sweep: in a window of one resync interval every object is looked at once
    // (each resync is one interval after the last), with nothing to change.
    let writes_before = measure::status_writes(&client, "backedupdatabases").await;
    let own_before = own_status_writes(metrics_address);
    tokio::time::sleep(resync).await;
    let quiet = calls_by_operation(metrics_address);
    let writes = measure::status_writes(&client, "backedupdatabases").await - writes_before;
    let own_writes = own_status_writes(metrics_address) - own_before;
    let rss = testing::peak_rss_kib(pid);

    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    child.wait().expect("controller exit");
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let calls = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "stopped")
        .and_then(|l| {
            l["aws_calls"]
                .as_str()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        })
        .unwrap_or_default();

    println!("## converge {n} BackedUpDatabases (retention 1, no replication -> Ready)");
    println!("settle interval {settle}, resync {resync:?}, RDS budget the default (12/s, burst 300)");
    println!("wall time to converge: {:.1}s", converged.as_secs_f64());
    println!(
        "controller peak RSS: {:.1} MiB ({:.1} KiB per object)",
        rss as f64 / 1024.0,
        rss as f64 / n as f64
    );
    measure::print_calls("AWS calls while converging", &converging, &BTreeMap::new());
    measure::print_calls("AWS calls in one quiet sweep", &quiet, &converging);
    measure::print_status_writes(writes, own_writes, own_before);
    println!("AWS calls by operation, all told (the controller's count at exit):");
    let mut total = 0;
    if let Some(map) = calls.as_object() {
        for (op, c) in map {
            let count = c["calls"].as_u64().unwrap_or(0);
            total += count;
            println!("  {op:<55} {count:>6}  errors {}", c["errors"]);
        }
    }
    println!("  {:<55} {total:>6}", "total");
}

/// The controller's own count of its status writes so far, from its /metrics.
fn own_status_writes(address: std::net::SocketAddr) -> u64 {
    let (_, text) = testing::http_get(address, "/metrics").expect("the controller's /metrics");
    text.lines()
        .filter(|l| l.starts_with("backup_warden_status_writes_total{"))
        .filter(|l| l.contains("kind=\"BackedUpDatabase\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The controller's count of AWS calls so far, by operation ("service.operation"): all
/// calls, and those that failed (throttled ones included), from its /metrics.
fn calls_by_operation(address: std::net::SocketAddr) -> BTreeMap<String, (u64, u64)> {
    let (_, text) = testing::http_get(address, "/metrics").expect("the controller's /metrics");
    let label = |line: &str, name: &str| -> String {
        let start = format!("{name}=\"");
        line.split(&start)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut calls = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("backup_warden_external_calls_total{"))
    {
        let Some(count) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let entry: &mut (u64, u64) = calls
            .entry(format!("{}.{}", label(line, "service"), label(line, "operation")))
            .or_default();
        entry.0 += count as u64;
        if label(line, "outcome") == "error" {
            entry.1 += count as u64;
        }
    }
    calls
}
