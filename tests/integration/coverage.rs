//! Coverage: the RDS instances of an account that nobody declared, found, counted, listed,
//! announced once each and closed, against the emulator.

use std::{sync::Arc, time::Duration};

use aws_sdk_rds::types::Tag;
use backup_warden::{
    api::{ConditionType, coverage::BackupCoverage},
    controller::{Context, Timing, coverage},
    policy::database::Policy,
    report::slack::{SlackNotifier, SlackSettings},
};
use backup_warden_testing::{self as testing, slack_fake::SlackFake, wait_for};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::watcher,
};
use serde_json::json;

use crate::support::{self, SOURCE};

const EXEMPT_REASON: &str = "decommissioned in Q1 (OPS-12)";

/// The coverage controller for the one coverage `name`, as a replica would run it.
fn start(ctx: Arc<Context>, name: &str) -> tokio::task::JoinHandle<()> {
    let only = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(coverage::run(ctx, None, only, std::future::pending()))
}

/// A coverage of the world's account in the source region, with `extra` in its spec.
async fn create_coverage(world: &support::World, extra: serde_json::Value) -> (String, Api<BackupCoverage>) {
    let name = format!("cov-{}", world.namespace);
    let coverages: Api<BackupCoverage> = Api::all(world.env.client().await);
    let mut spec = json!({
        "namespace": world.namespace,
        "databases": {"accounts": [{"roleArn": testing::role_arn(&world.account), "regions": [SOURCE]}]},
    });
    spec.as_object_mut()
        .expect("object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    let object: BackupCoverage = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("coverage");
    coverages
        .create(&PostParams::default(), &object)
        .await
        .expect("create coverage");
    (name, coverages)
}

/// Merges `patch` into the coverage (a change of mode, say).
async fn switch(coverages: &Api<BackupCoverage>, name: &str, patch: serde_json::Value) {
    let params = kube::api::PatchParams::default();
    coverages
        .patch(name, &params, &kube::api::Patch::Merge(&patch))
        .await
        .expect("patch the coverage");
}

fn counts(c: &BackupCoverage) -> Option<(i32, i32, i32, i32)> {
    let d = c.status.as_ref()?.databases.as_ref()?;
    Some((d.discovered, d.declared, d.exempt, d.undeclared))
}

fn undeclared(c: &BackupCoverage) -> Vec<String> {
    c.status
        .as_ref()
        .and_then(|s| s.databases.as_ref())
        .map(|d| d.undeclared_resources.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

fn ready(c: &BackupCoverage) -> Option<(String, String)> {
    let conditions = &c.status.as_ref()?.conditions;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((ready.status.to_string(), ready.reason.to_string()))
}

#[tokio::test]
async fn undeclared_instances_are_counted_listed_and_announced_once() {
    let world = support::world("coverage").await;
    // Four instances: one declared, one tagged exempt with its reason, one listed exempt by
    // the coverage, one nobody looked at.
    for id in ["orders-db", "legacy-db", "reports-db", "scratch-db"] {
        let mut create = world
            .rds_source
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("not-a-secret-1")
            .backup_retention_period(7);
        if id == "legacy-db" {
            create = create.tags(
                Tag::builder()
                    .key("backupwarden.io/exempt")
                    .value(EXEMPT_REASON)
                    .build(),
            );
        }
        create.send().await.unwrap_or_else(|e| panic!("create {id}: {e}"));
    }
    world.apply("orders", "orders-db", json!({"mode": "Audit"})).await;

    let (name, coverages) = create_coverage(
        &world,
        json!({"exemptions": {"databases": [{
            "instance": {"identifier": "Reports-DB", "region": SOURCE, "roleArn": testing::role_arn(&world.account)},
            "reason": "rebuilt nightly from the warehouse",
        }]}}),
    )
    .await;

    let slack = SlackFake::start().await;
    let timing = Timing {
        resync: Duration::from_secs(6),
        ..testing::fast_timing()
    };
    let context = || async {
        let aws = world.env.aws_clients().await;
        let rds = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
        let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
        world
            .env
            .context_with(rds, aws, Policy::default(), timing, Some(notifier))
            .await
    };
    let ctx = context().await;
    let running = start(ctx.clone(), &name);

    let found = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((4, 1, 2, 1))
    })
    .await;
    assert_eq!(undeclared(&found), ["scratch-db"]);
    // The exempt ones are shown, each with its reason: the tag's value, the listed one's.
    let databases = found
        .status
        .as_ref()
        .and_then(|s| s.databases.as_ref())
        .expect("counted");
    let exempt: Vec<(String, String)> = databases
        .exempt_resources
        .iter()
        .map(|e| (e.name.clone(), e.reason.clone()))
        .collect();
    assert_eq!(
        exempt,
        [
            ("legacy-db".to_string(), EXEMPT_REASON.to_string()),
            (
                "reports-db".to_string(),
                "rebuilt nightly from the warehouse".to_string()
            ),
        ]
    );
    assert_eq!(ready(&found), Some(("False".into(), "Uncovered".into())));
    let listed = &databases.undeclared_resources[0];
    assert_eq!(
        (listed.account.as_str(), listed.region.as_str()),
        (world.account.as_str(), SOURCE)
    );
    assert!(
        slack.wait_for_messages(1, Duration::from_secs(10)).await,
        "no message for the gap"
    );
    let first = slack.messages()[0].to_string();
    assert!(first.contains("scratch-db"), "{first}");
    for other in ["legacy-db", "reports-db", "orders-db"] {
        assert!(!first.contains(other), "{first}");
    }

    // The metric says the same.
    let text = ctx.metrics.render();
    let series = format!(
        "backup_warden_coverage_resources{{coverage=\"{name}\",kind=\"BackedUpDatabase\",standing=\"undeclared\"}} 1"
    );
    assert!(text.contains(&series), "{series} not in the metrics");

    // A new instance while the controller runs: reported within one resync, announced once.
    testing::create_instance(&world.rds_source, "new-db", 7).await;
    let created = std::time::Instant::now();
    let found = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((5, 1, 2, 2))
    })
    .await;
    assert!(
        // One resync, and the time a scan takes (listing every object, on a loaded machine).
        created.elapsed() <= timing.resync + Duration::from_secs(4),
        "found after {:?}",
        created.elapsed()
    );
    // Oldest first.
    assert_eq!(undeclared(&found), ["scratch-db", "new-db"]);
    assert!(
        slack.wait_for_messages(2, Duration::from_secs(10)).await,
        "no message for the new gap"
    );
    tokio::time::sleep(timing.resync * 2).await;
    let messages = slack.messages();
    assert_eq!(messages.len(), 2, "one message per gap: {messages:?}");
    assert!(messages[1].to_string().contains("new-db"));

    // A restart remembers what was announced: nothing new is said.
    running.abort();
    let ctx = context().await;
    let running = start(ctx.clone(), &name);
    tokio::time::sleep(timing.resync * 2).await;
    assert_eq!(slack.messages().len(), 2, "a restart announces nothing again");

    // Declaring both closes the gaps: Ready, and one message per closed gap.
    world
        .apply("scratch", "scratch-db", json!({"mode": "Audit"}))
        .await;
    world.apply("new", "new-db", json!({"mode": "Audit"})).await;
    let covered = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((5, 3, 2, 0))
    })
    .await;
    assert_eq!(ready(&covered), Some(("True".into(), "Covered".into())));
    assert!(undeclared(&covered).is_empty());
    assert!(
        slack.wait_for_messages(4, Duration::from_secs(10)).await,
        "no message for the closed gaps"
    );
    let closed = slack.messages()[2..]
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>();
    assert!(closed.iter().any(|m| m.contains("scratch-db")) && closed.iter().any(|m| m.contains("new-db")));

    // A quiet scan writes no status.
    let writes = || {
        ctx.metrics
            .status_writes
            .with_label_values(&[coverage::KIND])
            .get()
    };
    let before = writes();
    tokio::time::sleep(timing.resync * 2).await;
    assert_eq!(writes(), before, "a quiet scan writes nothing");

    running.abort();
    coverages
        .delete(&found.name_any(), &DeleteParams::default())
        .await
        .expect("delete coverage");
}

/// `backup-warden <args>` against the emulator, without a cluster.
fn binary(args: &[&str], files: &[&std::path::Path]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_backup-warden"));
    command
        .args(args)
        .args(["--aws-endpoint-url", &testing::env().aws_endpoint])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("GITHUB_TOKEN");
    for file in files {
        command.arg("-f").arg(file);
    }
    command.output().expect("run backup-warden")
}

#[tokio::test]
async fn exported_manifests_applied_close_every_gap() {
    let world = support::world("coverage-export").await;
    let client = world.env.client().await;
    let role = testing::role_arn(&world.account);
    for id in ["orders-db", "Billing-DB", "scratch-db"] {
        testing::create_instance(&world.rds_source, id, 7).await;
    }
    world.apply("orders", "orders-db", json!({"mode": "Audit"})).await;

    // What Git holds: the coverage and the one declared database.
    let name = format!("cov-{}", world.namespace);
    let coverage = json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": name},
        "spec": {"namespace": world.namespace,
                 "databases": {"accounts": [{"roleArn": role, "regions": [SOURCE]}]}},
    });
    let declared = json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": "orders", "namespace": world.namespace},
        "spec": {"mode": "Audit", "instance": {"identifier": "orders-db", "region": SOURCE, "roleArn": role}},
    });
    let dir = std::env::temp_dir().join(testing::unique_name("coverage-export"));
    std::fs::create_dir_all(&dir).expect("dir");
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    std::fs::write(
        repo.join("coverage.yaml"),
        serde_json::to_string(&coverage).unwrap(),
    )
    .expect("write");
    std::fs::write(
        repo.join("orders.yaml"),
        serde_json::to_string(&declared).unwrap(),
    )
    .expect("write");

    // check --coverage: one drift row per undeclared instance, exit 1.
    let out = binary(&["check", "--coverage"], &[&repo]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let undeclared: Vec<&str> = table.lines().filter(|l| l.contains("Undeclared")).collect();
    assert_eq!(undeclared.len(), 2, "{table}");
    // RDS keeps identifiers in lower case, whatever case they were created with.
    assert!(
        table.contains("billing-db") && table.contains("scratch-db"),
        "{table}"
    );

    // coverage export: the manifests that declare them, in the coverage's namespace.
    let out = binary(&["coverage", "export", "--mode", "Audit"], &[&repo]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = String::from_utf8(out.stdout).expect("utf-8");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&exported).expect("a YAML stream");
    let mut names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["billing-db", "scratch-db"], "{exported}");
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == world.namespace.as_str()
                && d["spec"]["mode"] == "Audit"
                && d["spec"]["instance"]["roleArn"] == role.as_str())
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 in scope, 1 declared, 0 exempt, 2 undeclared"));

    // Committed beside the rest, check --coverage is content; applied, the coverage is Ready.
    std::fs::write(repo.join("exported.yaml"), &exported).expect("write");
    let out = binary(&["check", "--coverage"], &[&repo]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!table.contains("Undeclared"), "{table}");
    assert!(table.contains("Covered"), "{table}");
    let applied = world
        .env
        .kubectl(&["apply", "-f", repo.join("exported.yaml").to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let coverages: Api<BackupCoverage> = Api::all(client.clone());
    let object: BackupCoverage = serde_json::from_value(coverage).expect("coverage");
    coverages
        .create(&PostParams::default(), &object)
        .await
        .expect("create coverage");
    let ctx = world.env.context(Policy::default(), testing::fast_timing()).await;
    let running = start(ctx, &name);
    let covered = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((3, 3, 0, 0))
    })
    .await;
    assert_eq!(ready(&covered), Some(("True".into(), "Covered".into())));

    running.abort();
    coverages
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete coverage");
    let _ = std::fs::remove_dir_all(dir);
}

/// The objects a coverage created in `namespace`.
async fn adopted(dbs: &Api<backup_warden::api::BackedUpDatabase>, coverage: &str) -> Vec<String> {
    let selector = format!("{}={coverage}", backup_warden::controller::adopt::COVERAGE_LABEL);
    let list = dbs
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .expect("list");
    let mut names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn adopt_declares_each_undeclared_instance_once_and_removes_it_after_its_grace() {
    let world = support::world("coverage-adopt").await;
    for id in ["orders-db", "scratch-db"] {
        testing::create_instance(&world.rds_source, id, 7).await;
    }
    // A person's object: never modified, never deleted by the coverage.
    world.apply("orders", "orders-db", json!({"mode": "Audit"})).await;
    let person = world.dbs.get("orders").await.expect("get");

    let (name, coverages) = create_coverage(&world, json!({"adopt": {"gracePeriod": "3s"}})).await;

    let timing = Timing {
        resync: Duration::from_secs(2),
        ..testing::fast_timing()
    };
    let ctx = world.env.context(Policy::default(), timing).await;
    // The databases of the namespace are reconciled as in production.
    let _databases = testing::RunningController::start(ctx.clone(), &world.namespace);
    let running = start(ctx.clone(), &name);
    wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((2, 1, 0, 1))
    })
    .await;
    assert!(
        adopted(&world.dbs, &name).await.is_empty(),
        "Report creates nothing"
    );

    // Adopt: exactly one object for the undeclared instance, which reaches Ready.
    let patch = json!({"spec": {"mode": "Adopt"}});
    switch(&coverages, &name, patch).await;
    let covered = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        counts(c) == Some((2, 2, 0, 0))
    })
    .await;
    assert_eq!(ready(&covered), Some(("True".into(), "Covered".into())));
    assert_eq!(covered.status.unwrap().databases.unwrap().adopted, 1);
    assert_eq!(adopted(&world.dbs, &name).await, ["scratch-db"]);
    let scratch = wait_for(
        &world.dbs,
        "scratch-db",
        Duration::from_secs(90),
        support::is("True", ConditionType::Ready),
    )
    .await;
    assert_eq!(
        scratch.spec.instance.role_arn.as_deref(),
        Some(testing::role_arn(&world.account).as_str())
    );
    let owner = &scratch.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("BackupCoverage", name.as_str())
    );

    // A restart, then two replicas at once: still one object each, the person's untouched.
    running.abort();
    let first = start(ctx.clone(), &name);
    let second = start(world.env.context(Policy::default(), timing).await, &name);
    tokio::time::sleep(timing.resync * 3).await;
    assert_eq!(adopted(&world.dbs, &name).await, ["scratch-db"]);
    let names: Vec<String> = world
        .dbs
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let now = world.dbs.get("orders").await.expect("get");
    assert_eq!(
        (&now.spec, &now.metadata.labels, &now.metadata.owner_references),
        (
            &person.spec,
            &person.metadata.labels,
            &person.metadata.owner_references
        ),
        "a person's object is not modified"
    );
    second.abort();

    // Both instances gone: the adopted object reports InstanceNotFound and goes after the
    // grace period; the person's object stays.
    for id in ["orders-db", "scratch-db"] {
        world
            .rds_source
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
            .expect("delete instance");
    }
    let gone = std::time::Instant::now();
    let deadline = Duration::from_secs(60);
    while !adopted(&world.dbs, &name).await.is_empty() {
        assert!(gone.elapsed() < deadline, "the adopted object was not removed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        gone.elapsed() >= Duration::from_secs(3),
        "removed before its grace period"
    );
    tokio::time::sleep(timing.resync * 2).await;
    assert!(
        world.dbs.get_opt("orders").await.expect("get").is_some(),
        "a person's object is never deleted"
    );

    first.abort();
    coverages
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete coverage");
}

#[tokio::test]
async fn undeclared_repositories_are_found_archived_ones_and_forks_left_out() {
    use backup_warden::api::BackedUpRepository;
    use backup_warden_testing::github_fake::GitHubFake;

    let world = support::world("coverage-repos").await;
    let client = world.env.client().await;
    let github = GitHubFake::start().await;
    let org = testing::unique_name("acme");
    for repo in ["api", "docs", "tools", "old", "copy"] {
        github.add_repo(&format!("{org}/{repo}"), "main");
    }
    github.set_topics(&format!("{org}/docs"), &["no-backup"]);
    github.set_archived(&format!("{org}/old"), true);
    github.set_fork(&format!("{org}/copy"), true);
    // Declared by an object in another namespace than the coverage's: anywhere counts.
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &world.namespace);
    let declare = |repo: String| {
        let repos = repos.clone();
        async move {
            let object: BackedUpRepository = serde_json::from_value(json!({
                "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
                "metadata": {"name": repo.rsplit('/').next().unwrap()},
                "spec": {"repository": repo, "storage": {"bucket": "backups"}},
            }))
            .expect("object");
            repos
                .create(&PostParams::default(), &object)
                .await
                .expect("create BackedUpRepository");
        }
    };
    declare(format!("{org}/api")).await;

    let (name, coverages) = create_coverage(
        &world,
        json!({
            "databases": null,
            "repositories": {"organizations": [org]},
            "exemptions": {"topic": {"name": "no-backup", "reason": "documentation, rebuilt from the wiki"}},
        }),
    )
    .await;
    let slack = SlackFake::start().await;
    let timing = Timing {
        resync: Duration::from_secs(2),
        ..testing::fast_timing()
    };
    let aws = world.env.aws_clients().await;
    let rds = Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
    let (notifier, _sender) = SlackNotifier::start(slack.url(), SlackSettings::default());
    let ctx = world
        .env
        .context_with(rds, aws, Policy::default(), timing, Some(notifier))
        .await;
    let (repo_ctx, _writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        backup_warden::policy::repository::RepositoryPolicy::default(),
        timing,
        None,
    )
    .await;
    let replica = |ctx| {
        let only = watcher::Config::default().fields(&format!("metadata.name={name}"));
        tokio::spawn(coverage::run(
            ctx,
            Some(repo_ctx.github.clone()),
            only,
            std::future::pending(),
        ))
    };
    let running = replica(ctx.clone());

    let repositories = |c: &BackupCoverage| {
        let r = c.status.as_ref()?.repositories.as_ref()?;
        Some((r.discovered, r.declared, r.exempt, r.undeclared))
    };
    let found = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        repositories(c) == Some((3, 1, 1, 1))
    })
    .await;
    let listed = &found
        .status
        .as_ref()
        .unwrap()
        .repositories
        .as_ref()
        .unwrap()
        .undeclared_resources;
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        [format!("{org}/tools")]
    );
    assert_eq!(ready(&found), Some(("False".into(), "Uncovered".into())));
    assert!(
        found.status.as_ref().unwrap().databases.is_none(),
        "no databases asked for"
    );
    assert!(
        slack.wait_for_messages(1, Duration::from_secs(10)).await,
        "no message for the gap"
    );
    assert!(slack.messages()[0].to_string().contains(&format!("{org}/tools")));

    // A new repository: found within a resync; declared ones close the gaps.
    github.add_repo(&format!("{org}/new-svc"), "main");
    wait_for(&coverages, &name, Duration::from_secs(10), |c| {
        repositories(c) == Some((4, 1, 1, 2))
    })
    .await;

    // Adopt, with a template: one BackedUpRepository for each, which closes the gaps.
    let patch = json!({"spec": {"mode": "Adopt", "adopt": {
        "repositoryTemplate": {"mode": "Audit", "storage": {"bucket": "backups"}},
    }}});
    switch(&coverages, &name, patch).await;
    let covered = wait_for(&coverages, &name, Duration::from_secs(30), |c| {
        repositories(c) == Some((4, 3, 1, 0))
    })
    .await;
    assert_eq!(ready(&covered), Some(("True".into(), "Covered".into())));
    let counts = covered.status.as_ref().unwrap().repositories.as_ref().unwrap();
    assert_eq!(counts.adopted, 2);
    let selector = format!("{}={name}", backup_warden::controller::adopt::COVERAGE_LABEL);
    let listed = repos
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .expect("list");
    let mut made: Vec<(String, String)> = listed
        .items
        .into_iter()
        .map(|r| (r.name_any(), r.spec.repository))
        .collect();
    made.sort();
    let want = |n: &str| (n.to_string(), format!("{org}/{n}"));
    assert_eq!(made, [want("new-svc"), want("tools")]);
    assert!(
        slack.wait_for_messages(4, Duration::from_secs(10)).await,
        "one message per gap, opened and closed"
    );
    assert_eq!(slack.messages().len(), 4, "{:?}", slack.messages());

    // A restart, then two replicas at once: still one object per repository.
    running.abort();
    let (first, second) = (replica(ctx.clone()), replica(ctx.clone()));
    tokio::time::sleep(timing.resync * 3).await;
    let again = repos
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .expect("list");
    assert_eq!(
        again.items.len(),
        2,
        "{:?}",
        again.items.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(slack.messages().len(), 4, "nothing announced again");
    first.abort();
    second.abort();
    coverages
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete coverage");
}

#[tokio::test]
async fn repositories_are_checked_and_exported_from_the_manifests_alone() {
    use backup_warden_testing::github_fake::GitHubFake;

    let github = GitHubFake::start().await;
    let org = testing::unique_name("gitops");
    for repo in ["api", "tools", "Web_App.js"] {
        github.add_repo(&format!("{org}/{repo}"), "main");
    }
    let coverage = |template: serde_json::Value| {
        json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
            "metadata": {"name": "company"},
            "spec": {"namespace": "platform", "repositories": {"organizations": [org]}, "adopt": template},
        })
    };
    let declared = json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "api", "namespace": "platform"},
        "spec": {"repository": format!("{org}/api"), "storage": {"bucket": "backups"}},
    });
    let dir = std::env::temp_dir().join(testing::unique_name("coverage-repos-export"));
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |file: &str, doc: &serde_json::Value| {
        std::fs::write(dir.join(file), serde_json::to_string(doc).unwrap()).expect("write")
    };
    write("api.yaml", &declared);
    // Asynchronously: the fake answers from this test's own runtime.
    let run = async |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_backup-warden"));
        command
            .args(args)
            .args(["--github-api-url", &github.base_url()])
            .args(["--aws-endpoint-url", &testing::env().aws_endpoint, "-f"])
            .arg(&dir)
            .env("GITHUB_TOKEN", github.token())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1");
        command.output().await.expect("run backup-warden")
    };

    // Without a template the gaps are found, but a repository's manifest needs a bucket.
    write("coverage.yaml", &coverage(json!({})));
    let out = run(&["check", "--coverage"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let undeclared: Vec<&str> = table.lines().filter(|l| l.contains("Undeclared")).collect();
    assert_eq!(undeclared.len(), 2, "{table}");
    assert!(table.contains(&format!("repository {org}/tools")), "{table}");
    let out = run(&["coverage", "export"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.adopt.repositoryTemplate.storage"));

    // With one: manifests named as Adopt names them, which close the gaps once committed.
    write(
        "coverage.yaml",
        &coverage(json!({"repositoryTemplate": {"storage": {"bucket": "backups"}}})),
    );
    let out = run(&["coverage", "export", "--mode", "Audit"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = String::from_utf8(out.stdout).expect("utf-8");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&exported).expect("a YAML stream");
    let mut made: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap(),
                d["spec"]["repository"].as_str().unwrap(),
            )
        })
        .collect();
    made.sort();
    let (tools, web) = (format!("{org}/tools"), format!("{org}/Web_App.js"));
    assert_eq!(
        made,
        [("tools", tools.as_str()), ("web-app-js", web.as_str())],
        "{exported}"
    );
    assert!(docs.iter().all(|d| d["kind"] == "BackedUpRepository"
        && d["spec"]["storage"]["bucket"] == "backups"
        && d["spec"]["mode"] == "Audit"));
    std::fs::write(dir.join("exported.yaml"), &exported).expect("write");
    let out = run(&["check", "--coverage"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        !table.contains("Undeclared") && table.contains("Covered"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
