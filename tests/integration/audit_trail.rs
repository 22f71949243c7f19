//! The RetainedAuditTrail controller end to end: the real API server and the emulator's
//! CloudTrail, S3 and CloudWatch Logs, the controller running in this process.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, Tag, Transition, TransitionStorageClass,
};
use backup_warden::{
    api::{ConditionType, RetainedAuditTrail, TrailCheck},
    aws::cloudtrail::SdkAuditTrails,
    controller::{Decoded, Timing, trail},
    policy::trail::TrailPolicy,
};
use backup_warden_testing::{self as testing, wait_for};
use kube::{Api, api::PostParams, runtime::reflector::store::Writer};
use serde_json::json;

const REGION: &str = "us-east-1";
/// One resync: Enforce must make the trail Ready before a second look is due.
const RESYNC: Duration = Duration::from_secs(15);

struct World {
    trails: Api<RetainedAuditTrail>,
    namespace: String,
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    trail: String,
    bucket: String,
    log_group: String,
}

/// The bucket's other rules: each must come back exactly as written.
fn other_rules() -> Vec<LifecycleRule> {
    vec![
        LifecycleRule::builder()
            .id("scratch")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("scratch/").build())
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .expect("rule"),
        LifecycleRule::builder()
            .id("archive-reports")
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .tag(Tag::builder().key("class").value("report").build().expect("tag"))
                    .build(),
            )
            .transitions(
                Transition::builder()
                    .days(30)
                    .storage_class(TransitionStorageClass::Glacier)
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(800)
                    .build(),
            )
            .build()
            .expect("rule"),
    ]
}

/// A trail that breaks every rule Enforce fixes: logging stopped, validation off, one
/// region, its logs' lifecycle rule at 30 days and its log group at 90.
async fn world(prefix: &str) -> World {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, prefix).await;
    let config = env.aws_config(REGION).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    let name = testing::unique_name(prefix).to_lowercase();
    let bucket = format!("{name}-logs");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let mut rules = other_rules();
    rules.insert(
        1,
        LifecycleRule::builder()
            .id("trail-logs")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("audit/AWSLogs/").build())
            .expiration(LifecycleExpiration::builder().days(30).build())
            .build()
            .expect("rule"),
    );
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .expect("put lifecycle");
    let log_group = format!("{name}/trail");
    logs.create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .expect("create log group");
    logs.put_retention_policy()
        .log_group_name(&log_group)
        .retention_in_days(90)
        .send()
        .await
        .expect("log group retention");
    let trail = format!("{name}-trail");
    cloudtrail
        .create_trail()
        .name(&trail)
        .s3_bucket_name(&bucket)
        .s3_key_prefix("audit")
        .is_multi_region_trail(false)
        .enable_log_file_validation(false)
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:{REGION}:123456789012:log-group:{log_group}:*"
        ))
        .cloud_watch_logs_role_arn("arn:aws:iam::123456789012:role/cloudtrail-to-logs")
        .send()
        .await
        .expect("create trail");
    World {
        trails: Api::namespaced(client, &namespace),
        namespace,
        cloudtrail,
        s3,
        logs,
        trail,
        bucket,
        log_group,
    }
}

/// The controller for the world's namespace, with the call counts of its own AWS clients.
struct Running {
    ctx: Arc<trail::TrailContext>,
    calls: Arc<backup_warden::aws::ApiCalls>,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl World {
    async fn apply(&self, name: &str, mode: &str) {
        let object: RetainedAuditTrail = serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "RetainedAuditTrail",
            "metadata": {"name": name},
            "spec": {"mode": mode, "trail": {"name": self.trail, "region": REGION}},
        }))
        .expect("object");
        self.trails
            .create(&PostParams::default(), &object)
            .await
            .expect("create RetainedAuditTrail");
    }

    async fn controller(&self) -> Running {
        let env = testing::env();
        let aws = env.aws_clients().await;
        let calls = aws.calls().clone();
        let client = env.client().await;
        let timing = Timing {
            resync: RESYNC,
            ..testing::fast_timing()
        };
        let (store, writer): (_, Writer<Decoded<RetainedAuditTrail>>) = trail::store();
        let ctx = Arc::new(trail::TrailContext {
            aws: Arc::new(SdkAuditTrails { clients: aws }),
            regions: Default::default(),
            policy: TrailPolicy::default(),
            timing,
            recorder: backup_warden::report::recorder::Recorder::new(client.clone(), "backup-warden".into()),
            backoff: backup_warden::controller::context::Backoff::new(timing),
            store,
            metrics: Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics")),
            notifier: Arc::new(backup_warden::report::slack::NoopNotifier),
            tenancy: testing::open_tenancy(),
            shards: backup_warden::controller::shards::Ownership::all(),
            wakes: Default::default(),
            evidence: backup_warden::evidence::EvidenceLog::off(),
            client,
        });
        let handle = tokio::spawn(trail::run(
            Api::namespaced(ctx.client.clone(), &self.namespace),
            ctx.clone(),
            writer,
            4,
            std::future::pending(),
        ));
        Running { ctx, calls, handle }
    }

    /// (logging, multi-region, validation) as CloudTrail answers.
    async fn trail_state(&self) -> (bool, bool, bool) {
        let status = self
            .cloudtrail
            .get_trail_status()
            .name(&self.trail)
            .send()
            .await
            .expect("status");
        let described = self
            .cloudtrail
            .describe_trails()
            .trail_name_list(&self.trail)
            .send()
            .await
            .expect("describe");
        let t = &described.trail_list()[0];
        (
            status.is_logging() == Some(true),
            t.is_multi_region_trail() == Some(true),
            t.log_file_validation_enabled() == Some(true),
        )
    }

    async fn rules(&self) -> Vec<LifecycleRule> {
        self.s3
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("lifecycle")
            .rules()
            .to_vec()
    }

    async fn log_retention(&self) -> Option<i32> {
        self.logs
            .describe_log_groups()
            .log_group_name_prefix(&self.log_group)
            .send()
            .await
            .expect("log groups")
            .log_groups()
            .first()
            .and_then(|g| g.retention_in_days())
    }
}

fn trail_condition(
    t: &RetainedAuditTrail,
    type_: impl Into<ConditionType>,
) -> Option<(String, String, String)> {
    let conditions = &t.status.as_ref()?.conditions;
    backup_warden::api::conditions::find_condition(conditions, type_)
        .map(|c| (c.status.to_string(), c.reason.to_string(), c.message.to_string()))
}

fn condition(t: &RetainedAuditTrail, type_: impl Into<ConditionType>) -> Option<(String, String)> {
    trail_condition(t, type_).map(|c| (c.0, c.1))
}

fn ready(t: &RetainedAuditTrail) -> bool {
    condition(t, ConditionType::Ready).is_some_and(|c| c.0 == "True")
}

/// The write calls the controller made, by operation.
fn writes(calls: &backup_warden::aws::ApiCalls) -> Vec<String> {
    const WRITES: [&str; 4] = [
        "StartLogging",
        "UpdateTrail",
        "PutBucketLifecycleConfiguration",
        "PutRetentionPolicy",
    ];
    calls
        .snapshot()
        .into_keys()
        .filter(|(_, operation)| WRITES.contains(&operation.as_str()))
        .map(|(_, operation)| operation)
        .collect()
}

#[tokio::test]
async fn enforce_makes_a_neglected_trail_ready_within_one_resync() {
    let w = world("rtrail-enforce").await;
    let before = w.rules().await;
    assert_eq!(w.trail_state().await, (false, false, false));
    let c = w.controller().await;
    let started = Instant::now();
    w.apply("audit", "Enforce").await;

    let t = wait_for(&w.trails, "audit", RESYNC, ready).await;
    let took = started.elapsed();
    println!("RetainedAuditTrail Ready {took:?} after it was applied (resync {RESYNC:?})");
    for check in TrailCheck::ALL {
        assert_eq!(
            condition(&t, *check).map(|c| c.0).as_deref(),
            Some("True"),
            "{check:?}"
        );
    }
    assert_eq!(w.trail_state().await, (true, true, true));
    assert_eq!(w.log_retention().await, Some(365));
    // The logs' rule is raised to 365; every other rule comes back exactly as it was.
    let after = w.rules().await;
    assert_eq!(after.len(), before.len());
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    assert_eq!(after[1].id(), Some("trail-logs"));
    assert_eq!(after[1].expiration().and_then(|e| e.days()), Some(365));
    assert_eq!(after[1].filter(), before[1].filter());

    let status = t.status.as_ref().expect("status");
    let observed = status.trail.as_ref().expect("trail");
    assert_eq!(observed.logs_prefix.as_deref(), Some("audit/AWSLogs/"));
    assert_eq!(observed.log_group.as_deref(), Some(w.log_group.as_str()));
    let retention = status.retention.as_ref().expect("retention");
    assert_eq!(retention.bucket.as_deref(), Some("365 days"));
    assert_eq!(retention.log_group.as_deref(), Some("365 days"));
    let mut made = writes(&c.calls);
    made.sort();
    assert_eq!(
        made,
        [
            "PutBucketLifecycleConfiguration",
            "PutRetentionPolicy",
            "StartLogging",
            "UpdateTrail"
        ]
    );

    // Quiet afterwards: the next looks (the settle, then the resync) write nothing, to
    // AWS or to the status.
    let metrics = &c.ctx.metrics;
    let reconciles = || {
        metrics
            .reconciles
            .with_label_values(&["RetainedAuditTrail"])
            .get()
    };
    let seen = reconciles();
    wait_until(RESYNC, || reconciles() > seen).await;
    let (quiet, status_writes) = (
        w.trails.get("audit").await.expect("get"),
        metrics
            .status_writes
            .with_label_values(&["RetainedAuditTrail"])
            .get(),
    );
    let seen = reconciles();
    wait_until(RESYNC * 2, || reconciles() > seen).await;
    let again = w.trails.get("audit").await.expect("get");
    assert_eq!(again.metadata.resource_version, quiet.metadata.resource_version);
    assert_eq!(
        metrics
            .status_writes
            .with_label_values(&["RetainedAuditTrail"])
            .get(),
        status_writes
    );
    assert_eq!(
        writes(&c.calls).len(),
        4,
        "nothing written once compliant: {:?}",
        c.calls.snapshot()
    );
    let once: Vec<u64> = [
        "StartLogging",
        "UpdateTrail",
        "PutBucketLifecycleConfiguration",
        "PutRetentionPolicy",
    ]
    .iter()
    .map(|op| c.calls.calls(op))
    .collect();
    assert_eq!(once, [1, 1, 1, 1]);
    println!(
        "AWS calls, converging then two quiet looks: {}",
        c.calls.to_json()
    );
}

#[tokio::test]
async fn audit_reports_the_same_findings_and_writes_nothing() {
    let w = world("rtrail-audit").await;
    let before = w.rules().await;
    let c = w.controller().await;
    w.apply("audit", "Audit").await;

    let t = wait_for(&w.trails, "audit", RESYNC, |t| {
        TrailCheck::ALL
            .iter()
            .all(|check| condition(t, *check).is_some_and(|c| c.0 == "False"))
    })
    .await;
    assert_eq!(
        condition(&t, TrailCheck::TrailLogging),
        Some(("False".into(), "AuditOnly".into()))
    );
    assert_eq!(
        condition(&t, TrailCheck::LogFileValidation),
        Some(("False".into(), "AuditOnly".into()))
    );
    assert_eq!(
        condition(&t, TrailCheck::LogsRetained),
        Some(("False".into(), "AuditOnly".into()))
    );
    // Never started: nothing delivered.
    assert_eq!(
        condition(&t, TrailCheck::LogsDelivered),
        Some(("False".into(), "Stale".into()))
    );
    let message = trail_condition(&t, TrailCheck::LogsRetained).map(|c| c.2);
    assert_eq!(
        message,
        Some(format!(
            "lifecycle rule \"trail-logs\" on \"audit/AWSLogs/\" expires objects after 30 days; \
             log group {} keeps events 90 days (policy 365 days)",
            w.log_group
        ))
    );

    // A second look, and still nothing written.
    let looked = c.calls.calls("DescribeTrails");
    wait_until(RESYNC * 2, || c.calls.calls("DescribeTrails") > looked).await;
    assert!(writes(&c.calls).is_empty(), "{:?}", c.calls.snapshot());
    assert_eq!(w.trail_state().await, (false, false, false));
    assert_eq!(w.rules().await, before);
    assert_eq!(w.log_retention().await, Some(90));
}

#[tokio::test]
async fn a_missing_trail_is_stalled_and_nothing_is_called_but_reads() {
    let w = world("rtrail-missing").await;
    let c = w.controller().await;
    let object: RetainedAuditTrail = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "RetainedAuditTrail",
        "metadata": {"name": "gone"},
        "spec": {"trail": {"name": "no-such-trail", "region": REGION}},
    }))
    .expect("object");
    w.trails
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let t = wait_for(&w.trails, "gone", RESYNC, |t| {
        condition(t, ConditionType::Stalled).is_some_and(|c| c.0 == "True")
    })
    .await;
    assert_eq!(
        condition(&t, TrailCheck::TrailLogging),
        Some(("False".into(), "TrailNotFound".into()))
    );
    assert!(writes(&c.calls).is_empty());
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < until, "not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn check_reports_a_row_per_check_with_what_enforce_will_do_and_writes_nothing() {
    let w = world("rtrail-check").await;
    let before = w.rules().await;
    let dir = std::env::temp_dir().join(testing::unique_name("rtrail-check"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("trail.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: backupwarden.io/v1alpha1\nkind: RetainedAuditTrail\n\
             metadata: {{name: audit, namespace: security}}\n\
             spec:\n  trail: {{name: {}, region: {REGION}}}\n",
            w.trail
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .arg("check")
        .args([
            "--aws-endpoint-url",
            &testing::env().aws_endpoint,
            "-o",
            "json",
            "-f",
        ])
        .arg(&file)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .output()
        .expect("run check");
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "drift: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let row = |check: &str| {
        rows.iter()
            .find(|r| r["check"] == check)
            .unwrap_or_else(|| panic!("no {check} row in {rows:#?}"))
    };
    assert_eq!(rows.len(), TrailCheck::ALL.len());
    assert!(
        rows.iter()
            .all(|r| r["kind"] == "RetainedAuditTrail" && r["object"] == "security/audit")
    );
    assert_eq!(row("TrailLogging")["status"], "drift");
    assert_eq!(
        row("TrailLogging")["action"],
        format!(
            "will start logging on trail {t}; will update trail {t} to every region with log file validation",
            t = w.trail
        )
    );
    assert_eq!(
        row("LogsRetained")["action"],
        format!(
            "will raise lifecycle rule \"trail-logs\" expiration to 365 days of bucket {}; \
             will raise the retention of log group {} to 365 days",
            w.bucket, w.log_group
        )
    );
    assert_eq!(
        row("LogsRetained")["desired"],
        "the logs kept at least 365 days in S3 and CloudWatch Logs"
    );
    assert_eq!(row("LogsDelivered")["status"], "drift");
    // Nothing changed.
    assert_eq!(w.trail_state().await, (false, false, false));
    assert_eq!(w.rules().await, before);
    assert_eq!(w.log_retention().await, Some(90));
}
