//! `BackedUpDatabase`: one RDS DB instance whose automated backups must be enabled, kept
//! long enough, and replicated to another region under a replica-specific KMS key.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Mode, region_schema};
use super::conditions::{Condition, conditions_schema};
use super::duration::{PositiveDuration, duration_default};
use crate::word::Word;

/// The backup policy for one RDS DB instance.
// The printer columns repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "backupwarden.io",
    version = "v1alpha1",
    kind = "BackedUpDatabase",
    namespaced,
    shortname = "bdb",
    category = "backupwarden",
    status = "BackedUpDatabaseStatus",
    derive = "PartialEq",
    doc = "An RDS DB instance whose automated backups backup-warden keeps enabled, retained and replicated to another region.",
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
        name = "Retention",
        type_ = "integer",
        json_path = ".status.instance.retentionDays",
        description = "Observed backup retention in days"
    ),
    printcolumn(
        name = "Replica Region",
        type_ = "string",
        json_path = ".status.replica.region"
    ),
    printcolumn(
        name = "Last Snapshot",
        type_ = "date",
        json_path = ".status.instance.latestSnapshotTime",
        description = "Creation time of the newest automated snapshot"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.replication.destinationRegion != self.instance.region")
    .message("spec.replication.destinationRegion must differ from spec.instance.region: backups are replicated to another region")
    .field_path(".replication.destinationRegion"))]
pub struct BackedUpDatabaseSpec {
    /// Enforce (default) fixes drift; Audit only reports it.
    #[serde(default)]
    pub mode: Mode,
    /// Pause: while true, backup-warden neither reads nor changes anything for this object;
    /// status keeps the last look and says it is suspended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub suspend: bool,
    /// The RDS DB instance to protect.
    pub instance: InstanceRef,
    /// Automated backups in the instance's own region.
    #[serde(default)]
    pub backups: BackupsSpec,
    /// Replication of the automated backups to another region.
    #[serde(default)]
    pub replication: ReplicationSpec,
    /// How old backups may get before they count as stale.
    #[serde(default)]
    pub freshness: DatabaseFreshness,
    /// Prove the replicated backups restore, on a schedule (off without it; never in Audit
    /// or while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<super::drill::DatabaseRestoreDrill>,
}

/// Which RDS DB instance, where, and with which credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRef {
    /// The DB instance identifier, as shown in the RDS console (1-63 letters, digits or hyphens, starting with a letter).
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-zA-Z]([a-zA-Z0-9]|-[a-zA-Z0-9])*$"))]
    pub identifier: String,
    /// The AWS region the instance runs in, such as us-east-1.
    #[schemars(schema_with = "region_schema")]
    pub region: String,
    /// An IAM role to assume for this instance, for instances in another AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
    )]
    pub role_arn: Option<String>,
}

/// Automated backups of the instance in its own region.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupsSpec {
    /// The minimum backup retention in days (1-35). A higher value found in AWS is kept;
    /// the controller's policy floor (7 by default) applies when it is higher.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 35))]
    pub retention_days: i32,
    /// Enabling backups on an instance that has none (retention 0) restarts it briefly, so it
    /// waits for the maintenance window unless this is true.
    #[serde(default)]
    pub apply_immediately: bool,
}

impl Default for BackupsSpec {
    fn default() -> Self {
        Self {
            retention_days: default_retention_days(),
            apply_immediately: false,
        }
    }
}

/// Cross-region replication of the automated backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.kmsKey.arn) || self.kmsKey.arn.contains(':kms:' + self.destinationRegion + ':')")
    .message("spec.replication.kmsKey.arn must be a key in spec.replication.destinationRegion")
    .field_path(".kmsKey.arn"))]
pub struct ReplicationSpec {
    /// The region that receives the replicated backups (default us-west-2). Must differ from the instance's region.
    #[serde(default = "default_destination_region")]
    #[schemars(schema_with = "region_schema")]
    pub destination_region: String,
    /// Retention of the replicated backups in days (1-35); the policy floor applies when higher.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 35))]
    pub retention_days: i32,
    /// The KMS key that encrypts the replica: a dedicated key created by backup-warden
    /// (`create: true`, the default) or an existing key in the destination region.
    #[serde(default)]
    pub kms_key: KmsKeySpec,
    /// Allow stopping and restarting the replication to fix its retention or key. Backups
    /// replicated so far are kept (as `retained`); off by default.
    #[serde(default)]
    pub allow_replication_restart: bool,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        Self {
            destination_region: default_destination_region(),
            retention_days: default_retention_days(),
            kms_key: KmsKeySpec::default(),
            allow_replication_restart: false,
        }
    }
}

/// The replica's KMS key: `{create: true}` or `{arn: ...}`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.create != has(self.arn)")
    .message("spec.replication.kmsKey needs exactly one of create: true or arn"))]
pub struct KmsKeySpec {
    /// Create (or adopt, by its alias) a key dedicated to this database's replica.
    #[serde(default)]
    pub create: bool,
    /// The ARN of an existing symmetric key in the destination region, other than the source's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        pattern(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
    )]
    pub arn: Option<String>,
}

impl Default for KmsKeySpec {
    fn default() -> Self {
        Self {
            create: true,
            arn: None,
        }
    }
}

/// Freshness thresholds for the database's backups.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseFreshness {
    /// Longest allowed gap between now and the instance's latest restorable time (default 1h; RDS ships logs every 5 minutes).
    #[serde(default = "default_max_restore_lag")]
    pub max_restore_lag: PositiveDuration,
    /// Oldest allowed age of the newest automated snapshot (default 26h).
    #[serde(default = "default_max_snapshot_age")]
    pub max_snapshot_age: PositiveDuration,
    /// Longest allowed gap between now and the replica's latest restorable time (default 2h).
    #[serde(default = "default_max_replica_lag")]
    pub max_replica_lag: PositiveDuration,
}

impl Default for DatabaseFreshness {
    fn default() -> Self {
        Self {
            max_restore_lag: default_max_restore_lag(),
            max_snapshot_age: default_max_snapshot_age(),
            max_replica_lag: default_max_replica_lag(),
        }
    }
}

fn default_retention_days() -> i32 {
    7
}
fn default_destination_region() -> String {
    "us-west-2".to_string()
}
fn default_max_restore_lag() -> PositiveDuration {
    duration_default("1h")
}
fn default_max_snapshot_age() -> PositiveDuration {
    duration_default("26h")
}
fn default_max_replica_lag() -> PositiveDuration {
    duration_default("2h")
}

/// What backup-warden observed and concluded, for people and for kstatus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackedUpDatabaseStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and one condition per policy check.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The source instance as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<ObservedInstance>,
    /// The replicated automated backups as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ObservedReplica>,
    /// The restore drills: the one under way and the last one's result.
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

/// Facts about the source instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedInstance {
    /// The instance's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The RDS instance status, such as available or modifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Word>,
    /// The backup retention period in effect, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// A retention change waiting for the maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_retention_days: Option<i32>,
    /// Creation time of the newest automated snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_snapshot_time: Option<Time>,
}

/// Facts about the replicated automated backups in the destination region.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedReplica {
    /// The ARN of the replicated automated backups (DBInstanceAutomatedBackupsArn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The region holding the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Word>,
    /// The replication status, such as replicating or retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Word>,
    /// Retention of the replicated backups, in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// The KMS key that encrypts the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}
