//! Restore drills end to end against the emulator: a replicated database's backups are
//! restored in the destination region to a temporary instance that becomes available and is
//! deleted, status says how long it took and how old the data was; a controller killed
//! mid-drill leaves an instance the next start removes; nothing to restore is reported once,
//! not retried in a loop; Audit runs no drill.

use std::{sync::Arc, time::Duration};

use crate::support;
use backup_warden::{
    api::{BackedUpDatabase, ConditionType},
    aws::{AwsClients, rds::SdkRds},
    controller::Context,
    drill::database::{Settings, run},
    policy::database::Policy,
};
use backup_warden_testing::{self as testing, RunningController, condition, wait_for};
use kube::{
    Api,
    api::{PostParams, ResourceExt},
};
use serde_json::json;

const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// A compliant replicated instance, and its object with drills every `every`.
async fn replicated(account: &str, instance: &str, mode: &str, every: &str) -> BackedUpDatabase {
    let drill =
        json!({"restoreDrill": {"every": every, "instanceClass": "db.t3.micro", "maxDuration": "10m"}});
    support::replicated_database(account, (instance, instance), 7, mode, drill).await
}

fn drill_object(
    account: &str,
    instance: &str,
    mode: &str,
    every: &str,
    key: Option<&str>,
) -> BackedUpDatabase {
    let replication = match key {
        Some(key) => json!({"kmsKey": {"arn": key}}),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase", "metadata": {"name": instance},
        "spec": {"mode": mode, "instance": {"identifier": instance, "region": SOURCE, "roleArn": testing::role_arn(account)},
                 "replication": replication,
                 "restoreDrill": {"every": every, "instanceClass": "db.t3.micro", "maxDuration": "10m"}},
    }))
    .expect("object")
}

/// The emulator's restores take `seconds` to become available (0: at once).
fn restore_delay(seconds: u64) {
    let transition = if seconds == 0 {
        json!({"progression": "immediate"})
    } else {
        json!({"progression": "time", "seconds": seconds})
    };
    let (status, body) = testing::env().emulator_post(
        "/moto-api/state-manager/set-transition",
        &json!({"model_name": "rds::restored-db-instance", "transition": transition}),
    );
    assert!(status < 300, "{status} {body}");
}

async fn context(aws: Arc<AwsClients>) -> Arc<Context> {
    let rds = Arc::new(SdkRds { clients: aws.clone() });
    testing::env()
        .context_with(rds, aws, Policy::default(), testing::fast_timing(), None)
        .await
}

fn start_drills(
    ctx: &Arc<Context>,
    aws: &Arc<AwsClients>,
) -> (tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = Settings {
        per_region: 1,
        tick: Duration::from_millis(200),
        sweep: Duration::from_secs(60),
    };
    let rds = Arc::new(SdkRds { clients: aws.clone() });
    (tokio::spawn(run(ctx.clone(), rds, settings, stopped)), stop)
}

/// The drill instances in the destination: (identifier, status, tag).
async fn drill_instances(rds: &aws_sdk_rds::Client) -> Vec<(String, String, Option<String>)> {
    let out = rds.describe_db_instances().send().await.expect("describe");
    out.db_instances()
        .iter()
        .filter(|db| {
            db.db_instance_identifier()
                .is_some_and(|id| id.starts_with("bw-drill-"))
        })
        .map(|db| {
            let tag = db
                .tag_list()
                .iter()
                .find(|t| t.key() == Some("backupwarden.io/restore-drill"))
                .and_then(|t| t.value().map(str::to_string));
            (
                db.db_instance_identifier().unwrap_or_default().to_string(),
                db.db_instance_status().unwrap_or_default().to_string(),
                tag,
            )
        })
        .collect()
}

/// Changes `spec.restoreDrill` and waits for the next drill to end (one failed, when
/// `after` is None; any ending after it otherwise).
async fn next_drill(
    dbs: &Api<BackedUpDatabase>,
    drill: serde_json::Value,
    after: Option<k8s_openapi::jiff::Timestamp>,
) -> backup_warden::api::drill::DrillResult {
    dbs.patch(
        "ledger-db",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"restoreDrill": drill}})),
    )
    .await
    .expect("patch");
    let last = |db: &BackedUpDatabase| db.status.as_ref()?.restore_drill.as_ref()?.last.clone();
    let db = wait_for(dbs, "ledger-db", Duration::from_secs(60), |db| {
        last(db).is_some_and(|l| match after {
            Some(after) => l.finished_at.0 > after,
            None => l.result == "Failed",
        })
    })
    .await;
    last(&db).expect("last")
}

fn last_result(db: &BackedUpDatabase) -> Option<String> {
    db.status
        .as_ref()?
        .restore_drill
        .as_ref()?
        .last
        .as_ref()
        .map(|l| l.result.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_restores_and_deletes_a_killed_one_is_removed_at_the_next_start_an_overlong_one_is_stopped() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "drill").await;
    let account = testing::unique_account();
    let destination = aws_sdk_rds::Client::new(&env.aws_config_in(DESTINATION, &account).await);
    // Every 30 s: the first drill is due within 30 s of the object's creation.
    let object = replicated(&account, "ledger-db", "Enforce", "30s").await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    restore_delay(3);
    let aws = env.aws_clients().await;
    let ctx = context(aws.clone()).await;
    let controller = RunningController::start(ctx.clone(), &namespace);
    let (drills, stop) = start_drills(&ctx, &aws);
    dbs.create(&PostParams::default(), &object).await.expect("create");

    // The temporary instance appears in the destination, tagged, restoring.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let found = drill_instances(&destination).await;
        if let Some(found) = found.into_iter().next() {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no drill instance appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        seen.2.as_deref(),
        Some(format!("{namespace}/ledger-db").as_str()),
        "tagged: {seen:?}"
    );
    assert_eq!(seen.1, "creating");
    let restored = destination
        .describe_db_instances()
        .db_instance_identifier(&seen.0)
        .send()
        .await
        .expect("describe");
    let restored = &restored.db_instances()[0];
    assert_eq!(restored.publicly_accessible(), Some(false), "private");
    assert_eq!(restored.deletion_protection(), Some(false));
    assert_eq!(
        restored.backup_retention_period(),
        Some(0),
        "no backups of its own"
    );

    // Available, deleted, and status says how it went.
    let db = wait_for(&dbs, "ledger-db", Duration::from_secs(60), |db| {
        last_result(db).is_some()
    })
    .await;
    let drill = db
        .status
        .as_ref()
        .and_then(|s| s.restore_drill.clone())
        .expect("drill status");
    let last = drill.last.expect("last");
    assert_eq!(last.result, "Succeeded", "{}", last.message);
    assert!(
        last.duration_seconds.is_some_and(|d| d >= 3),
        "waited for it: {last:?}"
    );
    assert!(
        last.recovery_point_age_seconds
            .is_some_and(|a| (0..600).contains(&a)),
        "{last:?}"
    );
    assert!(drill.running.is_none());
    assert!(drill.last_success_at.is_some());
    assert!(drill.next_at.is_some_and(|n| n.0 > last.started_at.0));
    let gone = drill_instances(&destination).await;
    assert!(
        gone.iter()
            .all(|(id, status, _)| id != &seen.0 || status == "deleting"),
        "the drill instance is deleted: {gone:?}"
    );
    wait_for(&dbs, "ledger-db", Duration::from_secs(30), |db| {
        condition(db, ConditionType::RestoreVerified).is_some_and(|c| c.0 == "True")
    })
    .await;
    // One restore, one delete: nothing retried, nothing left.
    let calls = aws.calls();
    assert_eq!(calls.calls("RestoreDBInstanceToPointInTime"), 1);
    assert_eq!(calls.calls("DeleteDBInstance"), 1);
    println!(
        "drill: {} s restoring, recovery point {} s old; calls: {}",
        last.duration_seconds.unwrap_or_default(),
        last.recovery_point_age_seconds.unwrap_or_default(),
        calls.to_json()
    );

    // The next drill is killed mid-way (with the controller); a new start deletes its instance.
    restore_delay(600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let running = loop {
        let db = dbs.get("ledger-db").await.expect("get");
        let running = db.status.and_then(|s| s.restore_drill).and_then(|d| d.running);
        if let Some(running) = running {
            break running;
        }
        assert!(tokio::time::Instant::now() < deadline, "no second drill started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drills.abort();
    drop(stop);
    controller.kill();
    let leftover = running.instance.clone().expect("instance");
    assert!(
        drill_instances(&destination)
            .await
            .iter()
            .any(|(id, status, _)| id == &leftover && status == "creating"),
        "the killed drill left its instance"
    );
    restore_delay(0);
    let ctx = context(aws.clone()).await;
    let _controller = RunningController::start(ctx.clone(), &namespace);
    let (drills, _stop) = start_drills(&ctx, &aws);
    let db = wait_for(&dbs, "ledger-db", Duration::from_secs(30), |db| {
        last_result(db).as_deref() == Some("Interrupted")
    })
    .await;
    let after = drill_instances(&destination).await;
    assert!(
        after
            .iter()
            .all(|(id, status, _)| id != &leftover || status == "deleting"),
        "the next start removed it: {after:?}"
    );
    assert!(
        db.status
            .and_then(|s| s.restore_drill)
            .and_then(|d| d.running)
            .is_none()
    );

    // A drill longer than maxDuration is stopped: its instance deleted, the drill failed.
    restore_delay(600);
    let last = next_drill(&dbs, json!({"maxDuration": "2s"}), None).await;
    assert_eq!(last.result, "Failed");
    assert!(last.message.contains("maxDuration 2s"), "{}", last.message);
    let after = drill_instances(&destination).await;
    assert!(
        after.iter().all(|(_, status, _)| status == "deleting"),
        "the overdue drill's instance is deleted: {after:?}"
    );

    // With a probe: the restored instance is available, the probe tries its endpoint (the
    // emulator's names resolve nowhere), the drill fails saying so, and the instance goes.
    restore_delay(0);
    let probe = json!({"maxDuration": "10m", "probe": {"timeout": "1s"}});
    let last = next_drill(&dbs, probe, Some(last.finished_at.0)).await;
    assert_eq!(last.result, "Failed");
    assert!(
        last.message.contains("was restored but the probe failed"),
        "{}",
        last.message
    );
    let after = drill_instances(&destination).await;
    assert!(
        after.iter().all(|(_, status, _)| status == "deleting"),
        "the probed instance is deleted: {after:?}"
    );
    drills.abort();
    restore_delay(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_to_restore_is_reported_once_and_told_and_audit_or_suspend_run_no_drill() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "drill-none").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    // Backups on, but replication can never start here: the destination is the policy's,
    // the quota says no room.
    testing::create_instance(&rds, "orphan-db", 7).await;
    testing::create_instance(&rds, "audited-db", 7).await;
    let (status, body) = env.emulator_post(
        "/moto-api/backup-warden/quota",
        &json!({"account_id": account, "region": DESTINATION, "replications": 0}),
    );
    assert!(status < 300, "{status} {body}");
    testing::create_instance(&rds, "paused-db", 7).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let aws = env.aws_clients().await;
    let slack = backup_warden_testing::slack_fake::SlackFake::start().await;
    let (notifier, _sender) =
        backup_warden::report::slack::SlackNotifier::start(slack.url(), Default::default());
    let ctx = env
        .context_with(
            Arc::new(SdkRds { clients: aws.clone() }),
            aws.clone(),
            Policy::default(),
            testing::fast_timing(),
            Some(notifier),
        )
        .await;
    let _controller = RunningController::start(ctx.clone(), &namespace);
    let (drills, _stop) = start_drills(&ctx, &aws);
    for (name, mode) in [
        ("orphan-db", "Enforce"),
        ("audited-db", "Audit"),
        ("paused-db", "Enforce"),
    ] {
        let mut object = drill_object(&account, name, mode, "2s", None);
        object.spec.suspend = name == "paused-db";
        dbs.create(&PostParams::default(), &object).await.expect("create");
    }
    let db = wait_for(&dbs, "orphan-db", Duration::from_secs(60), |db| {
        last_result(db).is_some()
    })
    .await;
    let last = db
        .status
        .and_then(|s| s.restore_drill)
        .and_then(|d| d.last)
        .expect("last");
    assert_eq!(last.result, "Failed");
    assert!(last.message.starts_with("nothing to restore"), "{}", last.message);
    // Tried again at the next interval, not in a loop: a few ticks later, still one failure
    // (or two, one interval later), and no restore was asked of RDS.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failed = ctx
        .metrics
        .restore_drills
        .with_label_values(&["BackedUpDatabase", "failed"])
        .get();
    assert!((1..=2).contains(&failed), "failed drills: {failed}");
    assert_eq!(aws.calls().calls("RestoreDBInstanceToPointInTime"), 0);
    for name in ["audited-db", "paused-db"] {
        let db = dbs.get(name).await.expect("get");
        assert!(
            db.status
                .as_ref()
                .and_then(|s| s.restore_drill.as_ref())
                .is_none(),
            "Audit and suspend run no drill: {} {:?}",
            db.name_any(),
            db.status
        );
    }
    // Slack heard of the failed drill.
    assert!(slack.wait_for_messages(1, Duration::from_secs(10)).await);
    let told: Vec<String> = slack
        .messages()
        .iter()
        .map(|m| m.to_string())
        .filter(|m| m.contains("RestoreDrill"))
        .collect();
    assert!(
        told.iter()
            .any(|m| m.contains("orphan-db") && m.contains("nothing to restore")),
        "{told:?}"
    );
    drills.abort();
}

/// A git repository with two commits on main, bundled as the backup workflow bundles it;
/// returns the bundle's bytes and main's commit.
fn git_bundle() -> (Vec<u8>, String) {
    let dir = std::env::temp_dir().join(testing::unique_name("drill-repo"));
    std::fs::create_dir_all(&dir).expect("dir");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "user.name=backup",
                "-c",
                "user.email=backup@example.com",
            ])
            .args(args)
            .current_dir(&dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    for (n, text) in ["first", "second"].iter().enumerate() {
        std::fs::write(dir.join("README.md"), text).expect("write");
        git(&["add", "README.md"]);
        git(&["commit", "-q", "-m", &format!("commit {n}")]);
    }
    git(&["bundle", "create", "-q", "repo.bundle", "--all"]);
    let head = git(&["rev-parse", "main"]);
    let bytes = std::fs::read(dir.join("repo.bundle")).expect("bundle");
    let _ = std::fs::remove_dir_all(&dir);
    (bytes, head)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_drill_verifies_a_real_bundle_and_fails_a_cut_or_altered_one_saying_why() {
    use backup_warden::api::BackedUpRepository;
    use backup_warden_testing::{RunningRepoController, github_fake::GitHubFake};
    const REPO: &str = "narrative-io/ledger";
    const WORKFLOW: &str = ".github/workflows/backup-daily.yml";
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "drill-repo").await;
    let aws = env.aws_clients().await;
    let s3 = aws
        .for_scope(&backup_warden::aws::Scope::new(None, SOURCE))
        .await
        .s3;
    let bucket = testing::unique_name("backups").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let (bundle, head) = git_bundle();
    let put = |key: String, body: Vec<u8>| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .expect("put backup");
        }
    };
    put(format!("{REPO}/2026-12-01T00-00-00Z.bundle"), bundle.clone()).await;
    let github = GitHubFake::start().await;
    github.add_repo(REPO, "main");
    github.put_file(REPO, "main", WORKFLOW, "name: backup-daily\n");
    github.add_run_of(
        REPO,
        WORKFLOW,
        Some("success"),
        &k8s_openapi::jiff::Timestamp::now().to_string(),
        Some(&head),
    );
    let (ctx, writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        Default::default(),
        testing::fast_timing(),
        None,
    )
    .await;
    let _controller = RunningRepoController::start(ctx.clone(), writer, &namespace);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let drills = tokio::spawn(backup_warden::drill::repository::run(
        ctx.clone(),
        aws.clone(),
        Duration::from_millis(200),
        stopped,
    ));
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository", "metadata": {"name": "ledger"},
        "spec": {"repository": REPO, "storage": {"bucket": bucket}, "restoreDrill": {"every": "2s"}},
    }))
    .expect("object");
    repos
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let last = |repo: &BackedUpRepository| {
        repo.status
            .as_ref()
            .and_then(|s| s.restore_drill.as_ref())
            .and_then(|d| d.last.clone())
    };
    let verified = wait_for(&repos, "ledger", Duration::from_secs(30), |r| {
        last(r).is_some_and(|l| l.result == "Succeeded")
    })
    .await;
    let message = last(&verified).expect("last").message;
    assert!(
        message.contains("intact git bundle") && message.contains(&head),
        "{message}"
    );

    // A newer backup cut short, then one with a byte altered: each fails, saying why.
    let mut cut = bundle.clone();
    cut.truncate(bundle.len() - 30);
    let mut altered = bundle.clone();
    let middle = bundle.len() - 40;
    altered[middle] ^= 0xff;
    for (n, (body, why)) in [(cut, "would not restore"), (altered, "would not restore")]
        .into_iter()
        .enumerate()
    {
        put(format!("{REPO}/2026-12-0{}T00-00-00Z.bundle", n + 2), body).await;
        let failed = wait_for(&repos, "ledger", Duration::from_secs(30), |r| {
            last(r)
                .is_some_and(|l| l.result == "Failed" && l.message.contains(&format!("0{}T00-00-00Z", n + 2)))
        })
        .await;
        let message = last(&failed).expect("last").message;
        assert!(message.contains(why), "{message}");
        assert!(
            message.contains("checksum") || message.contains("truncated") || message.contains("corrupt"),
            "says what is wrong: {message}"
        );
    }
    let _ = stop.send(true);
    let _ = drills.await;
}
