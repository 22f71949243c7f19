//! `make demo`: the whole loop, locally, printed as it happens. A non-compliant database in
//! the AWS emulator and a repository without the backup workflow in a GitHub fake; the
//! controller fixes both; a drift is injected and healed; the Slack messages and the
//! drift metrics are shown.
//!
//!     cargo run --example demo

use std::{process::Command, sync::Arc, time::Duration};

use backup_warden::{
    api::{BackedUpDatabase, BackedUpRepository, ConditionType},
    controller::Timing,
    evidence,
    policy::{database::Policy, repository::RepositoryPolicy},
    report::slack::{SlackNotifier, SlackSettings},
};
use backup_warden_testing::{
    self as testing, RunningController, RunningRepoController, github_fake::GitHubFake, slack_fake::SlackFake,
};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::PostParams};
use serde_json::json;

const NS: &str = "demo";
const REPO: &str = "narrative-io/marketplace";
const WORKFLOW: &str = ".github/workflows/backup-daily.yml";
/// Where the demo's evidence goes in its bucket.
const EVIDENCE_PREFIX: &str = "evidence/";

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn kubectl_get() {
    let env = testing::env();
    let out = Command::new(&env.kubectl)
        .env("KUBECONFIG", &env.kubeconfig)
        .args(["get", "bdb,brepo", "-n", NS])
        .output();
    if let Ok(out) = out {
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

async fn ready<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let Ok(object) = api.get(name).await else {
        return false;
    };
    let value = serde_json::to_value(&object).unwrap_or_default();
    value["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == ConditionType::Ready.as_str() && c["status"] == "True")
    })
}

#[tokio::main]
async fn main() {
    let env = testing::env();
    let client = env.client().await;
    say("Installing the CRDs and the demo namespace");
    testing::install_crds(&client).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace");
    let _ = namespaces.create(&PostParams::default(), &ns).await;

    say("AWS (emulator): orders-db in us-east-1 keeps backups 1 day and replicates nowhere");
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in("us-east-1", &account).await);
    testing::create_instance(&rds, "orders-db", 1).await;
    let config = env.aws_config("us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name("github-backups").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");

    say(&format!("GitHub (fake): {REPO} has no {WORKFLOW}"));
    let github = GitHubFake::start().await;
    github.add_repo(REPO, "main");
    let slack = SlackFake::start().await;

    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), NS);
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), NS);
    let suffix = &account[..6];
    let (db_name, repo_name) = (format!("orders-{suffix}"), format!("marketplace-{suffix}"));
    let db: BackedUpDatabase = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "metadata": {"name": db_name},
        "spec": {"instance": {"identifier": "orders-db", "region": "us-east-1", "roleArn": testing::role_arn(&account)}},
    }))
    .expect("db");
    let repo: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository", "metadata": {"name": repo_name},
        "spec": {"repository": REPO, "storage": {"bucket": bucket}},
    }))
    .expect("repo");
    say("kubectl apply: a BackedUpDatabase and a BackedUpRepository");
    dbs.create(&PostParams::default(), &db).await.expect("create db");
    repos
        .create(&PostParams::default(), &repo)
        .await
        .expect("create repo");
    kubectl_get();

    say("Starting the controller");
    let timing = Timing {
        resync: Duration::from_secs(5),
        settle: Duration::from_secs(1),
        backoff_base: Duration::from_millis(500),
    };
    let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
    let aws = env.aws_clients().await;
    let rds_adapter = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
    let evidence_s3 = aws
        .for_scope(&backup_warden::aws::Scope::new(None, "us-east-1"))
        .await
        .s3;
    let evidence_bucket = testing::unique_name("evidence").to_lowercase();
    evidence_s3
        .create_bucket()
        .bucket(&evidence_bucket)
        .send()
        .await
        .expect("evidence bucket");
    let ctx = env
        .context_with(
            rds_adapter,
            aws,
            Policy::default(),
            timing,
            Some(notifier.clone()),
        )
        .await;
    // Evidence for auditors: every transition and action, and a daily attestation.
    let mut ctx = Arc::into_inner(ctx).expect("the only reference");
    ctx.evidence = evidence::EvidenceLog::open(
        &evidence::Settings {
            spool_dir: None,
            spool_max_bytes: 64 << 20,
        },
        evidence::Controller {
            version: env!("CARGO_PKG_VERSION").into(),
            replica: "demo".into(),
        },
        ctx.metrics.clone(),
    )
    .expect("evidence log");
    let ctx = Arc::new(ctx);
    let evidence_target = evidence::upload::Destination {
        s3: evidence_s3.clone(),
        bucket: evidence_bucket.clone(),
        prefix: EVIDENCE_PREFIX.into(),
    };
    let _databases = RunningController::start(ctx.clone(), NS);
    let reporters = backup_warden::controller::context::Reporters {
        metrics: ctx.metrics.clone(),
        notifier: notifier.clone(),
        evidence: ctx.evidence.clone(),
    };
    let (repo_ctx, writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        RepositoryPolicy::default(),
        timing,
        Some(reporters),
    )
    .await;
    let _repositories = RunningRepoController::start(repo_ctx, writer, NS);

    let mut merged = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A reviewer merges the pull request; GitHub Actions then runs the workflow, which
        // uploads a backup (both simulated here).
        if !merged && let Some(pr) = github.pull_requests(REPO).into_iter().find(|p| p.state == "open") {
            say(&format!(
                "backup-warden opened {}; a reviewer merges it and the workflow runs",
                pr.html_url
            ));
            github.merge_pull_request(REPO, pr.number);
            github.add_run(REPO, WORKFLOW, Some("success"), &Timestamp::now().to_string());
            s3.put_object()
                .bucket(&bucket)
                .key(format!("{REPO}/{}.tar.gz", Timestamp::now().as_second()))
                .body(b"backup".to_vec().into())
                .send()
                .await
                .expect("backup object");
            merged = true;
        }
        kubectl_get();
        if ready(&dbs, &db_name).await && ready(&repos, &repo_name).await {
            break;
        }
    }

    say("Someone lowers the retention of orders-db to 1 day in the AWS console");
    rds.modify_db_instance()
        .db_instance_identifier("orders-db")
        .backup_retention_period(1)
        .send()
        .await
        .expect("drift");
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = rds
            .describe_db_instances()
            .db_instance_identifier("orders-db")
            .send()
            .await
            .expect("describe");
        let retention = out.db_instances()[0]
            .backup_retention_period()
            .unwrap_or_default();
        println!("retention of orders-db in AWS: {retention} days");
        if retention == 7 {
            say("Healed within one resync");
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    kubectl_get();

    say("The Slack messages backup-warden sent");
    for message in slack.messages() {
        println!("- {}", message["text"].as_str().unwrap_or_default());
    }
    say("Drift metrics (/metrics)");
    let drift: Vec<String> = ctx
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("backup_warden_ready") || l.starts_with("backup_warden_backup_age_seconds"))
        .map(str::to_string)
        .collect();
    if drift.is_empty() {
        println!("(none: every check passes; a drift series exists only while a check fails)");
    }
    for line in drift {
        println!("{line}");
    }
    say("Evidence for the auditor: the records in S3, the report and the data-flow map");
    evidence::upload::flush(&ctx.evidence, &evidence_target, None)
        .await
        .expect("upload the evidence");
    let today = evidence::day(Timestamp::now());
    let out = std::env::temp_dir().join("backup-warden-demo");
    std::fs::create_dir_all(&out).expect("output directory");
    let html = out.join("backup-evidence-demo.html");
    let report = backup_warden::auditor::command::report(backup_warden::auditor::command::ReportRequest {
        from: today,
        to: today,
        bucket: evidence_bucket.clone(),
        prefix: EVIDENCE_PREFIX.into(),
        s3: evidence_s3,
        live: backup_warden::auditor::command::Live::Never,
        concurrency: 8,
        html: html.clone(),
        json: None,
    })
    .await
    .expect("report");
    println!(
        "{} records in s3://{evidence_bucket}/{EVIDENCE_PREFIX}; {}",
        report.records, report.tamper_evidence.statement
    );
    for r in &report.resources {
        let heals: Vec<String> = r
            .episodes
            .iter()
            .map(|e| match e.heal_seconds {
                Some(s) => format!("{} healed in {s:.2} s", e.check),
                None => format!("{} still open", e.check),
            })
            .collect();
        println!("- {}/{}: {}", r.namespace, r.name, heals.join(", "));
    }
    let map = out.join("estate-demo.svg");
    std::fs::write(&map, backup_warden::estate::svg::render(&report.estate)).expect("map");
    println!("report: {}\nmap:    {}", html.display(), map.display());
    say("Done: both objects Ready, the drift healed; the controller stops with the demo");
}
