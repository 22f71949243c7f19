//! The data-flow map: what the estate holds and where its backups go, drawn from the
//! declared objects (live, from the cluster) or from their attestations in the evidence
//! log. This module is the model; `svg`, `dot` and `mermaid` draw it. Pure.

use serde::{Deserialize, Serialize};

use crate::api::{
    BackedUpDatabase, BackedUpRepository, ConditionType, RetainedAuditTrail, conditions::find_condition,
};
use crate::policy::{coverage::account_of, database::replica_key_alias};

pub mod dot;
pub mod layout;
pub mod mermaid;
pub mod svg;

/// How a node is coloured: its object's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Compliance {
    Compliant,
    Drift,
    /// Not looked at yet, unreadable, or suspended.
    Unknown,
}

impl Compliance {
    /// From an object's conditions: Ready True is compliant, Ready False is drift.
    pub fn of(conditions: &[crate::api::conditions::Condition]) -> Self {
        match find_condition(conditions, ConditionType::Ready).map(|c| c.status.as_str()) {
            Some("True") => Self::Compliant,
            Some("False") => Self::Drift,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::Drift => "drift",
            Self::Unknown => "unknown",
        }
    }
}

/// Everything the map shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estate {
    pub databases: Vec<DatabaseFlow>,
    pub repositories: Vec<RepositoryFlow>,
    pub trails: Vec<TrailFlow>,
}

/// An RDS instance → its replicated automated backups in another region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseFlow {
    /// The object: namespace/name.
    pub object: String,
    /// The AWS account (from the role ARN), or "self" for the controller's own.
    pub account: String,
    pub region: String,
    pub instance: String,
    /// The source's automated-backup retention in days, as observed.
    pub retention_days: Option<i32>,
    /// Where the replicated backups go (the spec's destination), whatever their state.
    pub destination_region: String,
    /// The replica's retention in days, as observed (the spec's when not observed yet).
    pub replica_retention_days: Option<i32>,
    /// The replica's key: backup-warden's alias, or the key ARN named in the spec.
    pub replica_key: String,
    /// The replication's status, such as replicating; None when there is none.
    pub replication_status: Option<String>,
    pub compliance: Compliance,
}

/// A repository → its backup workflow → the bucket and prefix its backups land in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepositoryFlow {
    pub object: String,
    /// owner/name.
    pub repository: String,
    /// The workflow file, such as .github/workflows/backup-daily.yml.
    pub workflow: String,
    pub bucket: String,
    pub bucket_region: String,
    pub prefix: String,
    /// Days the lifecycle rule keeps a backup (the spec's).
    pub retention_days: i32,
    pub compliance: Compliance,
}

/// A CloudTrail trail → the bucket (and log group) its logs go to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrailFlow {
    pub object: String,
    pub account: String,
    pub region: String,
    /// The trail's name or ARN as declared.
    pub trail: String,
    pub bucket: Option<String>,
    pub logs_prefix: Option<String>,
    /// The bucket's retention of the logs as observed ("365 days", "never expire").
    pub bucket_retention: Option<String>,
    pub log_group: Option<String>,
    pub log_group_retention: Option<String>,
    pub compliance: Compliance,
}

fn object_name(namespace: Option<&str>, name: Option<&str>) -> String {
    format!("{}/{}", namespace.unwrap_or_default(), name.unwrap_or_default())
}

impl DatabaseFlow {
    pub fn from_object(db: &BackedUpDatabase) -> Self {
        let spec = &db.spec;
        let status = db.status.clone().unwrap_or_default();
        let replica = status.replica.as_ref();
        let replica_key = match &spec.replication.kms_key.arn {
            Some(arn) => arn.clone(),
            None => replica_key_alias(&spec.instance.region, &spec.instance.identifier),
        };
        Self {
            object: object_name(db.metadata.namespace.as_deref(), db.metadata.name.as_deref()),
            account: account_of(spec.instance.role_arn.as_deref()).to_string(),
            region: spec.instance.region.clone(),
            instance: spec.instance.identifier.clone(),
            retention_days: status.instance.as_ref().and_then(|i| i.retention_days),
            destination_region: spec.replication.destination_region.clone(),
            replica_retention_days: replica
                .and_then(|r| r.retention_days)
                .or(Some(spec.replication.retention_days)),
            replica_key,
            replication_status: replica.and_then(|r| r.status.as_ref()).map(|s| s.to_string()),
            compliance: Compliance::of(&status.conditions),
        }
    }
}

impl RepositoryFlow {
    pub fn from_object(repo: &BackedUpRepository) -> Self {
        let spec = &repo.spec;
        let status = repo.status.clone().unwrap_or_default();
        Self {
            object: object_name(repo.metadata.namespace.as_deref(), repo.metadata.name.as_deref()),
            repository: spec.repository.clone(),
            workflow: spec.workflow.path.clone(),
            bucket: spec.storage.bucket.clone(),
            bucket_region: spec.storage.region.clone(),
            prefix: spec
                .storage
                .prefix
                .clone()
                .unwrap_or_else(|| format!("{}/", spec.repository)),
            retention_days: spec.storage.retention_days,
            compliance: Compliance::of(&status.conditions),
        }
    }
}

impl TrailFlow {
    pub fn from_object(trail: &RetainedAuditTrail) -> Self {
        let spec = &trail.spec;
        let status = trail.status.clone().unwrap_or_default();
        let observed = status.trail.clone().unwrap_or_default();
        let retention = status.retention.clone().unwrap_or_default();
        Self {
            object: object_name(
                trail.metadata.namespace.as_deref(),
                trail.metadata.name.as_deref(),
            ),
            account: account_of(spec.trail.role_arn.as_deref()).to_string(),
            region: spec.trail.region.clone(),
            trail: spec.trail.name.clone(),
            bucket: observed.bucket,
            logs_prefix: observed.logs_prefix,
            bucket_retention: retention.bucket,
            log_group: observed.log_group,
            log_group_retention: retention.log_group,
            compliance: Compliance::of(&status.conditions),
        }
    }
}

impl Estate {
    /// The estate the objects declare, in a stable order (by object).
    pub fn from_objects(
        databases: &[BackedUpDatabase],
        repositories: &[BackedUpRepository],
        trails: &[RetainedAuditTrail],
    ) -> Self {
        let mut estate = Self {
            databases: databases.iter().map(DatabaseFlow::from_object).collect(),
            repositories: repositories.iter().map(RepositoryFlow::from_object).collect(),
            trails: trails.iter().map(TrailFlow::from_object).collect(),
        };
        estate.databases.sort_by(|a, b| a.object.cmp(&b.object));
        estate.repositories.sort_by(|a, b| a.object.cmp(&b.object));
        estate.trails.sort_by(|a, b| a.object.cmp(&b.object));
        estate
    }
}
