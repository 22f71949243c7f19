//! `RetainedAuditTrail`: one AWS CloudTrail trail that must log every region's management
//! events with integrity validation, and whose logs must be kept at least a year.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Mode, region_schema};
use super::conditions::{Condition, conditions_schema};
use super::duration::{PositiveDuration, duration_default};

/// The audit-trail policy for one CloudTrail trail.
// The printer columns repeat `type_ = ...`, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "backupwarden.io",
    version = "v1alpha1",
    kind = "RetainedAuditTrail",
    namespaced,
    shortname = "rtrail",
    category = "backupwarden",
    status = "RetainedAuditTrailStatus",
    derive = "PartialEq",
    doc = "An AWS CloudTrail trail that backup-warden keeps logging, validated and retained for at least a year.",
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
        name = "Logging",
        type_ = "boolean",
        json_path = ".status.trail.logging",
        description = "Whether the trail is logging"
    ),
    printcolumn(
        name = "Bucket",
        type_ = "string",
        json_path = ".status.trail.bucket",
        description = "The S3 bucket the trail delivers to"
    ),
    printcolumn(
        name = "Kept",
        type_ = "string",
        json_path = ".status.retention.bucket",
        description = "How long the bucket keeps the trail's logs"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RetainedAuditTrailSpec {
    /// Enforce (default) fixes drift; Audit only reports it.
    #[serde(default)]
    pub mode: Mode,
    /// Pause: while true, backup-warden neither reads nor changes anything for this object;
    /// status keeps the last look and says it is suspended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub suspend: bool,
    /// The trail to keep.
    pub trail: TrailRef,
    /// Days the trail's logs must be kept, in S3 and in CloudWatch Logs (default 365). The
    /// controller's floor (365 by default) applies when it is higher.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 3653))]
    pub retention_days: i32,
    /// How old the latest log delivery may get.
    #[serde(default)]
    pub freshness: TrailFreshness,
}

/// Which trail, where, and with which credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.name.startsWith('arn:') || self.name.split(':')[3] == self.region")
    .message("the trail ARN in spec.trail.name must be in spec.trail.region, the trail's home region")
    .field_path(".name"))]
pub struct TrailRef {
    /// The trail's name (3-128 letters, digits, '.', '_' or '-', starting and ending with a
    /// letter or digit) or its ARN.
    #[schemars(
        length(min = 3, max = 256),
        pattern(
            r"^(arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:[0-9]{12}:trail/)?[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]$"
        )
    )]
    pub name: String,
    /// The trail's home region (where it was created), such as us-east-1.
    #[schemars(schema_with = "region_schema")]
    pub region: String,
    /// An IAM role to assume, for a trail in another AWS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        pattern(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
    )]
    pub role_arn: Option<String>,
}

/// Freshness threshold of the trail's deliveries.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrailFreshness {
    /// Oldest allowed age of the latest log file delivered to S3 (default 2h).
    #[serde(default = "default_max_delivery_age")]
    pub max_delivery_age: PositiveDuration,
}

impl Default for TrailFreshness {
    fn default() -> Self {
        Self {
            max_delivery_age: default_max_delivery_age(),
        }
    }
}

fn default_retention_days() -> i32 {
    365
}
fn default_max_delivery_age() -> PositiveDuration {
    duration_default("2h")
}

impl TrailRef {
    /// The trail's name, from a name or an ARN.
    pub fn trail_name(&self) -> &str {
        self.name
            .rsplit_once(":trail/")
            .map_or(self.name.as_str(), |(_, n)| n)
    }

    /// The account the ARN names, if it is one.
    pub fn arn_account(&self) -> Option<&str> {
        self.name
            .starts_with("arn:")
            .then(|| self.name.split(':').nth(4))
            .flatten()
    }
}

/// What backup-warden observed and concluded, for people and for kstatus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetainedAuditTrailStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and one condition per policy check.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The trail as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<ObservedTrail>,
    /// How long its logs are kept, as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<ObservedRetention>,
    /// The checks whose drift was last announced (Slack), so that a restarted controller
    /// neither repeats nor loses a message. Empty when the object was last announced compliant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified_drift: Vec<String>,
    /// The value of the last reconcile request handled (the annotation
    /// `backupwarden.io/reconcile-requested-at`, or Flux's `reconcile.fluxcd.io/requestedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Facts about the trail.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedTrail {
    /// The trail's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Whether the trail is logging.
    #[serde(default)]
    pub logging: bool,
    /// Whether it records events of every region.
    #[serde(default)]
    pub multi_region: bool,
    /// Whether log file integrity validation (digest files) is on.
    #[serde(default)]
    pub log_file_validation: bool,
    /// Whether it is an organization trail.
    #[serde(default)]
    pub organization: bool,
    /// The S3 bucket it delivers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Where in the bucket its log files land (`<prefix>/AWSLogs/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_prefix: Option<String>,
    /// The CloudWatch Logs log group it also sends to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
}

/// How long the trail's logs are kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRetention {
    /// The bucket's shortest lifecycle expiration that applies to the logs ("365 days"), or
    /// "never expire".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The bucket's versioning: Enabled, Suspended or Off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    /// The bucket's Object Lock default retention ("COMPLIANCE 400 days"), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<String>,
    /// The log group's retention ("400 days" or "never expire").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
}
