//! The command line: `run`, `crd` and `version`. Every flag has an environment fallback
//! so the same binary is configured by flags locally and by env in a Deployment.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::{api, api::PositiveDuration, controller, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "backup-warden",
    version,
    about = "Makes a backup policy true and keeps it true"
)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: telemetry::LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller against the cluster from kubeconfig or the in-cluster config.
    Run(Box<RunArgs>),
    /// Print both CRDs as YAML (or write one file per CRD with --output-dir).
    Crd(CrdArgs),
    /// Validate manifests as the API server would (schema, defaults, CEL rules), then evaluate
    /// them once against AWS and GitHub, without a cluster; never writes.
    /// Exits 0 when compliant, 1 on drift, 2 on error or an invalid manifest.
    Check(Box<CheckArgs>),
    /// What BackupCoverage manifests find in AWS that no BackedUpDatabase manifest declares.
    #[command(subcommand)]
    Coverage(CoverageCommand),
    /// The auditor's report for a period, from the evidence bucket (and today's state from
    /// the cluster, when one answers): one self-contained HTML file, and JSON with --json.
    /// Exits 0 when written, 2 on error.
    Report(Box<ReportArgs>),
    /// The data-flow map of the estate the cluster declares (databases and their replicated
    /// backups, repositories and their bucket, the audit trail and its bucket), as SVG,
    /// Graphviz DOT or Mermaid. Exits 0 when written, 2 on error.
    Map(MapArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The first day (UTC) of the period, YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    pub from: k8s_openapi::jiff::civil::Date,
    /// The last day (UTC) of the period, YYYY-MM-DD (included).
    #[arg(long, value_parser = parse_date)]
    pub to: k8s_openapi::jiff::civil::Date,
    /// The evidence bucket (the controller's --evidence-bucket).
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_BUCKET")]
    pub bucket: String,
    /// The evidence key prefix (the controller's --evidence-prefix).
    #[arg(
        long,
        env = "BACKUP_WARDEN_EVIDENCE_PREFIX",
        default_value = "backup-warden/evidence/"
    )]
    pub prefix: String,
    /// The evidence bucket's region.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// The HTML file to write (default: backup-evidence-FROM-TO.html).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Read today's state from the cluster: auto (when the period includes today and a
    /// cluster answers), always, or never (from the bucket alone).
    #[arg(long, value_enum, default_value = "auto")]
    pub live: crate::auditor::command::Live,
    /// Evidence objects read at once (S3 takes thousands of GETs a second per prefix).
    #[arg(long, default_value_t = crate::evidence::read::CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,
    /// Send AWS calls to this endpoint instead of AWS (an emulator).
    #[arg(long, env = "BACKUP_WARDEN_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Args, Debug)]
pub struct MapArgs {
    /// svg, dot (Graphviz) or mermaid.
    #[arg(long, short = 'f', default_value = "svg", value_parser = ["svg", "dot", "mermaid"])]
    pub format: String,
    /// The file to write (default: standard output).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Only the objects of this namespace (default: every namespace).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

fn parse_date(text: &str) -> Result<k8s_openapi::jiff::civil::Date, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a date YYYY-MM-DD: {e}"))
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, env = "BACKUP_WARDEN_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen_address: SocketAddr,
    /// How often every object is checked against AWS and GitHub (drift there fires no watch event).
    #[arg(long, env = "BACKUP_WARDEN_RESYNC_INTERVAL", default_value = "5m")]
    pub resync_interval: PositiveDuration,
    /// How soon an object with a change under way is looked at again.
    #[arg(long, env = "BACKUP_WARDEN_SETTLE_INTERVAL", default_value = "30s")]
    pub settle_interval: PositiveDuration,
    /// The company's retention floor in days: a spec asking for less gets this.
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i32).range(1..=35))]
    pub policy_min_retention_days: i32,
    /// Report drift everywhere, change nothing, whatever each object's mode says.
    #[arg(long, env = "BACKUP_WARDEN_AUDIT_ONLY")]
    pub audit_only: bool,
    /// Send AWS calls to this endpoint instead of AWS (an emulator).
    #[arg(long, env = "BACKUP_WARDEN_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Objects reconciled at once, and AWS calls in flight per (account, region).
    #[arg(long, env = "BACKUP_WARDEN_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// RDS requests per second per AWS account and region, shared by every RDS call
    /// backup-warden makes there (each page of a listing counts): its share of RDS's rate.
    #[arg(long, env = "BACKUP_WARDEN_RDS_REQUESTS_PER_SECOND", default_value_t = 12.0, value_parser = positive_rate)]
    pub rds_requests_per_second: f64,
    /// RDS requests per AWS account and region that may go at once before that rate applies.
    #[arg(long, env = "BACKUP_WARDEN_RDS_BURST", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub rds_burst: u32,
    /// KMS key writes per second per AWS account and region, for each of CreateKey,
    /// CreateAlias, ScheduleKeyDeletion and CancelKeyDeletion: KMS's own quota for them.
    #[arg(long, env = "BACKUP_WARDEN_KMS_WRITES_PER_SECOND", default_value_t = 5.0, value_parser = positive_rate)]
    pub kms_writes_per_second: f64,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "BACKUP_WARDEN_NAMESPACE")]
    pub namespace: Option<String>,
    /// The company keeps repository backups at least this many days.
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_BACKUP_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i32).range(1..=36500))]
    pub policy_min_backup_retention_days: i32,
    /// The company keeps audit trails (CloudTrail logs) at least this many days.
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_TRAIL_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(i32).range(1..=3653))]
    pub policy_min_trail_retention_days: i32,
    /// The SQS queue EventBridge delivers CloudTrail management events to (see the
    /// installation guide): the objects a change concerns are reconciled within seconds.
    #[arg(long, env = "BACKUP_WARDEN_EVENTS_QUEUE_URL")]
    pub events_queue_url: Option<String>,
    /// Where change events that cannot be read go (without it they are dropped, counted).
    #[arg(
        long,
        env = "BACKUP_WARDEN_EVENTS_DEAD_LETTER_QUEUE_URL",
        requires = "events_queue_url"
    )]
    pub events_dead_letter_queue_url: Option<String>,
    /// The queue's region when its URL does not say (an emulator's).
    #[arg(long, env = "BACKUP_WARDEN_EVENTS_QUEUE_REGION", default_value = "us-east-1")]
    pub events_queue_region: String,
    /// Serve GitHub webhooks (POST /github/webhook) on this address; needs
    /// --github-webhook-secret-file.
    #[arg(
        long,
        env = "BACKUP_WARDEN_GITHUB_WEBHOOK_LISTEN_ADDRESS",
        requires = "github_webhook_secret_file"
    )]
    pub github_webhook_listen_address: Option<SocketAddr>,
    /// A file holding the webhook's secret (a mounted Secret): deliveries not signed with it
    /// are refused.
    #[arg(
        long,
        env = "BACKUP_WARDEN_GITHUB_WEBHOOK_SECRET_FILE",
        requires = "github_webhook_listen_address"
    )]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// Restore drills running at once per AWS identity (an object's role, or the
    /// controller's own) and destination region at most, per replica: each is a temporary
    /// RDS instance.
    #[arg(long, env = "BACKUP_WARDEN_RESTORE_DRILLS_PER_REGION", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub restore_drills_per_region: u16,
    /// Keep evidence for auditors in this S3 bucket: every check transition and action, and
    /// one attestation per object a day, as JSON lines nothing rewrites (`backup-warden
    /// report` reads them). Without it, no evidence is kept.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_BUCKET")]
    pub evidence_bucket: Option<String>,
    /// The key prefix of the evidence ("" for the bucket's root).
    #[arg(
        long,
        env = "BACKUP_WARDEN_EVIDENCE_PREFIX",
        default_value = "backup-warden/evidence/"
    )]
    pub evidence_prefix: String,
    /// The evidence bucket's region.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_REGION", default_value = "us-east-1")]
    pub evidence_region: String,
    /// Where evidence records wait until uploaded (a volume, so that a restart or an outage of
    /// the bucket loses none); without it they wait in memory.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_SPOOL_DIR")]
    pub evidence_spool_dir: Option<PathBuf>,
    /// The most evidence that may wait, in bytes; beyond it records are dropped, counted and
    /// reported in a gap record.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_SPOOL_MAX_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4096..))]
    pub evidence_spool_max_bytes: u64,
    /// How often waiting evidence is uploaded.
    #[arg(long, env = "BACKUP_WARDEN_EVIDENCE_FLUSH_INTERVAL", default_value = "1m")]
    pub evidence_flush_interval: PositiveDuration,
    /// A file holding the Slack incoming-webhook URL (a mounted Secret); SLACK_WEBHOOK_URL is
    /// read when absent. Without either, nothing is sent to Slack.
    #[arg(long, env = "BACKUP_WARDEN_SLACK_WEBHOOK_URL_FILE")]
    pub slack_webhook_url_file: Option<std::path::PathBuf>,
    /// Elect a leader among replicas on a coordination.k8s.io Lease; only the leader acts.
    #[arg(long, env = "BACKUP_WARDEN_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Split the objects into this many shards by a stable hash of namespace and name; each
    /// replica acts on the shards whose Leases it holds, up to its fair share, and takes over
    /// the shards of a replica that is gone once their leases expire. Excludes
    /// --leader-election. 1: no sharding.
    #[arg(long, env = "BACKUP_WARDEN_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// The namespace of the leader and shard Leases (the controller's own namespace).
    #[arg(long, env = "BACKUP_WARDEN_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// The administrator's tenancy file: which AWS roles and GitHub repositories each
    /// namespace may use. Without it, every namespace may use backup-warden's own AWS
    /// identity and any repository, and none may name a role.
    #[arg(long, env = "BACKUP_WARDEN_TENANCY_FILE")]
    pub tenancy_file: Option<PathBuf>,
    /// Schedule the deletion (30-day waiting period, cancellable) of replica keys backup-warden
    /// made that no alias points to and no backup uses: `--key-cleanup=false` turns it off.
    #[arg(long, env = "BACKUP_WARDEN_KEY_CLEANUP", default_value_t = true, action = clap::ArgAction::Set)]
    pub key_cleanup: bool,
    /// How old such a key must be before the cleanup touches it (at least 1m).
    #[arg(long, env = "BACKUP_WARDEN_KEY_CLEANUP_GRACE", default_value = "24h", value_parser = cleanup_grace)]
    pub key_cleanup_grace: PositiveDuration,
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// Bounded waits on every AWS, GitHub and Slack call.
#[derive(Args, Debug, Clone)]
pub struct TimeoutArgs {
    /// Longest wait to connect (TCP and TLS) to AWS, GitHub or Slack.
    #[arg(long, env = "BACKUP_WARDEN_CONNECT_TIMEOUT", default_value = "5s")]
    pub connect_timeout: PositiveDuration,
    /// Longest wait for one attempt of a call: the request sent and the whole response read.
    #[arg(long, env = "BACKUP_WARDEN_REQUEST_TIMEOUT", default_value = "20s")]
    pub request_timeout: PositiveDuration,
    /// Longest wait for a whole call, retries included.
    #[arg(long, env = "BACKUP_WARDEN_OPERATION_TIMEOUT", default_value = "60s")]
    pub operation_timeout: PositiveDuration,
}

impl TimeoutArgs {
    pub fn timeouts(&self) -> crate::timeouts::Timeouts {
        crate::timeouts::Timeouts {
            connect: self.connect_timeout.as_duration(),
            attempt: self.request_timeout.as_duration(),
            operation: self.operation_timeout.as_duration(),
        }
    }
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of requests per second"
        )),
    }
}

/// The grace period must outlast the moment between CreateKey and CreateAlias by far.
fn cleanup_grace(text: &str) -> Result<PositiveDuration, String> {
    let grace: PositiveDuration = text.parse()?;
    if grace.as_duration() < std::time::Duration::from_secs(60) {
        return Err(format!(
            "{text:?} is too short: a key is left alone for at least 1m"
        ));
    }
    Ok(grace)
}

/// GitHub access. Without credentials, BackedUpRepository objects are not reconciled.
#[derive(Args, Debug, Clone)]
pub struct GitHubArgs {
    /// The GitHub REST API root (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(
        long = "github-api-url",
        env = "BACKUP_WARDEN_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub api_url: String,
    /// A file holding a GitHub token (a mounted Secret); GITHUB_TOKEN is read when absent.
    #[arg(long = "github-token-file", env = "BACKUP_WARDEN_GITHUB_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// GitHub App id (with --github-app-installation-id and --github-app-private-key-file).
    #[arg(long = "github-app-id", env = "BACKUP_WARDEN_GITHUB_APP_ID")]
    pub app_id: Option<u64>,
    #[arg(
        long = "github-app-installation-id",
        env = "BACKUP_WARDEN_GITHUB_APP_INSTALLATION_ID"
    )]
    pub app_installation_id: Option<u64>,
    /// A file holding the GitHub App's private key (PEM).
    #[arg(
        long = "github-app-private-key-file",
        env = "BACKUP_WARDEN_GITHUB_APP_PRIVATE_KEY_FILE"
    )]
    pub app_private_key_file: Option<std::path::PathBuf>,
    /// GitHub requests in flight.
    #[arg(
        id = "github_concurrency",
        long = "github-concurrency",
        env = "BACKUP_WARDEN_GITHUB_CONCURRENCY",
        default_value_t = 8
    )]
    pub concurrency: usize,
    /// Content-creating requests (commits, branches, pull requests) per minute; GitHub allows 80.
    #[arg(
        long = "github-writes-per-minute",
        env = "BACKUP_WARDEN_GITHUB_WRITES_PER_MINUTE",
        default_value_t = 40
    )]
    pub writes_per_minute: usize,
    /// Content-creating requests per hour; GitHub allows 500.
    #[arg(
        long = "github-writes-per-hour",
        env = "BACKUP_WARDEN_GITHUB_WRITES_PER_HOUR",
        default_value_t = 400
    )]
    pub writes_per_hour: usize,
    /// REST reads per minute (all replicas together); GitHub's secondary limit is 900
    /// points per minute, a read costing one.
    #[arg(
        long = "github-reads-per-minute",
        env = "BACKUP_WARDEN_GITHUB_READS_PER_MINUTE",
        default_value_t = 600
    )]
    pub reads_per_minute: usize,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Manifest files, directories (*.yaml, *.yml, recursively) or - for standard input.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// table or json.
    #[arg(long, short = 'o', env = "BACKUP_WARDEN_OUTPUT", default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
    /// Also scan what the BackupCoverage manifests name: each instance no BackedUpDatabase
    /// manifest declares (and no exemption covers) is a drift row.
    #[arg(long)]
    pub coverage: bool,
    /// Send AWS calls to this endpoint instead of AWS (an emulator).
    #[arg(long, env = "BACKUP_WARDEN_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i32).range(1..=35))]
    pub policy_min_retention_days: i32,
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_BACKUP_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i32).range(1..=36500))]
    pub policy_min_backup_retention_days: i32,
    #[arg(long, env = "BACKUP_WARDEN_POLICY_MIN_TRAIL_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(i32).range(1..=3653))]
    pub policy_min_trail_retention_days: i32,
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Subcommand, Debug)]
pub enum CoverageCommand {
    /// Print BackedUpDatabase and BackedUpRepository manifests for every instance and
    /// repository a BackupCoverage manifest finds undeclared by the manifests given with it,
    /// ready to commit; without a cluster. Exits 0 (nothing printed when nothing is
    /// undeclared), 2 on error.
    Export(Box<ExportArgs>),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Manifests: the BackupCoverage and the BackedUpDatabases already declared (files,
    /// directories of *.yaml, *.yml, recursively, or - for standard input).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// spec.mode of the printed objects; without it, the CRD's default (Enforce).
    #[arg(long, value_parser = ["Enforce", "Audit"])]
    pub mode: Option<String>,
    /// Send AWS calls to this endpoint instead of AWS (an emulator).
    #[arg(long, env = "BACKUP_WARDEN_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

#[derive(Args, Debug)]
pub struct CrdArgs {
    /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
    #[arg(long, env = "BACKUP_WARDEN_CRD_OUTPUT_DIR")]
    pub output_dir: Option<PathBuf>,
}

impl Cli {
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Version => {
                println!("backup-warden {}", env!("CARGO_PKG_VERSION"));
                ExitCode::SUCCESS
            }
            // No log subscriber: standard output is the report.
            Command::Check(args) => run_check(*args).await,
            Command::Coverage(CoverageCommand::Export(args)) => run_export(*args).await,
            Command::Report(args) => run_report(*args).await,
            Command::Map(args) => run_map(args).await,
            Command::Crd(args) => match print_crds(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Run(args) => {
                telemetry::init(&self.telemetry);
                match controller::run(*args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "backup-warden stopped");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

/// The GitHub side of `run`, `check` and `coverage export`, from their flags.
pub(crate) fn github_settings(
    g: &GitHubArgs,
    timeouts: &TimeoutArgs,
) -> Result<crate::github::client::GitHubSettings, crate::github::auth::AuthError> {
    let auth = crate::github::GitHubAuth::from_settings(
        g.token_file.as_deref(),
        std::env::var("GITHUB_TOKEN").ok(),
        g.app_id,
        g.app_installation_id,
        g.app_private_key_file.as_deref(),
    )?;
    Ok(crate::github::client::GitHubSettings {
        base_url: g.api_url.clone(),
        auth,
        concurrency: g.concurrency,
        writes_per_minute: g.writes_per_minute,
        writes_per_hour: g.writes_per_hour,
        reads_per_minute: g.reads_per_minute,
        timeouts: timeouts.timeouts(),
    })
}

async fn run_report(args: ReportArgs) -> ExitCode {
    use crate::auditor::command::{ReportRequest, report};
    let aws = crate::check::aws(args.aws_endpoint_url.clone(), args.timeouts.timeouts()).await;
    let s3 = aws
        .for_scope(&crate::aws::Scope::new(None, &args.region))
        .await
        .s3;
    let html = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("backup-evidence-{}-{}.html", args.from, args.to)));
    let request = ReportRequest {
        from: args.from,
        to: args.to,
        bucket: args.bucket,
        prefix: args.prefix,
        s3,
        live: args.live,
        html: html.clone(),
        json: args.json,
        concurrency: usize::from(args.concurrency),
    };
    match report(request).await {
        Ok(report) => {
            eprintln!(
                "wrote {}: {} resources, {} records, {}",
                html.display(),
                report.resources.len(),
                report.records,
                if report.tamper_evidence.tamper_evident {
                    "tamper-evident"
                } else {
                    "not tamper-evident"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn run_map(args: MapArgs) -> ExitCode {
    let objects = match crate::auditor::command::objects(args.namespace.as_deref()).await {
        Ok(objects) => objects,
        Err(e) => return fail(&format!("cannot read the objects from the cluster: {e}")),
    };
    let estate = objects.estate();
    let text = match args.format.as_str() {
        "dot" => crate::estate::dot::render(&estate),
        "mermaid" => crate::estate::mermaid::render(&estate),
        _ => crate::estate::svg::render(&estate),
    };
    match &args.output {
        Some(path) => match std::fs::write(path, &text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("cannot write {}: {e}", path.display())),
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

/// An error of `check` or `coverage export`: each line on standard error, exit code 2.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    ExitCode::from(2)
}

async fn run_check(args: CheckArgs) -> ExitCode {
    let manifests = match crate::check::load(&args.files) {
        Ok(objects) => objects,
        Err(e) => return fail(&e),
    };
    let (dbs, repos) = (&manifests.databases, &manifests.repositories);
    if dbs.is_empty() && repos.is_empty() && manifests.trails.is_empty() && !args.coverage {
        return fail(
            &"no BackedUpDatabase, BackedUpRepository or RetainedAuditTrail in the given manifests (BackupCoverage ones are read with --coverage)",
        );
    }
    let scans_repositories =
        args.coverage && manifests.coverages.iter().any(|c| c.spec.repositories.is_some());
    let github = if repos.is_empty() && !scans_repositories {
        None
    } else {
        match github_settings(&args.github, &args.timeouts) {
            Ok(settings) => Some(settings),
            Err(e) => return fail(&e),
        }
    };
    let sources = crate::check::Sources {
        aws: crate::check::aws(args.aws_endpoint_url.clone(), args.timeouts.timeouts()).await,
        github,
        policy: crate::policy::database::Policy {
            min_retention_days: args.policy_min_retention_days,
            audit_only: false,
        },
        repository_policy: crate::policy::repository::RepositoryPolicy {
            min_retention_days: args.policy_min_backup_retention_days,
            audit_only: false,
        },
        trail_policy: crate::policy::trail::TrailPolicy {
            min_retention_days: args.policy_min_trail_retention_days,
            audit_only: false,
        },
    };
    let mut rows = match crate::check::evaluate_all(dbs, repos, &sources).await {
        Ok(rows) => rows,
        Err(e) => return fail(&e),
    };
    match crate::check::evaluate_trails(&manifests.trails, &sources).await {
        Ok(trails) => rows.extend(trails),
        Err(e) => return fail(&e),
    }
    if args.coverage {
        match crate::check::coverage::standings(&manifests, &sources.aws, sources.github.as_ref()).await {
            Ok(standings) => rows.extend(crate::check::coverage::rows(&standings)),
            Err(e) => return fail(&e),
        }
    }
    let report = if args.output == "json" {
        match serde_json::to_string_pretty(&rows) {
            Ok(json) => json + "\n",
            Err(e) => return fail(&e),
        }
    } else {
        crate::check::table(&rows)
    };
    if let Err(e) = write_stdout(&report) {
        return fail(&e);
    }
    if crate::check::compliant(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run_export(args: ExportArgs) -> ExitCode {
    let manifests = match crate::check::load(&args.files) {
        Ok(objects) => objects,
        Err(e) => return fail(&e),
    };
    if manifests.coverages.is_empty() {
        return fail(&"no BackupCoverage in the given manifests: it says which accounts and regions to scan");
    }
    let aws = crate::check::aws(args.aws_endpoint_url.clone(), args.timeouts.timeouts()).await;
    let github = match manifests.coverages.iter().any(|c| c.spec.repositories.is_some()) {
        false => None,
        true => match github_settings(&args.github, &args.timeouts) {
            Ok(settings) => Some(settings),
            Err(e) => return fail(&e),
        },
    };
    let standings = match crate::check::coverage::standings(&manifests, &aws, github.as_ref()).await {
        Ok(standings) => standings,
        Err(e) => return fail(&e),
    };
    for s in &standings {
        for (what, tally) in [("RDS instances", &s.databases), ("repositories", &s.repositories)] {
            let Some(t) = tally else { continue };
            eprintln!(
                "BackupCoverage {}: {what} {} in scope, {} declared, {} exempt, {} undeclared",
                s.coverage.metadata.name.as_deref().unwrap_or_default(),
                t.discovered,
                t.declared,
                t.exempt,
                t.undeclared
            );
        }
    }
    match crate::check::coverage::export(&manifests, &standings, args.mode.as_deref()) {
        Ok(yaml) => match write_stdout(&yaml) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Err(e) => fail(&e),
    }
}

/// Writes to standard output. A reader that went away (`check -o json | head`) is not an
/// error: the rest of the output is not wanted, and the exit code still tells the verdict.
fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn print_crds(args: &CrdArgs) -> Result<(), Box<dyn std::error::Error>> {
    let crds = api::crds();
    match &args.output_dir {
        None => write_stdout(&api::crds_yaml(&crds)?)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for crd in &crds {
                let name = crd.metadata.name.as_deref().unwrap_or("crd");
                std::fs::write(
                    dir.join(format!("{name}.yaml")),
                    api::crds_yaml(std::slice::from_ref(crd))?,
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_parses_with_defaults() {
        let cli = Cli::try_parse_from([
            "backup-warden",
            "run",
            "--concurrency",
            "3",
            "--github-concurrency",
            "5",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        assert_eq!(args.concurrency, 3);
        assert_eq!(args.github.concurrency, 5);
        assert_eq!(
            args.resync_interval.as_duration(),
            std::time::Duration::from_secs(300)
        );
        assert_eq!(args.policy_min_retention_days, 7);
        assert_eq!(args.policy_min_backup_retention_days, 90);
        assert_eq!(args.policy_min_trail_retention_days, 365);
        assert!(Cli::try_parse_from(["backup-warden", "run", "--policy-min-retention-days", "0"]).is_err());
        assert!(Cli::try_parse_from(["backup-warden", "run", "--resync-interval", "-5m"]).is_err());
    }

    #[test]
    fn the_key_cleanup_is_on_by_default_and_its_grace_has_a_floor() {
        let run = |args: &[&str]| {
            let mut all = vec!["backup-warden", "run"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|c| c.command) {
                Ok(Command::Run(run)) => Ok((run.key_cleanup, run.key_cleanup_grace.as_duration().as_secs())),
                Ok(other) => panic!("{other:?}"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(run(&[]), Ok((true, 24 * 3600)));
        assert_eq!(
            run(&["--key-cleanup=false", "--key-cleanup-grace", "2h"]),
            Ok((false, 7200))
        );
        let short = run(&["--key-cleanup-grace", "30s"]).expect_err("too short");
        assert!(short.contains("at least 1m"), "{short}");
        assert!(run(&["--key-cleanup-grace", "0s"]).is_err());
    }
}
