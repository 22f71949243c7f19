//! The evidence log and the auditor's report end to end: a controller run against the
//! emulator writes evidence to S3; `report` reads it back, shows each drift with its time to
//! heal, states whether the evidence is tamper-evident, and renders in headless Chromium.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::support;
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
};
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    auditor::{
        command::{Live, ReportRequest, report},
        model::Report,
    },
    aws::{AwsClients, Scope},
    controller::Context,
    evidence::{self, Body, EvidenceLog, read, upload},
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::PostParams};
use serde_json::json;

const SOURCE: &str = "us-east-1";
const PREFIX: &str = "evidence/";

/// A replicated instance whose retention (1 day) is its only drift, and its object.
async fn drifting_database(
    account: &str,
    instance: &str,
    mode: &str,
) -> (aws_sdk_rds::Client, BackedUpDatabase) {
    let rds = aws_sdk_rds::Client::new(&testing::env().aws_config_in(SOURCE, account).await);
    let object = support::replicated_database(account, (instance, instance), 1, mode, json!({})).await;
    (rds, object)
}

async fn evidence_s3(aws: &AwsClients) -> aws_sdk_s3::Client {
    aws.for_scope(&Scope::new(None, SOURCE)).await.s3
}

/// A bucket, with Object Lock in compliance mode (1 day) when `locked`.
async fn bucket(s3: &aws_sdk_s3::Client, name: &str, locked: bool) -> String {
    let bucket = testing::unique_name(name).to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(locked)
        .send()
        .await
        .expect("create bucket");
    if locked {
        s3.put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(ObjectLockRetentionMode::Compliance)
                                    .days(1)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("object lock");
    }
    bucket
}

/// A controller context whose evidence goes to a spool in `spool` (uploaded by the caller).
async fn context_with_evidence(aws: Arc<AwsClients>, spool: &std::path::Path) -> Arc<Context> {
    let env = testing::env();
    let rds = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
    let ctx = env
        .context_with(rds, aws, Policy::default(), testing::fast_timing(), None)
        .await;
    let mut ctx = Arc::into_inner(ctx).expect("the only reference");
    ctx.evidence = EvidenceLog::open(
        &evidence::Settings {
            spool_dir: Some(spool.to_path_buf()),
            spool_max_bytes: 1 << 20,
        },
        evidence::Controller {
            version: env!("CARGO_PKG_VERSION").into(),
            replica: "test-0".into(),
        },
        ctx.metrics.clone(),
    )
    .expect("evidence log");
    Arc::new(ctx)
}

fn spool_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(testing::unique_name(name));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Uploads what is waiting until nothing is, or panics after 20 s.
async fn drained(log: &EvidenceLog, s3: &aws_sdk_s3::Client, bucket: &str) {
    let to = upload::Destination {
        s3: s3.clone(),
        bucket: bucket.into(),
        prefix: PREFIX.into(),
    };
    let lock = upload::default_retention(s3, bucket).await.expect("object lock");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        upload::flush(log, &to, lock.as_ref()).await.expect("upload");
        if log.pending() == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} records still waiting",
            log.pending()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn report_of(s3: &aws_sdk_s3::Client, bucket: &str, name: &str) -> (Report, PathBuf) {
    let today = evidence::day(Timestamp::now());
    let html = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.html"));
    let report = report(ReportRequest {
        from: today,
        to: today,
        bucket: bucket.into(),
        prefix: PREFIX.into(),
        s3: s3.clone(),
        live: Live::Never,
        concurrency: 8,
        html: html.clone(),
        json: Some(html.with_extension("json")),
    })
    .await
    .expect("report");
    (report, html)
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_healed_and_drift_fixed_by_hand_are_reported_with_their_heal_times() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let aws = env.aws_clients().await;
    let s3 = evidence_s3(&aws).await;
    let locked = bucket(&s3, "evidence-locked", true).await;
    let plain = bucket(&s3, "evidence-plain", false).await;

    // Enforce heals the drift itself; its evidence goes to the locked bucket.
    let namespace = testing::namespace(&client, "evidence-enforce").await;
    let account = testing::unique_account();
    let (_, object) = drifting_database(&account, "ledger-db", "Enforce").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let spool = spool_dir("spool-enforce");
    let ctx = context_with_evidence(aws.clone(), &spool).await;
    let controller = RunningController::start(ctx.clone(), &namespace);
    dbs.create(&PostParams::default(), &object).await.expect("create");
    let ready = |db: &BackedUpDatabase| condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True");
    wait_for(&dbs, "ledger-db", Duration::from_secs(30), ready).await;
    drop(controller);
    drained(&ctx.evidence, &s3, &locked).await;

    let (enforced, html) = report_of(&s3, &locked, "evidence-enforce").await;
    assert!(
        enforced.tamper_evidence.tamper_evident,
        "{}",
        enforced.tamper_evidence.statement
    );
    assert!(enforced.tamper_evidence.objects > 0);
    assert_eq!(
        enforced.tamper_evidence.objects_locked,
        enforced.tamper_evidence.objects
    );
    let ledger = enforced
        .resources
        .iter()
        .find(|r| r.name == "ledger-db" && r.namespace == namespace)
        .expect("the resource is in the report");
    let episode = ledger
        .episodes
        .iter()
        .find(|e| e.check == "RetentionCompliant")
        .expect("the retention drift");
    let heal = episode.heal_seconds.expect("healed");
    assert!((0.0..30.0).contains(&heal), "healed within the run: {heal} s");
    assert!(
        !episode.resolved_by_attestation,
        "the resolution itself was recorded"
    );
    let raised = ledger
        .actions
        .iter()
        .find(|a| a.action == "RetentionRaised")
        .expect("the action");
    assert!(
        raised
            .request_ids
            .iter()
            .any(|id| id.starts_with("ModifyDBInstance ")),
        "the action names its request: {:?}",
        raised.request_ids
    );

    // The report says what the records say.
    let today = evidence::day(Timestamp::now());
    let records = read::read(&s3, &locked, PREFIX, today, today)
        .await
        .expect("read")
        .records;
    let of_ledger = |r: &&evidence::Record| r.object.as_ref().is_some_and(|o| o.name == "ledger-db");
    let found = records
        .iter()
        .filter(of_ledger)
        .find(|r| matches!(&r.body, Body::Drift { check, .. } if check == "RetentionCompliant"))
        .expect("a drift record");
    let resolved = records
        .iter()
        .filter(of_ledger)
        .find(|r| matches!(&r.body, Body::Resolved { check, .. } if check == "RetentionCompliant"))
        .expect("a resolved record");
    assert_eq!(episode.found_at, found.time);
    assert_eq!(episode.resolved_at.as_deref(), Some(resolved.time.as_str()));
    assert!(
        records
            .iter()
            .filter(of_ledger)
            .any(|r| matches!(r.body, Body::Attestation { .. })),
        "the day's attestation"
    );
    assert!(
        records
            .iter()
            .all(|r| r.controller.version == env!("CARGO_PKG_VERSION"))
    );
    assert!(
        records
            .iter()
            .filter(of_ledger)
            .all(|r| r.object.as_ref().and_then(|o| o.generation) == Some(1)),
        "records carry the object's generation"
    );

    // Audit: the drift stays until fixed by hand; its evidence goes to the plain bucket.
    let namespace = testing::namespace(&client, "evidence-audit").await;
    let account = testing::unique_account();
    let (rds, object) = drifting_database(&account, "orders-db", "Audit").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let spool = spool_dir("spool-audit");
    let ctx = context_with_evidence(aws.clone(), &spool).await;
    let controller = RunningController::start(ctx.clone(), &namespace);
    dbs.create(&PostParams::default(), &object).await.expect("create");
    wait_for(&dbs, "orders-db", Duration::from_secs(30), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "False")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rds.modify_db_instance()
        .db_instance_identifier("orders-db")
        .backup_retention_period(7)
        .apply_immediately(true)
        .send()
        .await
        .expect("fix by hand");
    wait_for(&dbs, "orders-db", Duration::from_secs(30), ready).await;
    drop(controller);
    drained(&ctx.evidence, &s3, &plain).await;
    let (audited, _) = report_of(&s3, &plain, "evidence-audit").await;
    assert!(!audited.tamper_evidence.tamper_evident);
    assert!(
        audited.tamper_evidence.statement.contains("no Object Lock"),
        "{}",
        audited.tamper_evidence.statement
    );
    let orders = audited
        .resources
        .iter()
        .find(|r| r.name == "orders-db")
        .expect("the resource");
    let episode = &orders.episodes[0];
    let heal = episode.heal_seconds.expect("resolved");
    assert!(heal >= 2.0, "open until fixed by hand: {heal} s");
    assert!(orders.actions.is_empty(), "Audit takes no action");
    assert_eq!(orders.mode, "Audit");

    // The report renders in a browser: no console message, its script ran, the map shows
    // the estate; a screenshot is kept.
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evidence-report.png");
    let rendered = testing::chromium::render(&html, &screenshot, (1400, 2400));
    assert!(rendered.console.is_empty(), "console: {:?}", rendered.console);
    assert!(
        rendered.dom.contains("data-ready=\"1\""),
        "the page's script ran to its end"
    );
    // Every resource of the estate is on the map, and every node that names a resource
    // names one of the estate.
    let dom = map_nodes(&rendered.dom);
    let estate: Vec<&str> = enforced
        .estate
        .databases
        .iter()
        .map(|d| d.object.as_str())
        .collect();
    assert_eq!(estate, [format!("{}/ledger-db", ledger.namespace)]);
    for object in &estate {
        assert!(
            dom.iter()
                .any(|n| n.contains(&format!("data-object=\"{object}\""))),
            "{object} is on the map: {dom:?}"
        );
    }
    for node in &dom {
        let named = node
            .split("data-object=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert!(
            named.is_empty() || estate.contains(&named),
            "{node} is not in the estate"
        );
    }
    assert!(
        dom.iter()
            .any(|n| n.contains("data-kind=\"database\"") && n.contains("data-compliance=\"compliant\"")),
        "the healed database is drawn compliant: {dom:?}"
    );
    println!("screenshot: {}", screenshot.display());

    // The map is valid XML on its own.
    let svg = backup_warden::estate::svg::render(&enforced.estate);
    roxmltree::Document::parse(&svg).expect("the map is valid XML");
}

/// The opening tags of the map's nodes in a DOM dump.
fn map_nodes(dom: &str) -> Vec<String> {
    dom.match_indices("class=\"node\"")
        .filter_map(|(i, _)| {
            let start = dom[..i].rfind('<')?;
            let end = i + dom[i..].find('>')?;
            Some(dom[start..=end].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_that_refuses_writes_for_a_while_loses_no_record_across_a_restart() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let aws = env.aws_clients().await;
    let s3 = evidence_s3(&aws).await;
    // Not created yet: every upload fails with NoSuchBucket.
    let missing = testing::unique_name("evidence-later").to_lowercase();

    let namespace = testing::namespace(&client, "evidence-outage").await;
    let account = testing::unique_account();
    let (_, object) = drifting_database(&account, "billing-db", "Enforce").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let spool = spool_dir("spool-outage");
    let ctx = context_with_evidence(aws.clone(), &spool).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let uploader = tokio::spawn(upload::run(
        ctx.evidence.clone(),
        upload::Destination {
            s3: s3.clone(),
            bucket: missing.clone(),
            prefix: PREFIX.into(),
        },
        Duration::from_millis(200),
        stopped,
    ));
    let controller = RunningController::start(ctx.clone(), &namespace);
    dbs.create(&PostParams::default(), &object).await.expect("create");
    wait_for(&dbs, "billing-db", Duration::from_secs(30), |db| {
        condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
    // Uploads were tried and failed; the records wait.
    let errors = || ctx.metrics.evidence_write_errors.get();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while errors() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no failed upload counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(controller);
    let _ = stop.send(true);
    uploader.await.expect("uploader");
    let kept = ctx.metrics.evidence_records.with_label_values(&["kept"]).get();
    assert!(kept >= 4, "drift, action, resolved and attestation: {kept}");
    assert_eq!(ctx.evidence.pending(), kept, "all of them wait");
    assert_eq!(
        ctx.metrics.evidence_records.with_label_values(&["dropped"]).get(),
        0
    );

    // A restart: a new process opens the same spool and finds every record.
    let metrics = Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
    let reopened = EvidenceLog::open(
        &evidence::Settings {
            spool_dir: Some(spool.clone()),
            spool_max_bytes: 1 << 20,
        },
        evidence::Controller {
            version: env!("CARGO_PKG_VERSION").into(),
            replica: "test-1".into(),
        },
        metrics.clone(),
    )
    .expect("reopen");
    assert_eq!(reopened.pending(), kept, "nothing lost across the restart");

    // The bucket takes writes again: every record lands, once.
    s3.create_bucket()
        .bucket(&missing)
        .send()
        .await
        .expect("create bucket");
    drained(&reopened, &s3, &missing).await;
    assert_eq!(
        metrics.evidence_records.with_label_values(&["written"]).get(),
        kept,
        "uploaded once each"
    );
    let today = evidence::day(Timestamp::now());
    let read = read::read(&s3, &missing, PREFIX, today, today)
        .await
        .expect("read");
    assert_eq!(
        read.records.len() as u64,
        kept,
        "every record kept is in the bucket"
    );
    assert!(
        std::fs::read_dir(&spool).expect("spool").next().is_none(),
        "the spool is empty"
    );
    let _ = std::fs::remove_dir_all(&spool);

    // The commands an owner runs: the report from the bucket with today's state from the
    // cluster, and the map of what the cluster declares.
    let dir = std::env::temp_dir().join(testing::unique_name("report-command"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (html, json) = (dir.join("evidence.html"), dir.join("evidence.json"));
    let out = command(&[
        "report",
        "--from",
        &today.to_string(),
        "--to",
        &today.to_string(),
        "--bucket",
        &missing,
        "--prefix",
        PREFIX,
        "--live",
        "always",
        "-o",
        html.to_str().expect("path"),
        "--json",
        json.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert!(
        report["liveState"]
            .as_str()
            .is_some_and(|s| s.starts_with("today's state read from the cluster")),
        "{}",
        report["liveState"]
    );
    let billing = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["namespace"] == namespace.as_str() && r["name"] == "billing-db")
        .expect("billing-db in the report");
    assert_eq!(billing["current"], "Compliant");
    assert!(
        std::fs::read_to_string(&html)
            .expect("html")
            .contains("billing-db")
    );

    let out = command(&["map", "-n", &namespace]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = String::from_utf8(out.stdout).expect("utf-8");
    let map = roxmltree::Document::parse(&svg).expect("valid XML");
    let billing = map
        .descendants()
        .find(|n| n.attribute("data-object") == Some(&format!("{namespace}/billing-db")))
        .expect("billing-db on the map");
    assert_eq!(billing.attribute("data-compliance"), Some("compliant"));
    for (format, start) in [("dot", "digraph"), ("mermaid", "flowchart")] {
        let out = command(&["map", "-n", &namespace, "-f", format]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(start), "{format}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The binary, with the test environment's cluster and throwaway AWS credentials for the
/// emulator.
fn command(args: &[&str]) -> std::process::Output {
    let env = testing::env();
    std::process::Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        .args(args)
        .args(if args[0] == "report" {
            vec!["--aws-endpoint-url", env.aws_endpoint.as_str()]
        } else {
            vec![]
        })
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", SOURCE)
        .output()
        .expect("run backup-warden")
}
