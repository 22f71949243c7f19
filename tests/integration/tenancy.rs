//! Tenancy and claims: a namespace may use only the AWS roles and GitHub repositories the
//! administrator allowed it, and of two objects naming one RDS instance or repository the
//! older manages it. A refused object is Stalled, and nothing is called for it.

use std::{sync::Arc, time::Duration};

use backup_warden::{
    api::{BackedUpDatabase, BackedUpRepository, ConditionType},
    policy::{database::Policy, repository::RepositoryPolicy},
    tenancy::Tenancy,
};
use backup_warden_testing::{
    self as testing, RunningController, RunningRepoController, github_fake::GitHubFake, wait_for,
};
use kube::{Api, api::PostParams};
use serde_json::json;

const SOURCE: &str = "us-east-1";
const WITHIN: Duration = Duration::from_secs(60);

fn tenancy(yaml: &str) -> Arc<Tenancy> {
    Arc::new(serde_saphyr::from_str(yaml).expect("tenancy"))
}

fn database(name: &str, identifier: &str, role: &str) -> BackedUpDatabase {
    serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": name},
        "spec": {"instance": {"identifier": identifier, "region": SOURCE, "roleArn": role},
                 "backups": {"applyImmediately": true}},
    }))
    .expect("object")
}

fn stalled_with(reason: &'static str) -> impl Fn(&BackedUpDatabase) -> bool {
    move |db| testing::condition(db, ConditionType::Stalled).is_some_and(|c| c.0 == "True" && c.1 == reason)
}

#[tokio::test]
async fn a_role_outside_the_namespace_allowance_is_refused_and_nothing_is_called() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "tenancy").await;
    let (allowed, foreign) = (testing::unique_account(), testing::unique_account());
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &allowed).await);
    testing::create_instance(&rds, "mine", 7).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);

    let mut ctx = env.context(Policy::default(), testing::fast_timing()).await;
    Arc::get_mut(&mut ctx).expect("unique").tenancy = tenancy(&format!(
        "namespaces:\n  {namespace}:\n    aws: [\"arn:aws:iam::{allowed}:role/*\"]\n"
    ));
    let calls = ctx.calls.clone();
    let _controller = RunningController::start(ctx, &namespace);

    let role = testing::role_arn(&foreign);
    dbs.create(&PostParams::default(), &database("theirs", "theirs", &role))
        .await
        .expect("create");
    let refused = wait_for(&dbs, "theirs", WITHIN, stalled_with("NotAllowed")).await;
    let message = testing::condition(&refused, ConditionType::Stalled)
        .expect("Stalled")
        .2;
    assert!(
        message.contains(&role) && message.contains("tenancy file"),
        "{message}"
    );
    assert_eq!(calls.to_json(), json!({}), "no AWS call, no role assumed");

    // The controller's own identity is not granted to this namespace either.
    let own: BackedUpDatabase = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
        "metadata": {"name": "own"}, "spec": {"instance": {"identifier": "own", "region": SOURCE}},
    }))
    .expect("object");
    dbs.create(&PostParams::default(), &own).await.expect("create");
    wait_for(&dbs, "own", WITHIN, stalled_with("NotAllowed")).await;
    assert_eq!(calls.to_json(), json!({}));

    // What the namespace may use works as before.
    dbs.create(
        &PostParams::default(),
        &database("mine", "mine", &testing::role_arn(&allowed)),
    )
    .await
    .expect("create");
    wait_for(&dbs, "mine", WITHIN, |db| {
        testing::condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
}

#[tokio::test]
async fn of_two_objects_naming_one_instance_the_older_manages_it() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "claims").await;
    let account = testing::unique_account();
    let rds = aws_sdk_rds::Client::new(&env.aws_config_in(SOURCE, &account).await);
    testing::create_instance(&rds, "shared", 1).await;
    let dbs: Api<BackedUpDatabase> = Api::namespaced(client.clone(), &namespace);
    let role = testing::role_arn(&account);
    dbs.create(&PostParams::default(), &database("first", "shared", &role))
        .await
        .expect("create");
    // Creation times are whole seconds: make the order unambiguous.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dbs.create(&PostParams::default(), &database("second", "SHARED", &role))
        .await
        .expect("create");

    let mut ctx = env.context(Policy::default(), testing::fast_timing()).await;
    Arc::get_mut(&mut ctx).expect("unique").tenancy = tenancy(&format!(
        "namespaces:\n  \"*\":\n    aws: [\"arn:aws:iam::{account}:role/backup-warden\"]\n"
    ));
    let calls = ctx.calls.clone();
    let _controller = RunningController::start(ctx, &namespace);
    wait_for(&dbs, "first", WITHIN, |db| {
        testing::condition(db, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;
    let second = wait_for(&dbs, "second", WITHIN, stalled_with("Conflict")).await;
    let message = testing::condition(&second, ConditionType::Stalled)
        .expect("Stalled")
        .2;
    assert!(message.contains(&format!("{namespace}/first")), "{message}");
    // Only the first acted: one key, one alias, one replication.
    for operation in [
        "CreateKey",
        "CreateAlias",
        "StartDBInstanceAutomatedBackupsReplication",
    ] {
        assert_eq!(calls.calls(operation), 1, "{operation}: {}", calls.to_json());
    }
}

#[tokio::test]
async fn a_repository_outside_the_namespace_allowance_is_neither_read_nor_written() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "repotenancy").await;
    let github = GitHubFake::start().await;
    github.add_repo("other-org/payroll", "main");
    let (mut ctx, writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        RepositoryPolicy::default(),
        testing::fast_timing(),
        None,
    )
    .await;
    Arc::get_mut(&mut ctx).expect("unique").tenancy = tenancy(&format!(
        "namespaces:\n  {namespace}:\n    github: [\"narrative-io/*\"]\n"
    ));
    let _controller = RunningRepoController::start(ctx, writer, &namespace);
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);
    let object: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "payroll"},
        "spec": {"repository": "other-org/payroll", "storage": {"bucket": "backups", "region": "us-east-1"}},
    }))
    .expect("object");
    repos
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let refused = wait_for(&repos, "payroll", WITHIN, |r| {
        testing::repo_condition(r, ConditionType::Stalled)
            .is_some_and(|c| c.0 == "True" && c.1 == "NotAllowed")
    })
    .await;
    let message = testing::repo_condition(&refused, ConditionType::Stalled)
        .expect("Stalled")
        .2;
    assert!(message.contains("other-org/payroll"), "{message}");
    assert!(
        github.requests().is_empty(),
        "GitHub was called: {:?}",
        github.requests()
    );
    assert!(github.pull_requests("other-org/payroll").is_empty());
}
