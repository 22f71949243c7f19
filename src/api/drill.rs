//! Restore drills: how often a backup is restored to prove it restores (`spec.restoreDrill`
//! of both kinds), and what the last drill found (`status.restoreDrill`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::duration::{PositiveDuration, duration_default};

/// A database's drills: restore the newest point of the replicated automated backups, in
/// the destination region, to a temporary private instance; probe it; delete it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseRestoreDrill {
    /// How often (default 168h, weekly). The first drill starts at a point within the first
    /// interval that differs per object, so that drills do not all start together.
    #[serde(default = "default_every")]
    pub every: PositiveDuration,
    /// The instance class to restore into (default db.t3.micro).
    #[serde(default = "default_instance_class")]
    #[schemars(length(min = 4, max = 64), pattern(r"^db\.[a-z0-9-]+\.[a-z0-9-]+$"))]
    pub instance_class: String,
    /// The DB subnet group to restore into, in the destination region (default: the
    /// region's default VPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), pattern(r"^[A-Za-z0-9 ._-]+$"))]
    pub subnet_group: Option<String>,
    /// A drill running longer is stopped, its instance deleted, and it counts as failed
    /// (default 2h).
    #[serde(default = "default_max_duration")]
    pub max_duration: PositiveDuration,
    /// Connect to the restored endpoint over TCP before deleting it; off without this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<DrillProbe>,
}

/// The connectivity probe: a TCP connection to the restored instance's endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillProbe {
    /// How long to try (default 10s).
    #[serde(default = "default_probe_timeout")]
    pub timeout: PositiveDuration,
}

/// A repository's drills: download the newest backup object and verify it would restore.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRestoreDrill {
    /// How often (default 168h, weekly), first at a point within the first interval that
    /// differs per object.
    #[serde(default = "default_every")]
    pub every: PositiveDuration,
    /// A backup object larger than this is not downloaded and the drill fails (default
    /// 2147483648, 2 GiB).
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1024))]
    pub max_bytes: i64,
}

/// What the drills found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDrillStatus {
    /// The drill under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningDrill>,
    /// The last drill that ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DrillResult>,
    /// When the last successful drill ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Time>,
    /// When the next drill is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Time>,
}

/// A drill under way: what it restored to, and since when.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunningDrill {
    /// The temporary instance (databases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub started_at: Time,
    /// The point in time restored: the backups' latest restorable time when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<Time>,
}

/// How a drill ended.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillResult {
    /// Succeeded or Failed.
    pub result: String,
    /// What was restored and checked, or why it failed.
    pub message: String,
    pub started_at: Time,
    pub finished_at: Time,
    /// Seconds from start to the restore verified (databases: instance available and probed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// How old the restored data was: seconds from the recovery point to the drill's start
    /// (what a restore then would have lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_age_seconds: Option<i64>,
}

impl DrillResult {
    pub fn succeeded(&self) -> bool {
        self.result == "Succeeded"
    }
}

fn default_every() -> PositiveDuration {
    duration_default("168h")
}
fn default_instance_class() -> String {
    "db.t3.micro".to_string()
}
fn default_max_duration() -> PositiveDuration {
    duration_default("2h")
}
fn default_probe_timeout() -> PositiveDuration {
    duration_default("10s")
}
fn default_max_bytes() -> i64 {
    2 * 1024 * 1024 * 1024
}
