//! The custom resources users write: `BackedUpDatabase`, `BackedUpRepository`,
//! `RetainedAuditTrail` and `BackupCoverage`
//! (group `backupwarden.io`, version `v1alpha1`), their shared field types, and the
//! status conditions both kinds report.

pub mod common;
pub mod conditions;
pub mod coverage;
pub mod database;
pub mod drill;
pub mod duration;
pub mod repository;
pub mod trail;
pub mod validation;

pub use crate::policy::{database::DatabaseCheck, repository::RepositoryCheck, trail::TrailCheck};
pub use common::Mode;
pub use conditions::{ConditionStatus, ConditionType, Reason, set_condition};
pub use coverage::{BackupCoverage, BackupCoverageSpec, BackupCoverageStatus};
pub use database::{BackedUpDatabase, BackedUpDatabaseSpec, BackedUpDatabaseStatus};
pub use duration::PositiveDuration;
pub use repository::{BackedUpRepository, BackedUpRepositorySpec, BackedUpRepositoryStatus};
pub use trail::{RetainedAuditTrail, RetainedAuditTrailSpec, RetainedAuditTrailStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of both kinds.
pub const GROUP: &str = "backupwarden.io";

/// Both CRDs, in the order `crds/` holds them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        BackedUpDatabase::crd(),
        BackedUpRepository::crd(),
        BackupCoverage::crd(),
        RetainedAuditTrail::crd(),
    ]
}

/// Renders CRDs as one YAML stream, the format of `crds/` and of `backup-warden crd`.
pub fn crds_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(crd)?);
    }
    Ok(out)
}
