//! The BackedUpRepository controller end to end: the real API server, the GitHub fake and
//! the emulator's S3, the controller running in this process.

use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use backup_warden::{
    api::{BackedUpRepository, ConditionType, RepositoryCheck},
    policy::repository::{BRANCH, RepositoryPolicy},
    workflow,
};
use backup_warden_testing::{
    self as testing, RunningRepoController, github_fake::GitHubFake, repo_condition, wait_for,
};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::PostParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);
const PATH: &str = ".github/workflows/backup-daily.yml";

struct World {
    github: GitHubFake,
    repos: Api<BackedUpRepository>,
    namespace: String,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

async fn world(prefix: &str) -> World {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, prefix).await;
    let config = env.aws_config("us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name("backups").to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    World {
        github: GitHubFake::start().await,
        repos: Api::namespaced(client, &namespace),
        namespace,
        s3,
        bucket,
    }
}

impl World {
    async fn apply(&self, name: &str, repository: &str, extra: serde_json::Value) {
        let mut spec =
            json!({"repository": repository, "storage": {"bucket": self.bucket, "region": "us-east-1"}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                match (spec.get_mut(k).and_then(|s| s.as_object_mut()), v.as_object()) {
                    (Some(inner), Some(v)) => inner.extend(v.clone()),
                    _ => {
                        spec.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let object: BackedUpRepository = serde_json::from_value(json!({
            "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        self.repos
            .create(&PostParams::default(), &object)
            .await
            .expect("create BackedUpRepository");
    }

    async fn controller(&self, policy: RepositoryPolicy) -> RunningRepoController {
        let (ctx, writer) = testing::repository_context(
            &self.github.base_url(),
            self.github.token(),
            policy,
            testing::fast_timing(),
            None,
        )
        .await;
        RunningRepoController::start(ctx, writer, &self.namespace)
    }

    async fn backup(&self, repository: &str) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{repository}/{}.tar.gz", Timestamp::now().as_second()))
            .body(b"backup".to_vec().into())
            .send()
            .await
            .expect("put backup");
    }

    async fn rules(&self) -> Vec<(String, Option<i32>)> {
        match self
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => out
                .rules()
                .iter()
                .map(|r| {
                    (
                        r.id().unwrap_or_default().to_string(),
                        r.expiration().and_then(|e| e.days()),
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Requests that change something on GitHub (GraphQL queries are reads).
    fn writes(&self) -> usize {
        self.github
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path != "/graphql")
            .count()
    }

    /// A repository that already complies, but for what a test changes.
    async fn compliant_repository(&self, repository: &str) {
        self.github.add_repo(repository, "main");
        let spec: backup_warden::api::BackedUpRepositorySpec = serde_json::from_value(
            json!({"repository": repository, "storage": {"bucket": self.bucket, "region": "us-east-1"}}),
        )
        .expect("spec");
        self.github
            .put_file(repository, "main", PATH, &workflow::render(&spec));
        self.github
            .add_run(repository, PATH, Some("success"), &Timestamp::now().to_string());
        self.backup(repository).await;
    }
}

fn is(status: &str, type_: ConditionType) -> impl Fn(&BackedUpRepository) -> bool {
    let status = status.to_string();
    move |r| {
        repo_condition(r, type_).is_some_and(|(s, _, _)| s == status)
            && r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
    }
}

#[tokio::test]
async fn a_missing_workflow_gets_exactly_one_pull_request_across_restarts_and_double_reconciles() {
    let w = world("brepo-pr").await;
    w.github.add_repo("narrative-io/marketplace", "main");
    w.backup("narrative-io/marketplace").await;
    w.apply("marketplace", "narrative-io/marketplace", json!({}))
        .await;

    // Two controllers at once (double reconciles), then both replaced by a third (a restart).
    let first = w.controller(RepositoryPolicy::default()).await;
    let second = w.controller(RepositoryPolicy::default()).await;
    let repo = wait_for(&w.repos, "marketplace", CONVERGE, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.workflow.as_ref())
            .and_then(|wf| wf.pull_request_url.clone())
            .is_some()
    })
    .await;
    tokio::time::sleep(testing::fast_timing().resync).await;
    drop((first, second));
    let _third = w.controller(RepositoryPolicy::default()).await;
    tokio::time::sleep(testing::fast_timing().resync * 2).await;

    let prs = w.github.pull_requests("narrative-io/marketplace");
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0].head_ref, BRANCH);
    let body = prs[0].body.clone().unwrap_or_default();
    assert!(
        body.contains("backup policy"),
        "the pull request says why: {body}"
    );
    let url = repo
        .status
        .and_then(|s| s.workflow)
        .and_then(|wf| wf.pull_request_url)
        .expect("url in status");
    assert_eq!(url, prs[0].html_url);
    let waiting = w.repos.get("marketplace").await.expect("get");
    let (status, reason, message) =
        repo_condition(&waiting, RepositoryCheck::WorkflowPresent).expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "PullRequestOpen"));
    assert!(message.contains(&url));
    // A review is awaited: a person must act, nothing is in progress (GitOps tools read
    // Reconciling=True as work under way and wait on it).
    for (t, expected) in [
        (ConditionType::Ready, ("False", "AwaitingReview")),
        (ConditionType::Reconciling, ("False", "Idle")),
        (ConditionType::Stalled, ("True", "AwaitingReview")),
    ] {
        let (status, reason, _) = repo_condition(&waiting, t).expect("condition");
        assert_eq!((status.as_str(), reason.as_str()), expected, "{t:?}");
    }
    assert_eq!(
        w.github.file("narrative-io/marketplace", "main", PATH),
        None,
        "nothing on the default branch before the merge"
    );
    assert!(
        w.github
            .file("narrative-io/marketplace", BRANCH, PATH)
            .is_some_and(|f| f.contains("backup.yml@main"))
    );

    // Merged and run once: the repository is compliant.
    w.github
        .merge_pull_request("narrative-io/marketplace", prs[0].number);
    w.github.add_run(
        "narrative-io/marketplace",
        PATH,
        Some("success"),
        &Timestamp::now().to_string(),
    );
    wait_for(
        &w.repos,
        "marketplace",
        CONVERGE,
        is("True", ConditionType::Ready),
    )
    .await;
    assert_eq!(w.github.pull_requests("narrative-io/marketplace").len(), 1);
}

#[tokio::test]
async fn commit_delivery_puts_the_file_on_the_default_branch() {
    let w = world("brepo-commit").await;
    w.github.add_repo("narrative-io/api", "trunk");
    w.backup("narrative-io/api").await;
    w.apply(
        "api",
        "narrative-io/api",
        json!({"workflow": {"delivery": "Commit"}}),
    )
    .await;
    let _c = w.controller(RepositoryPolicy::default()).await;
    wait_for(&w.repos, "api", CONVERGE, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.workflow.as_ref())
            .is_some_and(|wf| wf.present)
    })
    .await;
    let text = w
        .github
        .file("narrative-io/api", "trunk", PATH)
        .expect("file on the default branch");
    assert!(
        text.contains("uses: narrative-io/github-common/.github/workflows/backup.yml@main"),
        "{text}"
    );
    assert!(w.github.pull_requests("narrative-io/api").is_empty());
}

#[tokio::test]
async fn audit_writes_nothing() {
    let w = world("brepo-audit").await;
    w.github.add_repo("narrative-io/web", "main");
    w.github.put_file(
        "narrative-io/web",
        "main",
        ".github/workflows/ci.yml",
        "on: push\njobs: {}\n",
    );
    w.apply("web", "narrative-io/web", json!({"mode": "Audit"})).await;
    let _c = w.controller(RepositoryPolicy::default()).await;
    let repo = wait_for(&w.repos, "web", CONVERGE, is("False", ConditionType::Ready)).await;
    let (_, _, message) = repo_condition(&repo, ConditionType::Ready).expect("ready");
    for finding in [
        "backup-daily.yml is missing",
        "no lifecycle rule",
        "no backup under",
    ] {
        assert!(message.contains(finding), "{message:?} lacks {finding:?}");
    }
    tokio::time::sleep(testing::fast_timing().resync * 2).await;
    assert_eq!(w.writes(), 0, "{:?}", w.github.requests());
    assert!(w.github.pull_requests("narrative-io/web").is_empty());
    assert!(
        w.rules().await.is_empty(),
        "no lifecycle rule written in Audit mode"
    );
}

#[tokio::test]
async fn a_disabled_workflow_is_re_enabled_and_a_failed_run_is_reported_with_its_link() {
    let w = world("brepo-enable").await;
    w.compliant_repository("narrative-io/etl").await;
    w.github
        .set_workflow_state("narrative-io/etl", PATH, "disabled_inactivity");
    let failed = w.github.add_run(
        "narrative-io/etl",
        PATH,
        Some("failure"),
        &Timestamp::now().to_string(),
    );
    w.apply("etl", "narrative-io/etl", json!({})).await;
    let _c = w.controller(RepositoryPolicy::default()).await;

    let repo = wait_for(&w.repos, "etl", CONVERGE, |r| {
        repo_condition(r, RepositoryCheck::WorkflowEnabled).is_some_and(|c| c.0 == "True")
            && repo_condition(r, RepositoryCheck::LastRunSucceeded).is_some_and(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        w.github.workflow_state("narrative-io/etl", PATH).as_deref(),
        Some("active")
    );
    let (_, _, message) = repo_condition(&repo, RepositoryCheck::LastRunSucceeded).expect("condition");
    let link = format!("https://github.com/narrative-io/etl/actions/runs/{failed}");
    assert!(
        message.contains("concluded failure") && message.contains(&link),
        "{message}"
    );
    let last_run = repo
        .status
        .and_then(|s| s.workflow)
        .and_then(|wf| wf.last_run)
        .expect("last run in status");
    assert_eq!(last_run.url.as_deref(), Some(link.as_str()));
    assert_eq!(last_run.conclusion.as_deref(), Some("failure"));
}

#[tokio::test]
async fn a_stale_backup_is_reported() {
    let w = world("brepo-stale").await;
    w.compliant_repository("narrative-io/docs").await;
    w.apply(
        "docs",
        "narrative-io/docs",
        json!({"freshness": {"maxBackupAge": "2s"}}),
    )
    .await;
    let _c = w.controller(RepositoryPolicy::default()).await;
    let repo = wait_for(&w.repos, "docs", CONVERGE, |r| {
        repo_condition(r, RepositoryCheck::BackupFresh).is_some_and(|c| c.0 == "False")
    })
    .await;
    let (_, reason, message) = repo_condition(&repo, RepositoryCheck::BackupFresh).expect("condition");
    assert_eq!(reason, "Stale");
    assert!(
        message.contains("narrative-io/docs/") && message.contains("limit 2s"),
        "{message}"
    );
    assert!(
        repo.status
            .and_then(|s| s.latest_backup)
            .and_then(|b| b.key)
            .is_some_and(|k| k.starts_with("narrative-io/docs/"))
    );
}

#[tokio::test]
async fn our_lifecycle_rule_is_added_and_the_others_are_kept() {
    let w = world("brepo-lifecycle").await;
    let rule = |id: &str, prefix: &str, days: i32| {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .expect("rule")
    };
    w.s3.put_bucket_lifecycle_configuration()
        .bucket(&w.bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule("logs", "logs/", 30))
                .rules(rule("tmp", "tmp/", 1))
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .expect("put lifecycle");
    w.compliant_repository("narrative-io/infra").await;
    w.apply("infra", "narrative-io/infra", json!({})).await;
    let _c = w.controller(RepositoryPolicy::default()).await;
    wait_for(&w.repos, "infra", CONVERGE, is("True", ConditionType::Ready)).await;

    let mut rules = w.rules().await;
    rules.sort();
    assert_eq!(
        rules,
        [
            ("backup-warden-narrative-io-infra".to_string(), Some(90)),
            ("logs".to_string(), Some(30)),
            ("tmp".to_string(), Some(1)),
        ]
    );
}

#[tokio::test]
async fn repositories_naming_one_rule_prefix_share_one_lifecycle_rule() {
    let w = world("brepo-shared").await;
    let names = ["narrative-io/api", "narrative-io/web", "narrative-io/etl"];
    for (i, name) in names.iter().enumerate() {
        w.compliant_repository(name).await;
        w.apply(
            &format!("r{i}"),
            name,
            json!({"storage": {"lifecycleRulePrefix": "narrative-io/"}}),
        )
        .await;
    }
    let _c = w.controller(RepositoryPolicy::default()).await;
    for i in 0..names.len() {
        wait_for(
            &w.repos,
            &format!("r{i}"),
            CONVERGE,
            is("True", ConditionType::Ready),
        )
        .await;
    }
    assert_eq!(
        w.rules().await,
        [("backup-warden-shared-narrative-io".to_string(), Some(90))],
        "one rule for the three"
    );
    // The API server refuses a rule prefix that does not cover the backups.
    let refused: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "elsewhere"},
        "spec": {"repository": "narrative-io/docs", "storage": {"bucket": w.bucket, "lifecycleRulePrefix": "other/"}},
    }))
    .expect("object");
    let err = w
        .repos
        .create(&PostParams::default(), &refused)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("lifecycleRulePrefix must be a prefix"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_and_archived_repositories_and_a_token_without_the_workflow_permission_stall() {
    let w = world("brepo-stall").await;
    w.github.add_repo("narrative-io/old", "main");
    w.github.set_archived("narrative-io/old", true);
    w.github.add_repo("narrative-io/locked", "main");
    w.github.deny_workflow_writes(true);
    w.apply("gone", "narrative-io/gone", json!({})).await;
    w.apply("old", "narrative-io/old", json!({})).await;
    w.apply(
        "locked",
        "narrative-io/locked",
        json!({"workflow": {"delivery": "Commit"}}),
    )
    .await;
    let _c = w.controller(RepositoryPolicy::default()).await;

    for (name, reason, text) in [
        ("gone", "RepositoryNotFound", "narrative-io/gone not found"),
        ("old", "RepositoryArchived", "archived"),
        ("locked", "AccessDenied", "workflow"),
    ] {
        let repo = wait_for(&w.repos, name, CONVERGE, is("True", ConditionType::Stalled)).await;
        let (_, got, message) = repo_condition(&repo, ConditionType::Stalled).expect("stalled");
        assert_eq!(got, reason, "{name}: {message}");
        assert!(message.contains(text), "{name}: {message}");
    }
}

/// A sweep that finds nothing new writes no status: messages hold while the facts do (no
/// relative ages), so N quiet objects cost no API-server writes per resync.
#[tokio::test]
async fn a_quiet_sweep_writes_no_status() {
    let w = world("brepo-quiet").await;
    w.github.add_repo("narrative-io/quiet", "main");
    w.backup("narrative-io/quiet").await;
    w.apply(
        "quiet",
        "narrative-io/quiet",
        json!({"workflow": {"delivery": "Commit"}}),
    )
    .await;
    let c = w.controller(RepositoryPolicy::default()).await;
    wait_for(&w.repos, "quiet", CONVERGE, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.workflow.as_ref())
            .is_some_and(|wf| wf.present)
    })
    .await;
    w.github.add_run(
        "narrative-io/quiet",
        PATH,
        Some("success"),
        &Timestamp::now().to_string(),
    );
    wait_for(&w.repos, "quiet", CONVERGE, is("True", ConditionType::Ready)).await;
    testing::assert_quiet_sweeps_write_nothing(&w.repos, "quiet", &c.ctx.metrics, "BackedUpRepository").await;
}
