//! `BackedUpRepository`: one GitHub repository that must carry the daily backup workflow,
//! whose runs must succeed and whose backups must land in S3 and be kept long enough.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Mode, region_schema};
use super::conditions::{Condition, conditions_schema};
use super::duration::{PositiveDuration, duration_default};

/// The backup policy for one GitHub repository.
// The printer columns repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "backupwarden.io",
    version = "v1alpha1",
    kind = "BackedUpRepository",
    namespaced,
    shortname = "brepo",
    category = "backupwarden",
    status = "BackedUpRepositoryStatus",
    derive = "PartialEq",
    doc = "A GitHub repository that backup-warden keeps backed up daily to S3 by the backup-daily workflow.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "Enforce fixes drift; Audit only reports it"
    ),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        description = "Nothing is observed or changed while true"
    ),
    printcolumn(
        name = "Workflow",
        type_ = "string",
        json_path = ".status.workflow.state",
        description = "State of the backup workflow"
    ),
    printcolumn(
        name = "Last Run",
        type_ = "string",
        json_path = ".status.workflow.lastRun.conclusion",
        description = "Conclusion of the newest workflow run"
    ),
    printcolumn(
        name = "Last Backup",
        type_ = "date",
        json_path = ".status.latestBackup.lastModified",
        description = "Time of the newest backup object in S3"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.storage.lifecycleRulePrefix) || (has(self.storage.prefix) ? self.storage.prefix : self.repository + '/').startsWith(self.storage.lifecycleRulePrefix)")
        .message("spec.storage.lifecycleRulePrefix must be a prefix of the backups' prefix (spec.storage.prefix, by default <owner>/<name>/)")
        .field_path(".storage.lifecycleRulePrefix")
)]
pub struct BackedUpRepositorySpec {
    /// Enforce (default) fixes drift; Audit only reports it.
    #[serde(default)]
    pub mode: Mode,
    /// Pause: while true, backup-warden neither reads nor changes anything for this object;
    /// status keeps the last look and says it is suspended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub suspend: bool,
    /// The repository as owner/name, such as narrative-io/marketplace: the owner 1-39 letters,
    /// digits or single hyphens, not at either end; the name 1-100 letters, digits, '.', '_' or
    /// '-', other than '.' and '..'.
    #[schemars(
        length(min = 3, max = 140),
        pattern(r"^[A-Za-z0-9](-?[A-Za-z0-9])*/[A-Za-z0-9._-]{1,100}$")
    )]
    // RE2 has no lookahead: the owner's length and the names '.' and '..' are CEL rules.
    #[x_kube(
        validation = Rule::new("self.matches('^[^/]{1,39}/')")
            .message("the owner in spec.repository must have at most 39 characters"),
        validation = Rule::new("!self.matches('/[.]{1,2}$')")
            .message("the repository name in spec.repository must not be '.' or '..'")
    )]
    pub repository: String,
    /// The workflow file that runs the backup.
    #[serde(default)]
    pub workflow: WorkflowSpec,
    /// Where the backups land and how long they are kept.
    pub storage: StorageSpec,
    /// How old the newest run and backup may get.
    #[serde(default)]
    pub freshness: RepositoryFreshness,
    /// Prove the newest backup restores, on a schedule (off without it; never in Audit or
    /// while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<super::drill::RepositoryRestoreDrill>,
}

/// How a workflow change reaches the default branch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Delivery {
    /// Open a pull request for a person to merge (default).
    #[default]
    PullRequest,
    /// Commit straight to the default branch.
    Commit,
}

/// The backup-daily workflow and the reusable workflow it must call.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Path of the workflow file in the repository.
    #[serde(default = "default_workflow_path")]
    #[schemars(length(max = 255), pattern(r"^\.github/workflows/[A-Za-z0-9._-]+\.ya?ml$"))]
    pub path: String,
    /// The reusable workflow the job must call, without the @ref
    /// (default: <owner>/github-common/.github/workflows/backup.yml, owner taken from spec.repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 255),
        pattern(
            r"^[A-Za-z0-9](-?[A-Za-z0-9])*/[A-Za-z0-9._-]{1,100}/\.github/workflows/[A-Za-z0-9._-]+\.ya?ml$"
        )
    )]
    #[x_kube(
        validation = Rule::new("self.matches('^[^/]{1,39}/')")
            .message("the owner in spec.workflow.uses must have at most 39 characters"),
        validation = Rule::new("!self.matches('^[^/]+/[.]{1,2}/')")
            .message("the repository name in spec.workflow.uses must not be '.' or '..'")
    )]
    pub uses: Option<String>,
    /// The refs of the reusable workflow that count as current (branches or tags); the first is used when writing the file.
    #[serde(default = "default_allowed_refs")]
    #[schemars(
        length(min = 1, max = 16),
        inner(length(min = 1, max = 255), pattern(r"^[A-Za-z0-9._/-]+$"))
    )]
    pub allowed_refs: Vec<String>,
    /// The daily cron schedule, in UTC: minute and hour, every day ("17 3 * * *").
    #[serde(default = "default_schedule")]
    #[schemars(length(max = 32), pattern(r"^([0-5]?[0-9]) ([01]?[0-9]|2[0-3]) \* \* \*$"))]
    pub schedule: String,
    /// PullRequest (default) or Commit.
    #[serde(default)]
    pub delivery: Delivery,
}

impl Default for WorkflowSpec {
    fn default() -> Self {
        Self {
            path: default_workflow_path(),
            uses: None,
            allowed_refs: default_allowed_refs(),
            schedule: default_schedule(),
            delivery: Delivery::default(),
        }
    }
}

/// The S3 location of the backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// The S3 bucket the backup workflow writes to, named by the S3 rules for general purpose
    /// buckets: 3-63 lowercase letters, digits, '.' or '-', beginning and ending with a letter or
    /// digit, no two adjacent periods, not an IP address, no reserved prefix or suffix.
    #[schemars(length(min = 3, max = 63), pattern(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    #[x_kube(
        validation = Rule::new("!self.contains('..')")
            .message("spec.storage.bucket must not contain two adjacent periods"),
        validation = Rule::new("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')")
            .message("spec.storage.bucket must not be formatted as an IP address"),
        validation = Rule::new("!self.startsWith('xn--') && !self.startsWith('sthree-') && !self.startsWith('amzn-s3-demo-')")
            .message("spec.storage.bucket must not start with xn--, sthree- or amzn-s3-demo- (reserved by S3)"),
        validation = Rule::new("!self.endsWith('-s3alias') && !self.endsWith('--ol-s3') && !self.endsWith('.mrap') && !self.endsWith('--x-s3') && !self.endsWith('--table-s3')")
            .message("spec.storage.bucket must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 (reserved by S3)")
    )]
    pub bucket: String,
    /// The bucket's AWS region.
    #[serde(default = "default_storage_region")]
    #[schemars(schema_with = "region_schema")]
    pub region: String,
    /// The key prefix of this repository's backups (default: "<owner>/<name>/"): S3's safe
    /// characters (letters, digits, and ! - _ . * ' ( ) /), starting with a letter, a digit,
    /// '_', '.' or '-', ending with '/', without a '..' segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Safe characters only: the prefix is written into the workflow file as a plain YAML scalar.
    #[schemars(
        length(min = 1, max = 512),
        pattern(r"^[A-Za-z0-9_.-][A-Za-z0-9!_.*'()/-]*/$")
    )]
    #[x_kube(
        validation = Rule::new("!self.matches('(^|/)[.][.]/')")
            .message("spec.storage.prefix must not have a '..' segment")
    )]
    pub prefix: Option<String>,
    /// The prefix of the lifecycle rule backup-warden adds when no rule covers the backups
    /// (default: the backups' own prefix, one rule per repository). S3 allows 1,000 rules
    /// per bucket: repositories backing up into one bucket can share one rule by naming the
    /// same broader prefix, "" for the whole bucket. Every object under it then expires after
    /// the retention, so name only a prefix that holds nothing but backups. It must be a
    /// prefix of the backups' prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^([A-Za-z0-9_.-][A-Za-z0-9!_.*'()/-]*/)?$"))]
    pub lifecycle_rule_prefix: Option<String>,
    /// Days a backup is kept before the lifecycle rule expires it (default 90).
    #[serde(default = "default_storage_retention_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: i32,
}

/// Freshness thresholds for the repository's workflow runs and backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFreshness {
    /// Oldest allowed age of the newest backup object (default 26h).
    #[serde(default = "default_day_and_margin")]
    pub max_backup_age: PositiveDuration,
    /// Oldest allowed start time of the newest successful workflow run (default 26h).
    #[serde(default = "default_day_and_margin")]
    pub max_run_age: PositiveDuration,
}

impl Default for RepositoryFreshness {
    fn default() -> Self {
        Self {
            max_backup_age: default_day_and_margin(),
            max_run_age: default_day_and_margin(),
        }
    }
}

fn default_workflow_path() -> String {
    ".github/workflows/backup-daily.yml".to_string()
}
fn default_allowed_refs() -> Vec<String> {
    vec!["main".to_string()]
}
fn default_schedule() -> String {
    "17 3 * * *".to_string()
}
fn default_storage_region() -> String {
    "us-east-1".to_string()
}
fn default_storage_retention_days() -> i32 {
    90
}
fn default_day_and_margin() -> PositiveDuration {
    duration_default("26h")
}

impl BackedUpRepositorySpec {
    /// The repository owner (organisation or user).
    pub fn owner(&self) -> &str {
        self.repository
            .split_once('/')
            .map_or(self.repository.as_str(), |(owner, _)| owner)
    }

    /// The reusable workflow the job must call, defaulted from the owner.
    pub fn reusable_workflow(&self) -> String {
        self.workflow
            .uses
            .clone()
            .unwrap_or_else(|| format!("{}/github-common/.github/workflows/backup.yml", self.owner()))
    }

    /// The prefix of the lifecycle rule backup-warden adds, defaulted to the backups' prefix.
    pub fn lifecycle_rule_prefix(&self) -> String {
        self.storage
            .lifecycle_rule_prefix
            .clone()
            .unwrap_or_else(|| self.storage_prefix())
    }

    /// The S3 key prefix of this repository's backups, defaulted to "<owner>/<name>/".
    pub fn storage_prefix(&self) -> String {
        self.storage
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{}/", self.repository))
    }
}

/// What backup-warden observed and concluded, for people and for kstatus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackedUpRepositoryStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and one condition per policy check.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The workflow file and its runs as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<ObservedWorkflow>,
    /// The newest backup object under the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_backup: Option<ObservedBackup>,
    /// The restore drills: the last one's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<super::drill::RestoreDrillStatus>,
    /// The checks whose drift was last announced (Slack), so that a restarted controller
    /// neither repeats nor loses a message. Empty when the object was last announced compliant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified_drift: Vec<String>,
    /// The value of the last reconcile request handled (the annotation
    /// `backupwarden.io/reconcile-requested-at`, or Flux's `reconcile.fluxcd.io/requestedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Facts about the workflow file and its runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedWorkflow {
    /// Whether the file exists on the default branch.
    #[serde(default)]
    pub present: bool,
    /// The workflow's state in GitHub Actions, such as active or disabled_inactivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The pull request that adds or updates the file, while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    /// The newest run of the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<ObservedRun>,
}

/// One workflow run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRun {
    /// Link to the run on GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// success, failure, cancelled, ... (empty while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

/// The newest backup object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedBackup {
    /// The object's key in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When the object was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<Time>,
}
