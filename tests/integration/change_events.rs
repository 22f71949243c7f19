//! Change events end to end: with a resync of 30 minutes, a change in AWS (a CloudTrail
//! event, EventBridge-shaped, in the emulator's SQS) or on GitHub (a signed webhook delivery
//! to the GitHub fake's repository) is detected and healed or reported within seconds; bad
//! deliveries and poison messages change nothing and block nothing.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::support::{CONVERGE, DESTINATION, SOURCE, is, world};
use backup_warden::{
    api::{BackedUpRepository, ConditionType, DatabaseCheck, RepositoryCheck},
    controller::Timing,
    events::{
        receiver,
        route::Router,
        sqs::{self, QueueSettings},
    },
    github::webhook::Gate,
    policy::{database::Policy, repository::RepositoryPolicy},
    workflow,
};
use backup_warden_testing::{
    self as testing, RunningController, RunningRepoController, github_fake::GitHubFake, wait_for,
};
use hmac::{Hmac, Mac};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};

/// Far longer than any test: only an event can explain a detection within seconds.
const RESYNC: Duration = Duration::from_secs(1800);
/// What the issue asks: from the change to the status transition.
const WITHIN: Duration = Duration::from_secs(10);

fn slow_timing() -> Timing {
    Timing {
        resync: RESYNC,
        ..testing::fast_timing()
    }
}

async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&testing::env().aws_config(SOURCE).await)
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(testing::unique_name(name))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("url")
        .to_string()
}

/// A CloudTrail management event as EventBridge delivers it to SQS.
fn cloudtrail_event(account: &str, region: &str, source: &str, name: &str, parameters: Value) -> String {
    json!({
        "version": "0",
        "id": testing::unique_name("event"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": format!("aws.{}", source.split('.').next().unwrap_or_default()),
        "account": account,
        "time": Timestamp::now().to_string(),
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "eventTime": Timestamp::now().to_string(),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "requestParameters": parameters,
            "recipientAccountId": account,
        }
    })
    .to_string()
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .expect("send message");
}

async fn within<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return (found, started.elapsed());
        }
        assert!(started.elapsed() < WITHIN, "{what}: not within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn aws_changes_are_healed_or_reported_within_seconds_through_the_queue() {
    let w = world("events-aws").await;
    testing::create_instance(&w.rds_source, "orders-db", 7).await;
    w.apply("orders", "orders-db", json!({})).await;
    let c = RunningController::start(
        testing::env().context(Policy::default(), slow_timing()).await,
        &w.namespace,
    );
    wait_for(&w.dbs, "orders", CONVERGE, is("True", ConditionType::Ready)).await;

    let sqs = sqs_client().await;
    let (url, dead) = (queue(&sqs, "events").await, queue(&sqs, "events-dead").await);
    let routes = Arc::new(Router {
        databases: Some(c.ctx.clone()),
        ..Default::default()
    });
    let metrics = c.ctx.metrics.clone();
    let settings = QueueSettings {
        url: url.clone(),
        dead_letter_url: Some(dead.clone()),
        wait_seconds: 1,
        fanout: None,
    };
    let consumer = tokio::spawn(sqs::consume(
        testing::env().aws_clients().await,
        settings,
        SOURCE.into(),
        routes,
        metrics.clone(),
        std::future::pending(),
    ));
    let event = |source: &str, name: &str, region: &str, parameters: Value| {
        cloudtrail_event(&w.account, region, source, name, parameters)
    };

    // A poison message first: dead-lettered, and the queue goes on.
    send(&sqs, &url, "{this is not an event").await;

    // 1. Retention lowered by hand: raised again.
    w.set_retention("orders-db", 2).await;
    send(
        &sqs,
        &url,
        &event(
            "rds.amazonaws.com",
            "ModifyDBInstance",
            SOURCE,
            json!({"dBInstanceIdentifier": "orders-db", "backupRetentionPeriod": 2}),
        ),
    )
    .await;
    let (_, retention) = within("retention raised", async || {
        (w.retention("orders-db").await == 7).then_some(())
    })
    .await;

    // 2. Replication stopped by hand: started again.
    w.rds_destination
        .stop_db_instance_automated_backups_replication()
        .source_db_instance_arn(w.source_arn("orders-db"))
        .send()
        .await
        .expect("stop replication");
    send(
        &sqs,
        &url,
        &event(
            "rds.amazonaws.com",
            "StopDBInstanceAutomatedBackupsReplication",
            DESTINATION,
            json!({"sourceDBInstanceArn": w.source_arn("orders-db")}),
        ),
    )
    .await;
    let (_, replication) = within("replication started again", async || {
        w.replicas("orders-db")
            .await
            .iter()
            .any(|(status, _)| status == "pending" || status == "replicating")
            .then_some(())
    })
    .await;

    // 3. The replica's key disabled: reported (a person must enable it or pick another).
    let db = wait_for(&w.dbs, "orders", CONVERGE, is("True", ConditionType::Ready)).await;
    let key = db
        .status
        .and_then(|s| s.replica)
        .and_then(|r| r.kms_key_arn)
        .expect("replica key");
    w.kms_destination
        .disable_key()
        .key_id(&key)
        .send()
        .await
        .expect("disable key");
    let key_id = key.rsplit('/').next().unwrap_or_default().to_string();
    send(
        &sqs,
        &url,
        &event(
            "kms.amazonaws.com",
            "DisableKey",
            DESTINATION,
            json!({"keyId": key_id}),
        ),
    )
    .await;
    let (_, disabled) = within("disabled key reported", async || {
        let db = w.dbs.get("orders").await.ok()?;
        testing::condition(&db, DatabaseCheck::ReplicaKeyCompliant)
            .filter(|c| c.0 == "False")
            .map(|_| ())
    })
    .await;
    println!(
        "detected through SQS: retention {retention:?}, replication {replication:?}, key {disabled:?} (resync {RESYNC:?})"
    );

    // Counted: three matched, the poison one failed and dead-lettered.
    let count = |outcome: &str| metrics.events.with_label_values(&["aws", outcome]).get();
    assert_eq!((count("matched"), count("failed")), (3, 1));
    let dead_letters = sqs
        .receive_message()
        .queue_url(&dead)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive dead letters");
    let poison = dead_letters.messages();
    assert_eq!(poison.len(), 1, "{poison:?}");
    assert_eq!(poison[0].body(), Some("{this is not an event"));
    assert!(
        poison[0]
            .message_attributes()
            .and_then(|a| a.get("backup-warden-error"))
            .and_then(|v| v.string_value())
            .is_some_and(|why| why.starts_with("not JSON"))
    );
    // Every handled message was deleted from the queue.
    let left = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attribute = |name: aws_sdk_sqs::types::QueueAttributeName| {
        left.attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        attribute(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
        "0"
    );
    assert_eq!(
        attribute(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );
    let detected = metrics.event_detection.with_label_values(&["aws"]);
    assert!(detected.get_sample_count() >= 3);
    consumer.abort();
}

struct Hook {
    address: std::net::SocketAddr,
}

impl Hook {
    /// POSTs a delivery, signed with `secret` (the right one unless a test says otherwise).
    fn deliver(&self, event: &str, delivery: &str, body: &[u8], secret: &[u8]) -> u16 {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("key");
        mac.update(body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        self.post(
            &[
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &signature),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> u16 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.address).expect("connect");
        let mut request = format!(
            "POST /github/webhook HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        // The receiver may answer before reading a body it refuses.
        let _ = stream.write_all(body);
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

const PATH: &str = ".github/workflows/backup-daily.yml";

// The deliveries are plain blocking HTTP: the receiver runs on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_changes_are_healed_or_reported_within_seconds_through_the_webhook() {
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "events-github").await;
    let repos: Api<BackedUpRepository> = Api::namespaced(client, &namespace);
    let github = GitHubFake::start().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&env.aws_config(SOURCE).await)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name("hooks").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let name = "acme/shop";
    github.add_repo(name, "main");
    let object: BackedUpRepository = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
        "metadata": {"name": "shop"},
        "spec": {"repository": name, "storage": {"bucket": bucket, "region": SOURCE},
                 "workflow": {"delivery": "Commit"}},
    }))
    .expect("object");
    github.put_file(name, "main", PATH, &workflow::render(&object.spec));
    github.add_run(name, PATH, Some("success"), &Timestamp::now().to_string());
    s3.put_object()
        .bucket(&bucket)
        .key(format!("{name}/backup.bundle"))
        .body(b"backup".to_vec().into())
        .send()
        .await
        .expect("backup");
    repos
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let (ctx, writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        RepositoryPolicy::default(),
        slow_timing(),
        None,
    )
    .await;
    let metrics = ctx.metrics.clone();
    let repo_ctx = ctx.clone();
    let _c = RunningRepoController::start(ctx, writer, &namespace);
    wait_for(&repos, "shop", CONVERGE, |r| {
        testing::repo_condition(r, ConditionType::Ready).is_some_and(|c| c.0 == "True")
    })
    .await;

    let secret: &'static [u8] = b"a webhook secret";
    let routes = Arc::new(Router {
        repositories: Some(repo_ctx),
        ..Default::default()
    });
    let state = Arc::new(receiver::Receiver::acting(
        Gate::new(secret, receiver::MAX_BODY, 1000),
        routes.clone(),
        metrics.clone(),
    ));
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let (address, _server) = receiver::serve("127.0.0.1:0".parse().expect("addr"), state, stopping)
        .await
        .expect("serve");
    let hook = Hook { address };
    let deliver = |event: &'static str, delivery: &'static str, body: Value| {
        let body = body.to_string().into_bytes();
        let status = hook.deliver(event, delivery, &body, secret);
        async move { status }
    };

    // 1. The workflow file deleted: committed back.
    github.delete_file(name, "main", PATH);
    let push = json!({"ref": "refs/heads/main",
        "repository": {"full_name": name, "default_branch": "main"},
        "commits": [{"added": [], "removed": [PATH], "modified": []}]});
    assert_eq!(deliver("push", "d-push", push.clone()).await, 202);
    let (_, restored) = within("workflow file committed back", async || {
        github.file(name, "main", PATH).map(|_| ())
    })
    .await;

    // 2. A run failing: reported.
    let run = github.add_run(name, PATH, None, &Timestamp::now().to_string());
    github.complete_run(name, run, "failure");
    assert_eq!(
        deliver(
            "workflow_run",
            "d-run",
            json!({"action": "completed", "repository": {"full_name": name}})
        )
        .await,
        202
    );
    let (_, failing) = within("failed run reported", async || {
        let r = repos.get("shop").await.ok()?;
        testing::repo_condition(&r, RepositoryCheck::LastRunSucceeded)
            .filter(|c| c.0 == "False")
            .map(|_| ())
    })
    .await;
    // 3. The backups' lifecycle rule shortened (an AWS change, through the queue): raised.
    let sqs = sqs_client().await;
    let url = queue(&sqs, "events-s3").await;
    let consumer = tokio::spawn(sqs::consume(
        env.aws_clients().await,
        QueueSettings {
            url: url.clone(),
            dead_letter_url: None,
            wait_seconds: 1,
            fanout: None,
        },
        SOURCE.into(),
        routes,
        metrics.clone(),
        std::future::pending(),
    ));
    let rule_days = async || {
        let out = s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await
            .ok()?;
        out.rules()
            .first()
            .and_then(|r| r.expiration())
            .and_then(|e| e.days())
    };
    assert_eq!(rule_days().await, Some(90), "the controller's rule");
    let id = backup_warden::policy::repository::lifecycle_rule_id(&object.spec);
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::LifecycleRule::builder()
                        .id(id)
                        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                        .filter(
                            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                                .prefix(format!("{name}/"))
                                .build(),
                        )
                        .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(30).build())
                        .build()
                        .expect("rule"),
                )
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .expect("shorten the rule");
    send(
        &sqs,
        &url,
        &cloudtrail_event(
            "123456789012",
            SOURCE,
            "s3.amazonaws.com",
            "PutBucketLifecycle",
            json!({"bucketName": bucket, "lifecycle": ""}),
        ),
    )
    .await;
    let (_, lifecycle) = within("lifecycle rule raised", async || {
        (rule_days().await == Some(90)).then_some(())
    })
    .await;
    consumer.abort();
    println!(
        "detected through the webhook: file deleted {restored:?}, run failed {failing:?}; through SQS: lifecycle rule shortened {lifecycle:?} (resync {RESYNC:?})"
    );

    // Bad deliveries: refused, counted, and no reconcile follows.
    let reconciles = || {
        metrics
            .reconciles
            .with_label_values(&["BackedUpRepository"])
            .get()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = reconciles();
    let body = push.to_string().into_bytes();
    assert_eq!(hook.deliver("push", "d-forged", &body, b"wrong secret"), 401);
    assert_eq!(hook.deliver("push", "d-push", &body, secret), 409, "a replay");
    let huge = vec![b' '; receiver::MAX_BODY + 1];
    assert_eq!(hook.deliver("push", "d-huge", &huge, secret), 413);
    assert_eq!(hook.deliver("push", "d-bad-json", b"{not json", secret), 400);
    assert_eq!(
        hook.post(
            &[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-unsigned")],
            &body
        ),
        401
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reconciles(), before, "a refused delivery woke something");
    let refused = |reason: &str| metrics.webhook_refusals.with_label_values(&[reason]).get();
    assert_eq!(
        [
            refused("bad_signature"),
            refused("replayed"),
            refused("too_large"),
            refused("malformed"),
            refused("missing_signature")
        ],
        [1, 1, 1, 1, 1]
    );
    let counted = |outcome: &str| metrics.events.with_label_values(&["github", outcome]).get();
    assert_eq!(
        (counted("matched"), counted("refused"), counted("failed")),
        (2, 4, 1)
    );
    assert_eq!(metrics.events.with_label_values(&["aws", "matched"]).get(), 1);
    assert!(github.file(name, "main", PATH).is_some());
}

#[tokio::test]
async fn a_created_instance_is_counted_by_the_coverage_within_seconds() {
    let w = world("events-cov").await;
    testing::create_instance(&w.rds_source, "known-db", 7).await;
    let name = format!("cov-{}", w.namespace);
    let coverages: Api<backup_warden::api::BackupCoverage> = Api::all(w.env.client().await);
    let object: backup_warden::api::BackupCoverage = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": name},
        "spec": {"namespace": w.namespace, "databases": {"accounts": [
            {"roleArn": testing::role_arn(&w.account), "regions": [SOURCE]}]}},
    }))
    .expect("coverage");
    coverages
        .create(&PostParams::default(), &object)
        .await
        .expect("create coverage");
    let ctx = testing::env().context(Policy::default(), slow_timing()).await;
    let only = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    let running = tokio::spawn(backup_warden::controller::coverage::run(
        ctx.clone(),
        None,
        only,
        std::future::pending(),
    ));
    let undeclared = |c: &backup_warden::api::BackupCoverage| {
        c.status
            .as_ref()
            .and_then(|s| s.databases.as_ref())
            .map(|d| d.undeclared)
    };
    wait_for(&coverages, &name, CONVERGE, |c| undeclared(c) == Some(1)).await;

    let sqs = sqs_client().await;
    let url = queue(&sqs, "events-cov").await;
    let consumer = tokio::spawn(sqs::consume(
        testing::env().aws_clients().await,
        QueueSettings {
            url: url.clone(),
            dead_letter_url: None,
            wait_seconds: 1,
            fanout: None,
        },
        SOURCE.into(),
        Arc::new(Router {
            databases: Some(ctx.clone()),
            ..Default::default()
        }),
        ctx.metrics.clone(),
        std::future::pending(),
    ));
    testing::create_instance(&w.rds_source, "new-db", 7).await;
    send(
        &sqs,
        &url,
        &cloudtrail_event(
            &w.account,
            SOURCE,
            "rds.amazonaws.com",
            "CreateDBInstance",
            json!({"dBInstanceIdentifier": "new-db", "engine": "postgres"}),
        ),
    )
    .await;
    let (_, counted) = within("the new instance counted", async || {
        let c = coverages.get(&name).await.ok()?;
        (undeclared(&c) == Some(2)).then_some(())
    })
    .await;
    println!("a created instance counted by the coverage {counted:?} after its event (resync {RESYNC:?})");
    consumer.abort();
    running.abort();
    let _ = coverages.delete(&name, &Default::default()).await;
}

// The deliveries are plain blocking HTTP: the receiver runs on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_repository_is_counted_by_the_coverage_without_listing_the_organization_again() {
    let w = world("events-org").await;
    let github = GitHubFake::start().await;
    let org = testing::unique_name("acme");
    github.add_repo(&format!("{org}/api"), "main");
    let name = format!("cov-{}", w.namespace);
    let coverages: Api<backup_warden::api::BackupCoverage> = Api::all(w.env.client().await);
    let object: backup_warden::api::BackupCoverage = serde_json::from_value(json!({
        "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackupCoverage",
        "metadata": {"name": name},
        "spec": {"namespace": w.namespace, "repositories": {"organizations": [org]}},
    }))
    .expect("coverage");
    coverages
        .create(&PostParams::default(), &object)
        .await
        .expect("create coverage");
    let ctx = testing::env().context(Policy::default(), slow_timing()).await;
    let (repo_ctx, _writer) = testing::repository_context(
        &github.base_url(),
        github.token(),
        RepositoryPolicy::default(),
        slow_timing(),
        None,
    )
    .await;
    let only = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    let running = tokio::spawn(backup_warden::controller::coverage::run(
        ctx.clone(),
        Some(repo_ctx.github.clone()),
        only,
        std::future::pending(),
    ));
    let undeclared = |c: &backup_warden::api::BackupCoverage| {
        c.status
            .as_ref()
            .and_then(|s| s.repositories.as_ref())
            .map(|r| r.undeclared)
    };
    wait_for(&coverages, &name, CONVERGE, |c| undeclared(c) == Some(1)).await;
    let listings = || {
        github
            .requests()
            .iter()
            .filter(|r| r.operation.as_deref() == Some("OrganizationRepositories"))
            .count()
    };
    let listed_before = listings();
    assert!(listed_before > 0, "the organization was listed once");

    let secret: &'static [u8] = b"org secret";
    let routes = Arc::new(Router {
        databases: Some(ctx.clone()),
        ..Default::default()
    });
    let state = Arc::new(receiver::Receiver::acting(
        Gate::new(secret, receiver::MAX_BODY, 1000),
        routes,
        ctx.metrics.clone(),
    ));
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let (address, _server) = receiver::serve("127.0.0.1:0".parse().expect("addr"), state, stopping)
        .await
        .expect("serve");
    let hook = Hook { address };
    github.add_repo(&format!("{org}/billing"), "main");
    let body = json!({"action": "created",
        "repository": {"full_name": format!("{org}/billing"), "archived": false, "fork": false, "topics": []}})
    .to_string()
    .into_bytes();
    assert_eq!(hook.deliver("repository", "d-created", &body, secret), 202);
    let (_, counted) = within("the new repository counted", async || {
        let c = coverages.get(&name).await.ok()?;
        (undeclared(&c) == Some(2)).then_some(())
    })
    .await;
    assert_eq!(listings(), listed_before, "the organization was listed again");
    println!("a created repository counted by the coverage {counted:?} after its delivery, with no listing");
    running.abort();
    let _ = coverages.delete(&name, &Default::default()).await;
}

// The deliveries are plain blocking HTTP: the receiver runs on the other worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_nobody_could_handle_may_be_redelivered() {
    let metrics = Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
    let secret: &'static [u8] = b"standby secret";
    // A standby with no leader to pass deliveries to (a takeover under way).
    let state = Arc::new(receiver::Receiver {
        gate: Gate::new(secret, receiver::MAX_BODY, 1000),
        max_body: receiver::MAX_BODY,
        routes: Default::default(),
        peers: None,
        metrics: metrics.clone(),
    });
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let (address, _server) = receiver::serve("127.0.0.1:0".parse().expect("addr"), state.clone(), stopping)
        .await
        .expect("serve");
    let hook = Hook { address };
    let body = br#"{"zen": "Keep it logically awesome."}"#;
    assert_eq!(hook.deliver("ping", "d-takeover", body, secret), 503);
    // GitHub's Redeliver keeps the delivery id: not a replay, since nothing handled it.
    assert_eq!(hook.deliver("ping", "d-takeover", body, secret), 503);
    // Once acting, the redelivery is handled, and only once.
    let _ = state.routes.set(Arc::new(Router::default()));
    assert_eq!(hook.deliver("ping", "d-takeover", body, secret), 202);
    assert_eq!(hook.deliver("ping", "d-takeover", body, secret), 409);
    assert_eq!(metrics.events.with_label_values(&["github", "failed"]).get(), 2);
}

/// A shard lease held by `holder` for an hour.
async fn shard_lease(leases: &Api<k8s_openapi::api::coordination::v1::Lease>, name: &str, holder: &str) {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now());
    let lease: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3600, "renewTime": now, "acquireTime": now},
    }))
    .expect("lease");
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
}

#[tokio::test]
async fn with_shards_every_replica_sees_every_message() {
    let w = world("events-shards").await;
    testing::create_instance(&w.rds_source, "sharded-db", 7).await;
    w.apply("sharded", "sharded-db", json!({})).await;
    // Replica b holds the object's shard and runs its controller; replica a holds the other.
    let c = RunningController::start(
        testing::env().context(Policy::default(), slow_timing()).await,
        &w.namespace,
    );
    wait_for(&w.dbs, "sharded", CONVERGE, is("True", ConditionType::Ready)).await;
    let client = w.env.client().await;
    let leases = Api::namespaced(client.clone(), &w.namespace);
    shard_lease(&leases, "backup-warden-shard-0", "a").await;
    shard_lease(&leases, "backup-warden-shard-1", "b").await;
    let names = vec![
        "backup-warden-shard-0".to_string(),
        "backup-warden-shard-1".to_string(),
    ];
    let sqs = sqs_client().await;
    let url = queue(&sqs, "events-shards").await;
    let aws = testing::env().aws_clients().await;
    let replica = |me: &str, routes: Router, metrics: Arc<backup_warden::report::metrics::Metrics>| {
        let peers = backup_warden::events::peers::Peers::new(client.clone(), &w.namespace, names.clone(), me);
        let settings = QueueSettings {
            url: url.clone(),
            dead_letter_url: None,
            wait_seconds: 1,
            fanout: Some(Arc::new(peers)),
        };
        tokio::spawn(sqs::consume(
            aws.clone(),
            settings,
            SOURCE.into(),
            Arc::new(routes),
            metrics,
            std::future::pending(),
        ))
    };
    // Replica a alone first: it gets the event, wakes nothing of its own, and passes it on.
    let a_metrics = Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
    let a = replica("a", Router::default(), a_metrics.clone());
    w.set_retention("sharded-db", 2).await;
    send(
        &sqs,
        &url,
        &cloudtrail_event(
            &w.account,
            SOURCE,
            "rds.amazonaws.com",
            "ModifyDBInstance",
            json!({"dBInstanceIdentifier": "sharded-db", "backupRetentionPeriod": 2}),
        ),
    )
    .await;
    within("replica a saw the event", async || {
        (a_metrics.events.with_label_values(&["aws", "ignored"]).get() == 1).then_some(())
    })
    .await;
    assert_eq!(w.retention("sharded-db").await, 2, "nobody acted yet");
    // Replica b starts: the copy a sent reaches it, and it heals its object.
    let b = replica(
        "b",
        Router {
            databases: Some(c.ctx.clone()),
            ..Default::default()
        },
        c.ctx.metrics.clone(),
    );
    let (_, healed) = within("healed by replica b", async || {
        (w.retention("sharded-db").await == 7).then_some(())
    })
    .await;
    println!("with two shards, healed {healed:?} after replica b started");
    assert_eq!(
        c.ctx.metrics.events.with_label_values(&["aws", "matched"]).get(),
        1
    );
    // Both saw it: no copy is left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        left.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(a_metrics.events.with_label_values(&["aws", "ignored"]).get(), 1);
    a.abort();
    b.abort();
}
