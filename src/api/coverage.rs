//! `BackupCoverage`: where the platform administrator says to look for databases (AWS
//! accounts and regions) and what counts, so that what exists is checked against what is
//! declared. Cluster-scoped: one team's namespace cannot hide another's gaps.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::Mode;
use super::conditions::{Condition, conditions_schema};
use super::database::{BackupsSpec, DatabaseFreshness, InstanceRef, ReplicationSpec};
use super::duration::{PositiveDuration, duration_default};
use super::repository::{RepositoryFreshness, StorageSpec, WorkflowSpec};

/// The estate to account for, and how an undeclared resource is handled.
// The printer columns repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "backupwarden.io",
    version = "v1alpha1",
    kind = "BackupCoverage",
    shortname = "bcov",
    category = "backupwarden",
    status = "BackupCoverageStatus",
    derive = "PartialEq",
    doc = "Where backup-warden looks for RDS instances nobody declared a BackedUpDatabase for, and which are knowingly exempt.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Databases",
        type_ = "integer",
        json_path = ".status.databases.discovered",
        description = "RDS instances in scope"
    ),
    printcolumn(
        name = "Undeclared",
        type_ = "integer",
        json_path = ".status.databases.undeclared",
        description = "RDS instances in scope that no BackedUpDatabase names and no exemption covers"
    ),
    printcolumn(
        name = "Repositories",
        type_ = "integer",
        json_path = ".status.repositories.discovered",
        description = "GitHub repositories in scope"
    ),
    printcolumn(
        name = "Undeclared Repos",
        type_ = "integer",
        json_path = ".status.repositories.undeclared",
        description = "GitHub repositories in scope that no BackedUpRepository names and no exemption covers"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BackupCoverageSpec {
    /// Report lists what is undeclared; Adopt also creates a `BackedUpDatabase` for each,
    /// from `adopt.databaseTemplate`, in `namespace`.
    #[serde(default)]
    pub mode: CoverageMode,
    /// The namespace whose tenancy allowance bounds the AWS roles scanned (the
    /// administrator's tenancy file): a coverage sees no account its namespace could not use.
    /// Adopted objects are created here.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: String,
    /// The RDS instances to account for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<DatabaseCoverage>,
    /// The GitHub repositories to account for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<RepositoryCoverage>,
    /// Resources knowingly not backed up, each with its reason.
    #[serde(default)]
    pub exemptions: Exemptions,
    /// What Adopt creates, and when it removes what it created.
    #[serde(default)]
    pub adopt: AdoptSpec,
    /// How many undeclared resources status lists (oldest first); the counts are always
    /// complete.
    #[serde(default = "default_list_limit")]
    #[schemars(range(min = 1, max = 500))]
    pub list_limit: i32,
}

/// What a coverage does about an undeclared resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum CoverageMode {
    /// Count and list them (status, metric, alert, Slack); change nothing.
    #[default]
    Report,
    /// Also create a `BackedUpDatabase` for each, owned by the coverage; never touch one a
    /// person created.
    Adopt,
}

/// The objects Adopt creates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdoptSpec {
    /// The spec of every `BackedUpDatabase` created, but its instance.
    #[serde(default)]
    pub database_template: DatabaseTemplate,
    /// The spec of every `BackedUpRepository` created, but its repository. Without it,
    /// repositories are reported, not adopted (a repository's backups need a bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_template: Option<RepositoryTemplate>,
    /// How long an adopted object whose instance is gone stays (reporting
    /// `InstanceNotFound`) before the coverage deletes it. Objects a person created are never
    /// deleted.
    #[serde(default = "default_grace_period")]
    pub grace_period: PositiveDuration,
}

impl Default for AdoptSpec {
    fn default() -> Self {
        Self {
            database_template: DatabaseTemplate::default(),
            repository_template: None,
            grace_period: default_grace_period(),
        }
    }
}

/// A `BackedUpRepository` spec without its repository, which adoption fills in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryTemplate {
    /// Enforce fixes drift; Audit only reports it.
    #[serde(default)]
    pub mode: Mode,
    /// The daily workflow and how it is delivered.
    #[serde(default)]
    pub workflow: WorkflowSpec,
    /// Where the backups land (each repository under its own prefix).
    pub storage: StorageSpec,
    /// How old the newest backup and run may get.
    #[serde(default)]
    pub freshness: RepositoryFreshness,
    /// Restore drills for each adopted repository (none without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<super::drill::RepositoryRestoreDrill>,
}

/// A `BackedUpDatabase` spec without its instance, which adoption fills in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTemplate {
    /// Enforce fixes drift; Audit only reports it.
    #[serde(default)]
    pub mode: Mode,
    /// Automated backups in the instance's own region.
    #[serde(default)]
    pub backups: BackupsSpec,
    /// Replication of the automated backups to another region.
    #[serde(default)]
    pub replication: ReplicationSpec,
    /// How old backups may get before they count as stale.
    #[serde(default)]
    pub freshness: DatabaseFreshness,
    /// Restore drills for each adopted database (none without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<super::drill::DatabaseRestoreDrill>,
}

/// Accounts and regions to scan, and which of their instances count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseCoverage {
    /// The accounts to scan, each with its regions.
    #[schemars(length(min = 1, max = 50))]
    pub accounts: Vec<AccountScan>,
    /// When not empty, only instances matching one of these count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub include: Vec<InstanceSelector>,
    /// Instances matching one of these do not count, even if included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub exclude: Vec<InstanceSelector>,
}

/// Organizations to scan, and which of their repositories count.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCoverage {
    /// The GitHub organizations whose every repository is discovered.
    #[schemars(
        length(min = 1, max = 50),
        inner(
            length(min = 1, max = 39),
            pattern(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
        )
    )]
    pub organizations: Vec<String>,
    /// When not empty, only repositories matching one of these count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub include: Vec<RepositorySelector>,
    /// Repositories matching one of these do not count, even if included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub exclude: Vec<RepositorySelector>,
    /// Archived repositories count too; by default they do not (they are read only).
    #[serde(default)]
    pub include_archived: bool,
    /// Forks count too; by default they do not (their source is backed up).
    #[serde(default)]
    pub include_forks: bool,
}

/// A repository by `owner/name` (exact, or a prefix ending in `*`, such as
/// `narrative-io/infra-*`; case-insensitive) or a topic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.topic)")
    .message("a selector names exactly one of name or topic"))]
pub struct RepositorySelector {
    /// `owner/name`, or a prefix of it ending in `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 141), pattern(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]*\*?$"))]
    pub name: Option<String>,
    /// A topic the repository carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50), pattern(r"^[a-z0-9][a-z0-9-]*$"))]
    pub topic: Option<String>,
}

/// One AWS account (the controller's own, or through a role) and the regions to scan in it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountScan {
    /// The role to assume; without it, the controller's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
    )]
    pub role_arn: Option<String>,
    /// The regions whose every instance is discovered.
    #[schemars(
        length(min = 1, max = 40),
        inner(length(max = 32), pattern(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"))
    )]
    pub regions: Vec<String>,
}

/// An instance identifier (exact, or a prefix ending in `*`; case-insensitive) or a tag.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.identifier) != has(self.tag)")
    .message("a selector names exactly one of identifier or tag"))]
pub struct InstanceSelector {
    /// An instance identifier, or a prefix ending in `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[a-zA-Z0-9-]+\*?$"))]
    pub identifier: Option<String>,
    /// A tag the instance carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagSelector>,
}

/// A tag present (any value), or with this value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagSelector {
    /// The tag's key.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// The tag's value; without it, any value matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub value: Option<String>,
}

/// How a resource is knowingly left without backups: listed here, or tagged. Exempt
/// resources are counted and shown, never dropped.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exemptions {
    /// Instances exempt by name, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub databases: Vec<DatabaseExemption>,
    /// An instance carrying this tag is exempt; the tag's value is the reason, and a tag
    /// with an empty value exempts nothing.
    #[serde(default = "default_exempt_tag")]
    #[schemars(length(min = 1, max = 128))]
    pub tag: String,
    /// Repositories exempt by name, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub repositories: Vec<RepositoryExemption>,
    /// A repository carrying this topic is exempt, for this reason (a topic has no value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<TopicExemption>,
}

impl Default for Exemptions {
    fn default() -> Self {
        Self {
            databases: Vec::new(),
            tag: default_exempt_tag(),
            repositories: Vec::new(),
            topic: None,
        }
    }
}

/// One repository and why it is not backed up.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryExemption {
    /// `owner/name`, as a `BackedUpRepository` names it.
    #[schemars(length(min = 3, max = 140), pattern(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$"))]
    pub repository: String,
    /// Why, for the auditor: a decision and who made it.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

/// The topic that exempts a repository, and the reason it stands for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicExemption {
    /// The topic, such as `no-backup`.
    #[schemars(length(min = 1, max = 50), pattern(r"^[a-z0-9][a-z0-9-]*$"))]
    pub name: String,
    /// Why a repository carrying it is not backed up.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

/// One instance, named as a `BackedUpDatabase` names it, and why it is not backed up.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseExemption {
    /// The instance: identifier, region, and the role for another account.
    pub instance: InstanceRef,
    /// Why, for the auditor: a decision and who made it.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

/// What the last scan found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupCoverageStatus {
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (False with reason `Uncovered` while any resource is undeclared) and
    /// `Stalled` (a scan that cannot be made).
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// RDS instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<CoverageCounts>,
    /// GitHub repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<CoverageCounts>,
}

/// The counts of one kind, and the undeclared resources (oldest first, bounded).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CoverageCounts {
    /// In scope: every one of them is declared, exempt or undeclared.
    pub discovered: i32,
    /// Of them, those a `BackedUpDatabase` in any namespace names.
    pub declared: i32,
    /// Of them, those an exemption covers (and none declares).
    pub exempt: i32,
    /// Of them, those with neither: nobody checks their backups.
    pub undeclared: i32,
    /// Objects this coverage created (Adopt), counted in `declared`.
    #[serde(default)]
    pub adopted: i32,
    /// The undeclared ones, oldest first, at most `spec.listLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undeclared_resources: Vec<UndeclaredResource>,
    /// The exempt ones with their reasons, at most `spec.listLimit`: knowingly not backed
    /// up, and shown as such.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt_resources: Vec<ExemptResource>,
}

/// One resource knowingly not backed up.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExemptResource {
    /// The instance identifier, or the repository's `owner/name`.
    pub name: String,
    /// An instance's AWS account id, or `self` for the controller's own identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// An instance's region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Why: the exemption's reason, or the value of the exemption tag.
    pub reason: String,
}

/// One resource nobody declared.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UndeclaredResource {
    /// The instance identifier, or the repository's `owner/name`.
    pub name: String,
    /// An instance's AWS account id, or `self` for the controller's own identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// An instance's region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// When a scan first found it undeclared (RFC 3339).
    pub first_seen: String,
}

fn default_grace_period() -> PositiveDuration {
    duration_default("168h")
}

fn default_list_limit() -> i32 {
    50
}

fn default_exempt_tag() -> String {
    "backupwarden.io/exempt".to_string()
}
