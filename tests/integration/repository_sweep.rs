//! GitHub requests scale with batches, not repositories: a sweep of 250 repositories makes
//! at most 3 GraphQL requests, and a second sweep with nothing changed makes no REST
//! request at all; a repository whose default branch moved, or whose next daily run is due,
//! is read through REST again (conditionally: mostly 304s, free of the rate limit).

use std::time::Duration;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use backup_warden::{
    api::{BackedUpRepository, BackedUpRepositorySpec, ConditionType},
    controller::Timing,
    policy::repository::RepositoryPolicy,
    workflow,
};
use backup_warden_testing::{
    self as testing, RunningRepoController,
    github_fake::{GitHubFake, RecordedRequest},
    repo_condition,
};
use futures::{StreamExt, stream};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;

const REPOSITORIES: usize = 250;
/// Repositories whose newest run is a day old.
const DUE: usize = 5;
/// Repositories whose default branch moves between sweeps.
const MOVED: usize = 10;
const PATH: &str = ".github/workflows/backup-daily.yml";

#[tokio::test]
async fn a_sweep_of_250_repositories_makes_3_graphql_requests_and_the_next_reads_rest_only_where_due() {
    let _heavy = testing::heavy().await;
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "brepo-sweep").await;
    let config = env.aws_config("us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name("sweep").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let whole_bucket = LifecycleRule::builder()
        .id("keep-90-days")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(90).build())
        .build()
        .expect("rule");
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(whole_bucket)
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("lifecycle");

    let github = GitHubFake::start().await;
    let names: Vec<String> = (0..REPOSITORIES)
        .map(|i| format!("narrative-io/service-{i:03}"))
        .collect();
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);
    stream::iter(names.iter().enumerate())
        .for_each_concurrent(16, |(i, name)| {
            let (github, s3, bucket, repos) = (github.clone(), s3.clone(), bucket.clone(), repos.clone());
            async move {
                let spec: BackedUpRepositorySpec =
                    serde_json::from_value(json!({"repository": name, "storage": {"bucket": bucket}}))
                        .expect("spec");
                github.add_repo(name, "main");
                github.put_file(name, "main", PATH, &workflow::render(&spec));
                // The first few ran yesterday: their next daily run is due.
                let started = if i < DUE {
                    Timestamp::now() - SignedDuration::from_hours(25)
                } else {
                    Timestamp::now()
                };
                github.add_run(name, PATH, Some("success"), &started.to_string());
                s3.put_object()
                    .bucket(&bucket)
                    .key(format!("{name}/backup.tar.gz"))
                    .body(b"x".to_vec().into())
                    .send()
                    .await
                    .expect("object");
                let object: BackedUpRepository = serde_json::from_value(json!({
                    "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
                    "metadata": {"name": format!("service-{i:03}")}, "spec": spec,
                }))
                .expect("object");
                repos
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create");
            }
        })
        .await;

    let timing = Timing {
        resync: Duration::from_secs(15),
        ..testing::fast_timing()
    };
    let (ctx, writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        RepositoryPolicy::default(),
        timing,
        None,
    )
    .await;
    let controller = RunningRepoController::start(ctx, writer, &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = repos.list(&ListParams::default()).await.expect("list");
        let ready = list
            .items
            .iter()
            .filter(|r| repo_condition(r, ConditionType::Ready).is_some_and(|c| c.0 == "True"))
            .count();
        if ready == REPOSITORIES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {REPOSITORIES} Ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first = github.graphql_batches();
    println!(
        "first sweep: GraphQL batches {first:?}, {} requests in all",
        github.requests().len()
    );
    assert!(
        first.len() <= REPOSITORIES.div_ceil(100),
        "GraphQL requests in the first sweep: {first:?}"
    );
    assert!(first.iter().all(|n| *n <= 100));

    // The next sweeps: one has happened once every object was reconciled again.
    let reconciles = controller
        .ctx
        .metrics
        .reconciles
        .with_label_values(&["BackedUpRepository"]);
    let rest_reads = |requests: &[RecordedRequest]| {
        let mut repos: Vec<String> = requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/actions/workflows/"))
            .filter_map(|r| {
                r.path
                    .strip_prefix("/repos/")?
                    .split("/actions/")
                    .next()
                    .map(str::to_string)
            })
            .collect();
        repos.sort();
        repos.dedup();
        repos
    };
    // Nothing changed: only the repositories whose daily run is due are read through REST.
    let requests = sweep(&github, &reconciles).await;
    let graphql = github.graphql_batches().len();
    println!(
        "second sweep: {} requests, {graphql} GraphQL, REST reads of {:?}",
        requests.len(),
        rest_reads(&requests)
    );
    assert!(
        graphql <= REPOSITORIES.div_ceil(100),
        "GraphQL requests in the second sweep: {graphql}"
    );
    assert_eq!(
        rest_reads(&requests),
        names[..DUE].to_vec(),
        "REST reads when nothing changed"
    );
    assert!(
        requests.iter().all(|r| r.method == "GET" || r.path == "/graphql"),
        "no writes when nothing changed"
    );

    // A commit lands on the default branch of some: those are read through REST again,
    // conditionally (their workflows did not change: 304, free of the rate limit).
    for name in &names[DUE..DUE + MOVED] {
        github.put_file(name, "main", "README.md", "moved on\n");
    }
    let requests = sweep(&github, &reconciles).await;
    let workflow_gets: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/actions/workflows/backup-daily.yml"))
        .collect();
    let not_modified = workflow_gets.iter().filter(|r| r.status == 304).count();
    println!(
        "third sweep: {} requests, {} workflow GETs of which {not_modified} answered 304",
        requests.len(),
        workflow_gets.len()
    );
    assert_eq!(rest_reads(&requests), names[..DUE + MOVED].to_vec());
    assert!(
        workflow_gets.iter().all(|r| r.if_none_match),
        "REST reads are conditional"
    );
    assert_eq!(
        not_modified,
        workflow_gets.len(),
        "unchanged workflows answer 304"
    );
}

/// Waits for a sweep (every object reconciled again) and returns the GitHub requests made.
async fn sweep(github: &GitHubFake, reconciles: &prometheus::IntCounter) -> Vec<RecordedRequest> {
    github.reset_requests(); // also forgets the GraphQL batches
    let target = reconciles.get() + REPOSITORIES as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while reconciles.get() < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sweep incomplete: {} of {target} reconciles",
            reconciles.get()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The last reconciles finish their reads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    github.requests()
}

/// A new bucket in the emulator, an S3 client, and a bucket inventory whose calls are counted.
async fn bucket_inventory(
    prefix: &str,
) -> (
    aws_sdk_s3::Client,
    String,
    backup_warden::aws::inventory::BucketInventory,
    std::sync::Arc<backup_warden::aws::AwsClients>,
) {
    let env = testing::env();
    let config = env.aws_config("us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name(prefix).to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let aws = env.aws_clients().await;
    let buckets = backup_warden::aws::inventory::BucketInventory::new(std::sync::Arc::new(
        backup_warden::aws::s3::SdkS3 { clients: aws.clone() },
    ));
    (s3, bucket, buckets, aws)
}

#[tokio::test]
async fn a_quiet_sweep_lists_a_backup_prefix_only_when_a_backup_is_due() {
    let (s3, bucket, buckets, aws) = bucket_inventory("due").await;
    s3.put_object()
        .bucket(&bucket)
        .key("narrative-io/api/today.bundle")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("object");
    let scope = backup_warden::aws::Scope::new(None, "us-east-1");
    let lists = || aws.calls().calls("ListObjectsV2");
    let resync = Duration::from_millis(500);
    let newest = |prefix: &'static str, fresh: Duration| {
        let (buckets, scope, bucket) = (&buckets, &scope, &bucket);
        async move {
            buckets
                .newest_object(scope, bucket, prefix, fresh, resync)
                .await
                .expect("list")
        }
    };
    assert!(newest("narrative-io/api/", resync).await.is_some());
    assert!(newest("narrative-io/web/", resync).await.is_none());
    assert_eq!(lists(), 2);
    // Sweeps later: today's backup is not looked for again; a prefix without one is,
    // once per resync.
    for sweep in 1..=2 {
        tokio::time::sleep(resync + Duration::from_millis(50)).await;
        assert!(newest("narrative-io/api/", resync).await.is_some());
        assert!(newest("narrative-io/web/", resync).await.is_none());
        assert!(newest("narrative-io/web/", resync).await.is_none());
        assert_eq!(lists(), 2 + sweep, "after sweep {sweep}");
    }
    // A reconcile asked for (or a change settling) lists afresh.
    assert!(newest("narrative-io/api/", Duration::ZERO).await.is_some());
    assert_eq!(lists(), 5);
}

#[tokio::test]
async fn lifecycle_rules_added_at_once_to_one_bucket_are_all_kept() {
    let (s3, bucket, buckets, _) = bucket_inventory("race").await;
    let scope = backup_warden::aws::Scope::new(None, "us-east-1");
    // Each write reads the configuration and writes it back whole: at once, they would
    // each drop the others' rules.
    stream::iter(0..12)
        .for_each_concurrent(12, |i| {
            let (buckets, scope, bucket) = (&buckets, &scope, &bucket);
            async move {
                buckets
                    .add_expiration_rule(scope, bucket, &format!("rule-{i:02}"), &format!("r{i}/"), 90)
                    .await
                    .expect("add rule");
            }
        })
        .await;
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle");
    assert_eq!(rules.rules().len(), 12, "{:?}", rules.rules());
}
