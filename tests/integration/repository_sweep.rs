//! GitHub requests scale with batches, not repositories: a sweep of 250 repositories makes
//! at most 3 GraphQL requests, and a second sweep with nothing changed is answered mostly
//! by 304s (conditional requests, which do not count against the rate limit).

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
    self as testing, RunningRepoController, github_fake::GitHubFake, repo_condition,
};
use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;

const REPOSITORIES: usize = 250;
const PATH: &str = ".github/workflows/backup-daily.yml";

#[tokio::test]
async fn a_sweep_of_250_repositories_makes_3_graphql_requests_and_the_next_is_mostly_304s() {
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
                github.add_run(name, PATH, Some("success"), &Timestamp::now().to_string());
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
    let _controller = RunningRepoController::start(ctx, writer, &namespace);
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

    // The next sweep, with nothing changed.
    github.reset_requests(); // also forgets the GraphQL batches
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let workflow_reads = |g: &GitHubFake| {
        g.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/actions/workflows/backup-daily.yml"))
            .count()
    };
    while workflow_reads(&github) < REPOSITORIES {
        assert!(
            tokio::time::Instant::now() < deadline,
            "second sweep incomplete: {} workflow reads",
            workflow_reads(&github)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = github.requests();
    let rest_gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    let not_modified = rest_gets.iter().filter(|r| r.status == 304).count();
    let graphql = github.graphql_batches().len();
    println!(
        "second sweep: {} requests, {} REST GETs of which {not_modified} answered 304, {graphql} GraphQL",
        requests.len(),
        rest_gets.len()
    );
    assert!(
        graphql <= REPOSITORIES.div_ceil(100),
        "GraphQL requests in the second sweep: {graphql}"
    );
    assert!(
        not_modified * 10 >= rest_gets.len() * 9,
        "{not_modified} of {} REST GETs were 304s",
        rest_gets.len()
    );
    assert!(
        requests.iter().all(|r| r.method == "GET" || r.path == "/graphql"),
        "no writes when nothing changed"
    );
}
