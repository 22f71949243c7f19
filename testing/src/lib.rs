//! Test support shared by backup-warden's integration tests and benchmarks, a crate of its
//! own (a dev-dependency) so that no build of the product contains it: the local
//! environment (kube-apiserver + etcd, the AWS emulator), a namespace per test, AWS SDK
//! configuration that points at the emulator, the GitHub and Slack fakes.
//!
//! The environment is started once per test process by `hack/local-env.sh up`, which
//! reuses what already runs (so `make test` starts it once for every test binary) and,
//! when it started something itself, stops it after this process exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};

pub mod chromium;
pub mod github_fake;
pub mod model;
pub mod private_env;
pub mod proxy;
pub mod slack_fake;

/// Where the running local environment is.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub aws_endpoint: String,
}

/// The environment for this test process, started (or found running) on first use.
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let script = repo_root().join("hack/local-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args(["up", "--owner-pid", &std::process::id().to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "hack/local-env.sh up failed ({})",
            output.status
        );
        let env_file = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let vars = read_env_file(Path::new(&env_file));
        let var = |name: &str| {
            vars.get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{env_file} lacks {name}"))
        };
        TestEnv {
            kubeconfig: PathBuf::from(var("KUBECONFIG")),
            kubectl: PathBuf::from(var("BACKUP_WARDEN_KUBECTL")),
            aws_endpoint: var("BACKUP_WARDEN_AWS_ENDPOINT"),
        }
    })
}

pub fn repo_root() -> PathBuf {
    // This crate sits in `testing/` of the repository.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .expect("the repository")
}

fn read_env_file(path: &Path) -> HashMap<String, String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl TestEnv {
    /// A client for the local API server. Made per test: a kube client belongs to the
    /// tokio runtime it was created on, and every `#[tokio::test]` has its own.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
        Client::try_from(config).expect("client")
    }

    /// Runs the locally built kubectl against the local API server.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// AWS SDK configuration for one region of the emulator, with throwaway credentials.
    pub async fn aws_config(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.aws_endpoint)
            .test_credentials()
            .load()
            .await
    }
}

/// A name no other test (in this or an earlier run) uses: `<prefix>-<pid>-<n>-<time>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{millis}", std::process::id())
}

/// Creates a fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

/// The CRDs as installed are shared by every test of the binary. A test that needs them
/// exactly as generated holds `crd_schema()` (after `install_crds`, never around it: a
/// second read behind a waiting writer would deadlock); one that changes them holds
/// `crd_schema_change()` and puts them back with `apply_crds` before it lets go.
static CRD_SCHEMA: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn crd_schema() -> tokio::sync::RwLockReadGuard<'static, ()> {
    CRD_SCHEMA.read().await
}

pub async fn crd_schema_change() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    CRD_SCHEMA.write().await
}

/// Tests that load the machine for a minute or more (hundreds of objects, the fault
/// campaign) take turns, so that none of them measures the other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// Installs (server-side applies) both CRDs and waits until they are Established, unless a
/// test is changing them (it puts them back first).
pub async fn install_crds(client: &Client) {
    let _schema = crd_schema().await;
    apply_crds(client).await;
}

/// `install_crds` for the test that holds `crd_schema_change()`.
pub async fn apply_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("backup-warden-tests").force();
    for crd in backup_warden::api::crds() {
        let name = crd.metadata.name.clone().expect("crd name");
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .expect("apply CRD");
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .expect("CRD established within 30s")
            .expect("watch CRD");
    }
}

/// A fresh 12-digit AWS account id. The emulator keeps each account's resources apart, so a
/// test that works in its own account (through `roleArn`) sees only what it made.
pub fn unique_account() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = u64::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64 ^ (u64::from(std::process::id()) << 20)).wrapping_add(n * 7_919);
    format!("{:012}", 100_000_000_000 + mixed % 800_000_000_000)
}

/// The role a test's objects name in `spec.instance.roleArn`.
pub fn role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/backup-warden")
}

impl TestEnv {
    /// AWS SDK configuration for one region of the emulator, acting in `account` through
    /// AssumeRole exactly as the controller does for objects with a `roleArn`.
    pub async fn aws_config_in(&self, region: &str, account: &str) -> aws_config::SdkConfig {
        let base = self.aws_config(region).await;
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn(account))
            .session_name("backup-warden-tests")
            .region(aws_config::Region::new(region.to_string()))
            .configure(&base)
            .build()
            .await;
        base.to_builder()
            .credentials_provider(aws_sdk_rds::config::SharedCredentialsProvider::new(provider))
            .build()
    }

    /// AWS clients that talk to the emulator, counting their calls.
    pub async fn aws_clients(&self) -> std::sync::Arc<backup_warden::aws::AwsClients> {
        self.aws_clients_at(&self.aws_endpoint, backup_warden::timeouts::Timeouts::default())
            .await
    }

    /// AWS clients that talk to `endpoint` (a proxy in front of the emulator, or nothing).
    pub async fn aws_clients_at(
        &self,
        endpoint: &str,
        timeouts: backup_warden::timeouts::Timeouts,
    ) -> std::sync::Arc<backup_warden::aws::AwsClients> {
        self.aws_clients_with(
            endpoint,
            timeouts,
            Default::default(),
            backup_warden::aws::budget::Rate::KMS_WRITES,
        )
        .await
    }

    /// AWS clients for the emulator whose RDS requests, and each KMS key write, draw from
    /// budgets of `rate`.
    pub async fn aws_clients_limited(
        &self,
        rate: backup_warden::aws::budget::Rate,
    ) -> std::sync::Arc<backup_warden::aws::AwsClients> {
        let timeouts = backup_warden::timeouts::Timeouts::default();
        self.aws_clients_with(&self.aws_endpoint, timeouts, rate, rate)
            .await
    }

    async fn aws_clients_with(
        &self,
        endpoint: &str,
        timeouts: backup_warden::timeouts::Timeouts,
        rds_rate: backup_warden::aws::budget::Rate,
        kms_write_rate: backup_warden::aws::budget::Rate,
    ) -> std::sync::Arc<backup_warden::aws::AwsClients> {
        let calls = std::sync::Arc::new(backup_warden::aws::ApiCalls::default());
        let settings = backup_warden::aws::AwsSettings {
            endpoint_url: Some(endpoint.to_string()),
            concurrency: 8,
            timeouts,
            rds_rate,
            kms_write_rate,
        };
        let config = self
            .aws_config("us-east-1")
            .await
            .to_builder()
            .endpoint_url(endpoint)
            .build();
        std::sync::Arc::new(backup_warden::aws::AwsClients::new(config, settings, calls))
    }

    /// A controller context whose AWS adapters talk to the emulator.
    pub async fn context(
        &self,
        policy: backup_warden::policy::database::Policy,
        timing: backup_warden::controller::Timing,
    ) -> std::sync::Arc<backup_warden::controller::Context> {
        let aws = self.aws_clients().await;
        let rds = std::sync::Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
        self.context_with(rds, aws, policy, timing, None).await
    }

    /// A controller context with the given RDS adapter (a wrapper that injects faults, say).
    pub async fn context_with(
        &self,
        rds: std::sync::Arc<dyn backup_warden::aws::rds::Rds>,
        aws: std::sync::Arc<backup_warden::aws::AwsClients>,
        policy: backup_warden::policy::database::Policy,
        timing: backup_warden::controller::Timing,
        notifier: Option<std::sync::Arc<dyn backup_warden::report::slack::Notifier>>,
    ) -> std::sync::Arc<backup_warden::controller::Context> {
        let kms = std::sync::Arc::new(backup_warden::aws::kms::SdkKms { clients: aws.clone() });
        let notifier =
            notifier.unwrap_or_else(|| std::sync::Arc::new(backup_warden::report::slack::NoopNotifier));
        std::sync::Arc::new(self.context_parts(rds, kms, &aws, policy, timing, notifier).await)
    }

    /// A controller context with the given KMS adapter (a wrapper that injects faults, say)
    /// and orphan key cleanup settings.
    pub async fn context_with_kms(
        &self,
        kms: std::sync::Arc<dyn backup_warden::aws::kms::Kms>,
        aws: std::sync::Arc<backup_warden::aws::AwsClients>,
        policy: backup_warden::policy::database::Policy,
        timing: backup_warden::controller::Timing,
        cleanup: backup_warden::controller::key_cleanup::KeyCleanupSettings,
    ) -> std::sync::Arc<backup_warden::controller::Context> {
        let rds = std::sync::Arc::new(backup_warden::aws::rds::SdkRds { clients: aws.clone() });
        let notifier = std::sync::Arc::new(backup_warden::report::slack::NoopNotifier);
        let ctx = self.context_parts(rds, kms, &aws, policy, timing, notifier).await;
        std::sync::Arc::new(ctx.with_key_cleanup(cleanup))
    }

    /// A controller context whose RDS and KMS are the in-process `model` (benchmarks at
    /// scale), counting into `calls`.
    pub async fn model_context(
        &self,
        model: std::sync::Arc<model::AwsModel>,
        calls: std::sync::Arc<backup_warden::aws::ApiCalls>,
        policy: backup_warden::policy::database::Policy,
        timing: backup_warden::controller::Timing,
    ) -> std::sync::Arc<backup_warden::controller::Context> {
        let metrics = std::sync::Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
        calls.attach_metric(metrics.external_calls.clone());
        let mut ctx = backup_warden::controller::Context::new(
            self.client().await,
            model.clone(),
            model,
            calls,
            policy,
            timing,
            backup_warden::controller::context::Reporters {
                metrics,
                notifier: std::sync::Arc::new(backup_warden::report::slack::NoopNotifier),
                evidence: backup_warden::evidence::EvidenceLog::off(),
            },
        );
        ctx.tenancy = open_tenancy();
        std::sync::Arc::new(ctx)
    }

    async fn context_parts(
        &self,
        rds: std::sync::Arc<dyn backup_warden::aws::rds::Rds>,
        kms: std::sync::Arc<dyn backup_warden::aws::kms::Kms>,
        aws: &std::sync::Arc<backup_warden::aws::AwsClients>,
        policy: backup_warden::policy::database::Policy,
        timing: backup_warden::controller::Timing,
        notifier: std::sync::Arc<dyn backup_warden::report::slack::Notifier>,
    ) -> backup_warden::controller::Context {
        let calls = aws.calls().clone();
        let metrics = std::sync::Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics"));
        calls.attach_metric(metrics.external_calls.clone());
        let mut ctx = backup_warden::controller::Context::new(
            self.client().await,
            rds,
            kms,
            calls,
            policy,
            timing,
            backup_warden::controller::context::Reporters {
                metrics,
                notifier,
                evidence: backup_warden::evidence::EvidenceLog::off(),
            },
        );
        ctx.tenancy = open_tenancy();
        ctx
    }
}

/// The tenancy of tests: each test acts in its own AWS account through a role, so every
/// namespace may use every role (and the controller's identity, and any repository).
pub fn open_tenancy() -> std::sync::Arc<backup_warden::tenancy::Tenancy> {
    let tenancy = backup_warden::tenancy::Tenancy::from_file(&open_tenancy_file()).expect("tenancy");
    std::sync::Arc::new(tenancy)
}

const OPEN_TENANCY: &str =
    "namespaces:\n  \"*\":\n    aws: [\"self\", \"arn:aws:iam::*\"]\n    github: [\"*\"]\n";

/// The same as a file, for `backup-warden run --tenancy-file`.
pub fn open_tenancy_file() -> PathBuf {
    // Written once: tests running at the same time read it (a rewrite would truncate it
    // under a reader).
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("backup-warden-open-tenancy-{}.yaml", std::process::id()));
        std::fs::write(&path, OPEN_TENANCY).expect("write the tenancy file");
        path
    })
    .clone()
}

/// Timing for tests: everything happens within seconds.
pub fn fast_timing() -> backup_warden::controller::Timing {
    backup_warden::controller::Timing {
        resync: Duration::from_secs(3),
        settle: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
    }
}

/// Runs the database controller for one namespace until the handle is aborted or dropped.
pub struct RunningController {
    pub ctx: std::sync::Arc<backup_warden::controller::Context>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningController {
    pub fn start(ctx: std::sync::Arc<backup_warden::controller::Context>, namespace: &str) -> Self {
        let api: Api<backup_warden::api::BackedUpDatabase> = Api::namespaced(ctx.client.clone(), namespace);
        let handle = tokio::spawn(backup_warden::controller::database::run(
            api,
            ctx.clone(),
            8,
            std::future::pending(),
        ));
        Self { ctx, handle }
    }

    /// Stops it at once, as a crash would.
    pub fn kill(self) {
        self.handle.abort();
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Waits until `check` holds for the named object, or panics after `timeout` with the
/// object's last state.
pub async fn wait_for<K, F>(api: &Api<K>, name: &str, timeout: Duration, check: F) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = api.get_opt(name).await.ok().flatten();
        if let Some(object) = &last
            && check(object)
        {
            return object.clone();
        }
        if tokio::time::Instant::now() > deadline {
            // Managed fields would bury the status (CI shows a part of the output only).
            let last = last.map(|mut object| {
                object.meta_mut().managed_fields = None;
                object
            });
            panic!("{name}: condition not met within {timeout:?}; last state: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status, reason and message of a condition of a `BackedUpDatabase`.
pub fn condition(
    db: &backup_warden::api::BackedUpDatabase,
    type_: impl Into<backup_warden::api::ConditionType>,
) -> Option<(String, String, String)> {
    let conditions = &db.status.as_ref()?.conditions;
    backup_warden::api::conditions::find_condition(conditions, type_)
        .map(|c| (c.status.to_string(), c.reason.to_string(), c.message.to_string()))
}

impl TestEnv {
    /// POSTs JSON to one of the emulator's test-only endpoints (`/moto-api/backup-warden/...`)
    /// and returns the status code and body.
    pub fn emulator_post(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        use std::io::{Read, Write};
        let authority = self
            .aws_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(authority).expect("connect to the emulator");
        let body = body.to_string();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

/// The repository controller's context against a GitHub fake and the emulator's S3.
pub async fn repository_context(
    github_base_url: &str,
    token: &str,
    policy: backup_warden::policy::repository::RepositoryPolicy,
    timing: backup_warden::controller::Timing,
    reporters: Option<backup_warden::controller::context::Reporters>,
) -> (
    std::sync::Arc<backup_warden::controller::repository::RepoContext>,
    kube::runtime::reflector::store::Writer<
        backup_warden::controller::Decoded<backup_warden::api::BackedUpRepository>,
    >,
) {
    let s3 = std::sync::Arc::new(backup_warden::aws::s3::SdkS3 {
        clients: env().aws_clients().await,
    });
    repository_context_on(github_base_url, token, s3, policy, timing, reporters).await
}

/// The repository controller's context against a GitHub fake and `s3` (the emulator's, or
/// the in-process model's).
pub async fn repository_context_on(
    github_base_url: &str,
    token: &str,
    s3: std::sync::Arc<dyn backup_warden::aws::s3::S3>,
    policy: backup_warden::policy::repository::RepositoryPolicy,
    timing: backup_warden::controller::Timing,
    reporters: Option<backup_warden::controller::context::Reporters>,
) -> (
    std::sync::Arc<backup_warden::controller::repository::RepoContext>,
    kube::runtime::reflector::store::Writer<
        backup_warden::controller::Decoded<backup_warden::api::BackedUpRepository>,
    >,
) {
    use std::sync::Arc;
    let env = env();
    let settings = backup_warden::github::client::GitHubSettings {
        base_url: github_base_url.to_string(),
        auth: backup_warden::github::GitHubAuth::Token(token.to_string()),
        concurrency: 8,
        writes_per_minute: 1000,
        writes_per_hour: 10_000,
        reads_per_minute: 100_000,
        timeouts: backup_warden::timeouts::Timeouts::default(),
    };
    let github: Arc<dyn backup_warden::github::GitHub> =
        Arc::new(backup_warden::github::GitHubClient::new(&settings).expect("github client"));
    let client = env.client().await;
    let (store, writer) = backup_warden::controller::repository::store();
    let ctx = backup_warden::controller::repository::RepoContext {
        repos: backup_warden::github::inventory::RepoInventory::new(github.clone()),
        github,
        buckets: backup_warden::aws::inventory::BucketInventory::new(s3),
        policy,
        timing,
        recorder: backup_warden::report::recorder::Recorder::new(client.clone(), "backup-warden".into()),
        backoff: backup_warden::controller::context::Backoff::new(timing),
        store,
        client,
        metrics: reporters.as_ref().map_or_else(
            || Arc::new(backup_warden::report::metrics::Metrics::new().expect("metrics")),
            |r| r.metrics.clone(),
        ),
        notifier: reporters.as_ref().map_or_else(
            || {
                Arc::new(backup_warden::report::slack::NoopNotifier)
                    as Arc<dyn backup_warden::report::slack::Notifier>
            },
            |r| r.notifier.clone(),
        ),
        tenancy: open_tenancy(),
        shards: backup_warden::controller::shards::Ownership::all(),
        wakes: Default::default(),
        evidence: reporters.map_or_else(backup_warden::evidence::EvidenceLog::off, |r| r.evidence),
    };
    (Arc::new(ctx), writer)
}

/// Runs the repository controller for one namespace until dropped.
pub struct RunningRepoController {
    pub ctx: std::sync::Arc<backup_warden::controller::repository::RepoContext>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningRepoController {
    pub fn start(
        ctx: std::sync::Arc<backup_warden::controller::repository::RepoContext>,
        writer: kube::runtime::reflector::store::Writer<
            backup_warden::controller::Decoded<backup_warden::api::BackedUpRepository>,
        >,
        namespace: &str,
    ) -> Self {
        let api: Api<backup_warden::api::BackedUpRepository> = Api::namespaced(ctx.client.clone(), namespace);
        let handle = tokio::spawn(backup_warden::controller::repository::run(
            api,
            ctx.clone(),
            writer,
            8,
            std::future::pending(),
        ));
        Self { ctx, handle }
    }
}

impl Drop for RunningRepoController {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The status, reason and message of a condition of a `BackedUpRepository`.
pub fn repo_condition(
    repo: &backup_warden::api::BackedUpRepository,
    type_: impl Into<backup_warden::api::ConditionType>,
) -> Option<(String, String, String)> {
    let conditions = &repo.status.as_ref()?.conditions;
    backup_warden::api::conditions::find_condition(conditions, type_)
        .map(|c| (c.status.to_string(), c.reason.to_string(), c.message.to_string()))
}

/// Creates a small PostgreSQL DB instance in the emulator with the given backup retention.
pub async fn create_instance(rds: &aws_sdk_rds::Client, identifier: &str, retention_days: i32) {
    rds.create_db_instance()
        .db_instance_identifier(identifier)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .backup_retention_period(retention_days)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create instance {identifier}: {e}"));
}

/// Creates a BackedUpDatabase named after each id, 16 at a time, with `spec(id)` as spec.
pub async fn create_databases(
    api: &Api<backup_warden::api::BackedUpDatabase>,
    ids: &[String],
    spec: impl Fn(&str) -> serde_json::Value,
) {
    use futures::StreamExt;
    futures::stream::iter(ids.iter().map(|id| (id, spec(id))))
        .for_each_concurrent(16, |(id, spec)| async move {
            let object: backup_warden::api::BackedUpDatabase = serde_json::from_value(serde_json::json!({
                "apiVersion": "backupwarden.io/v1alpha1", "kind": "BackedUpDatabase",
                "metadata": {"name": id}, "spec": spec,
            }))
            .expect("object");
            api.create(&kube::api::PostParams::default(), &object)
                .await
                .expect("create BackedUpDatabase");
        })
        .await;
}

/// The peak resident set size of a process, in KiB (`VmHWM`), for benchmarks.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs `promtool check metrics` (installed by hack/promtool.sh) on a scrape; panics with
/// promtool's complaints.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let promtool = Command::new("bash")
        .arg(repo_root().join("hack/promtool.sh"))
        .output()
        .expect("hack/promtool.sh");
    assert!(
        promtool.status.success(),
        "{}",
        String::from_utf8_lossy(&promtool.stderr)
    );
    let mut child = Command::new(String::from_utf8_lossy(&promtool.stdout).trim())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The status code and body of a plain HTTP GET, or None while nothing listens.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

pub fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

/// Starts `backup-warden run` (`binary`: `env!("CARGO_BIN_EXE_backup-warden")` in a test)
/// for one namespace, serving health and metrics on `addr`, with throwaway AWS
/// credentials and `extra` flags.
pub fn spawn_controller(
    binary: &str,
    kubeconfig: &Path,
    addr: std::net::SocketAddr,
    namespace: &str,
    extra: &[&str],
) -> std::process::Child {
    Command::new(binary)
        .args([
            "run",
            "--listen-address",
            &addr.to_string(),
            "--namespace",
            namespace,
        ])
        .arg("--tenancy-file")
        .arg(open_tenancy_file())
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("KUBECONFIG", kubeconfig)
        .env("BACKUP_WARDEN_LOG_FORMAT", "text")
        // GitHub is configured only by the flags a test passes, never by the shell's token.
        .env_remove("GITHUB_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn backup-warden run")
}

/// Waits for a child process to exit; panics after `within`.
pub fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup-warden did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything a finished child process printed.
pub fn output_of(child: std::process::Child) -> String {
    let out = child.wait_with_output().expect("output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that reconciles which find nothing new write no status: after one reconcile to
/// settle, three more (counted by `reconciles`) leave the object's resourceVersion as it was.
pub async fn assert_quiet_sweeps_write_nothing<K>(
    api: &kube::Api<K>,
    name: &str,
    metrics: &backup_warden::report::metrics::Metrics,
    kind: &str,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let reconciles = || metrics.reconciles.with_label_values(&[kind]).get();
    let writes = || metrics.status_writes.with_label_values(&[kind]).get();
    let after = |n: u64| {
        let seen = reconciles();
        async move {
            while reconciles() < seen + n {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    after(1).await;
    let before = api.get(name).await.expect("get");
    let writes_before = writes();
    after(3).await;
    let now = api.get(name).await.expect("get");
    assert_eq!(
        now.meta().resource_version,
        before.meta().resource_version,
        "a quiet sweep rewrote {name}: {now:?}"
    );
    // A PATCH that changes nothing leaves the resource version: count what was sent.
    assert_eq!(
        writes(),
        writes_before,
        "a quiet sweep sent status writes for {name}"
    );
}
