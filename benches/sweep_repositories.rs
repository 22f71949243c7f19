//! Benchmark (not a test): N BackedUpRepositories (default 2,000) over compliant repositories
//! in the GitHub fake and the emulator's S3, reconciled by the release binary. Reports GitHub
//! requests per sweep by kind (first sweep, then a second one with nothing changed: GraphQL
//! only, as every backup ran today), wall
//! time to Ready and the controller's peak RSS.
//!
//!     make bench-repositories      # BENCH_OBJECTS=500 make bench-repositories
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use backup_warden::{
    api::{BackedUpRepository, BackedUpRepositorySpec, ConditionType},
    workflow,
};
use backup_warden_testing::{self as testing, github_fake::GitHubFake, repo_condition};
use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;

const PATH: &str = ".github/workflows/backup-daily.yml";

#[path = "support/measure.rs"]
mod measure;

use measure::{github_requests, print_github_requests};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let env = testing::env();
    let client = env.client().await;
    testing::install_crds(&client).await;
    let namespace = testing::namespace(&client, "bench-repos").await;
    let config = env.aws_config("us-east-1").await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = testing::unique_name("bench").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    // As the company's bucket has: one rule keeping every backup 90 days.
    let keep = aws_sdk_s3::types::LifecycleRule::builder()
        .id("keep-90-days")
        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
        .filter(
            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                .prefix("")
                .build(),
        )
        .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(90).build())
        .build()
        .expect("rule");
    s3.put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(keep)
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("lifecycle");
    let github = GitHubFake::start().await;
    let repos: Api<BackedUpRepository> = Api::namespaced(client.clone(), &namespace);

    let setup = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (github, s3, bucket, repos) = (github.clone(), s3.clone(), bucket.clone(), repos.clone());
            async move {
                let name = format!("narrative-io/service-{i:05}");
                let spec: BackedUpRepositorySpec =
                    serde_json::from_value(json!({"repository": name, "storage": {"bucket": bucket}}))
                        .expect("spec");
                github.add_repo(&name, "main");
                github.put_file(&name, "main", PATH, &workflow::render(&spec));
                github.add_run(&name, PATH, Some("success"), &Timestamp::now().to_string());
                s3.put_object()
                    .bucket(&bucket)
                    .key(format!("{name}/backup.tar.gz"))
                    .body(b"x".to_vec().into())
                    .send()
                    .await
                    .expect("object");
                let object: BackedUpRepository = serde_json::from_value(json!({
                    "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpRepository",
                    "metadata": {"name": format!("service-{i:05}")}, "spec": spec,
                }))
                .expect("object");
                repos
                    .create(&PostParams::default(), &object)
                    .await
                    .expect("create");
            }
        })
        .await;
    eprintln!("setup: {n} repositories in {:.1}s", setup.elapsed().as_secs_f64());

    let token_file = std::env::temp_dir().join(format!("{namespace}.token"));
    std::fs::write(&token_file, github.token()).expect("token file");
    let log_path = std::env::temp_dir().join(format!("{namespace}.log"));
    github.reset_requests();
    let resync = 120;
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backup-warden"))
        // The image's malloc settings, as in production.
        .env("GLIBC_TUNABLES", measure::shipped_malloc_tunables())
        .args([
            "run",
            "--listen-address",
            "127.0.0.1:0",
            "--namespace",
            &namespace,
        ])
        .args([
            "--aws-endpoint-url",
            &env.aws_endpoint,
            "--tenancy-file",
            &testing::open_tenancy_file().display().to_string(),
            "--resync-interval",
            &format!("{resync}s"),
        ])
        .args(["--github-api-url", &github.base_url(), "--github-token-file"])
        .arg(&token_file)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("BACKUP_WARDEN_LOG", "warn")
        .stdout(Stdio::from(std::fs::File::create(&log_path).expect("log file")))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start backup-warden run");
    let pid = child.id();

    let mut ready = 0;
    while ready < n {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let list = repos.list(&ListParams::default()).await.expect("list");
        ready = list
            .items
            .iter()
            .filter(|r| repo_condition(r, ConditionType::Ready).is_some_and(|c| c.0 == "True"))
            .count();
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the controller exited; see {}",
            log_path.display()
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "only {ready} of {n} Ready after 15 minutes"
        );
    }
    let first_sweep = started.elapsed();
    let first = github_requests(&github);

    // The second sweep: every repository is read again by GraphQL one resync after its
    // first look; REST follows only where something says it may have changed.
    github.reset_requests();
    while github.graphql_batches().iter().sum::<usize>() < n {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "second sweep incomplete"
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = github_requests(&github);
    let rss = testing::peak_rss_kib(pid);
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    child.wait().expect("exit");

    println!("## sweep {n} BackedUpRepositories (compliant repositories; GitHub fake, S3 in the emulator)");
    println!(
        "wall time of the first sweep (all Ready): {:.1}s",
        first_sweep.as_secs_f64()
    );
    println!(
        "controller peak RSS: {:.1} MiB ({:.1} KiB per object)",
        rss as f64 / 1024.0,
        rss as f64 / n as f64
    );
    print_github_requests("GitHub requests, first sweep", &first);
    print_github_requests("GitHub requests, second sweep (nothing changed)", &second);
}
