//! RDS for restore drills: restore replicated automated backups to a temporary instance,
//! find the drill instances, delete one. Only instances carrying [`DRILL_TAG`] and named
//! with [`DRILL_PREFIX`] are ever touched.

use async_trait::async_trait;
use aws_sdk_rds::types::Tag;
use k8s_openapi::jiff::Timestamp;

use super::{AwsError, Scope, rds::SdkRds};

/// The tag every drill instance carries: the object (namespace/name) it is a drill of.
pub const DRILL_TAG: &str = "backupwarden.io/restore-drill";
/// Every drill instance's identifier starts so.
pub const DRILL_PREFIX: &str = "bw-drill-";

/// What to restore, and into what.
#[derive(Clone, Debug, PartialEq)]
pub struct DrillRestore {
    /// The replicated automated backups (DBInstanceAutomatedBackupsArn).
    pub source_arn: String,
    pub identifier: String,
    pub instance_class: String,
    pub subnet_group: Option<String>,
    /// namespace/name of the object.
    pub object: String,
}

/// A drill instance as RDS reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct DrillInstance {
    pub identifier: String,
    pub status: String,
    /// Address and port, once available.
    pub endpoint: Option<(String, u16)>,
    /// The object its tag names (namespace/name).
    pub object: Option<String>,
    pub created: Option<Timestamp>,
}

impl DrillInstance {
    /// Carries the drill tag and the drill name: backup-warden made it.
    pub fn is_drill(&self) -> bool {
        self.object.is_some() && self.identifier.starts_with(DRILL_PREFIX)
    }
}

#[async_trait]
pub trait DrillRds: Send + Sync {
    /// RestoreDBInstanceToPointInTime from replicated automated backups, at their latest
    /// restorable time, to a private instance without deletion protection or backups.
    async fn restore(&self, scope: &Scope, request: &DrillRestore) -> Result<(), AwsError>;
    /// The drill instances of the scope (all pages), or the one named `identifier`.
    async fn drills(&self, scope: &Scope, identifier: Option<&str>) -> Result<Vec<DrillInstance>, AwsError>;
    /// DeleteDBInstance without a final snapshot, its automated backups with it. Refused
    /// here for an instance that is not a drill instance.
    async fn delete(&self, scope: &Scope, instance: &DrillInstance) -> Result<(), AwsError>;
}

fn drill_instance(db: &aws_sdk_rds::types::DbInstance) -> DrillInstance {
    DrillInstance {
        identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
        status: db.db_instance_status().unwrap_or_default().to_string(),
        endpoint: db.endpoint().and_then(|e| {
            let port = u16::try_from(e.port()?).ok()?;
            Some((e.address()?.to_string(), port))
        }),
        object: db
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(DRILL_TAG))
            .and_then(|t| t.value().map(str::to_string)),
        created: db.instance_create_time().and_then(super::rds::timestamp),
    }
}

#[async_trait]
impl DrillRds for SdkRds {
    async fn restore(&self, scope: &Scope, request: &DrillRestore) -> Result<(), AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.rds_budget.take().await;
        c.rds
            .restore_db_instance_to_point_in_time()
            .source_db_instance_automated_backups_arn(&request.source_arn)
            .use_latest_restorable_time(true)
            .target_db_instance_identifier(&request.identifier)
            .db_instance_class(&request.instance_class)
            .set_db_subnet_group_name(request.subnet_group.clone())
            .publicly_accessible(false)
            .deletion_protection(false)
            .multi_az(false)
            // A drill instance is deleted within the drill: it keeps no backups of its own.
            .backup_retention_period(0)
            .tags(Tag::builder().key(DRILL_TAG).value(&request.object).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RestoreDBInstanceToPointInTime", &e))?;
        Ok(())
    }

    async fn drills(&self, scope: &Scope, identifier: Option<&str>) -> Result<Vec<DrillInstance>, AwsError> {
        let filter = identifier.map(super::rds::instance_filter);
        self.describe_db_instances(scope, filter, |db| {
            Some(drill_instance(db)).filter(DrillInstance::is_drill)
        })
        .await
    }

    async fn delete(&self, scope: &Scope, instance: &DrillInstance) -> Result<(), AwsError> {
        if !instance.is_drill() {
            return Err(AwsError {
                operation: "DeleteDBInstance",
                kind: super::AwsErrorKind::Refused,
                code: "NotADrillInstance".into(),
                message: format!(
                    "{} carries no {DRILL_TAG} tag or is not named {DRILL_PREFIX}...: backup-warden deletes only its own drill instances",
                    instance.identifier
                ),
            });
        }
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.rds_budget.take().await;
        let deleted = c
            .rds
            .delete_db_instance()
            .db_instance_identifier(&instance.identifier)
            .skip_final_snapshot(true)
            .delete_automated_backups(true)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteDBInstance", &e);
                // Already gone, or already being deleted: what was asked is done.
                if e.code == "DBInstanceNotFound" || e.code == "DBInstanceNotFoundFault" {
                    return Ok(());
                }
                if e.code == "InvalidDBInstanceState" && e.message.contains("delet") {
                    return Ok(());
                }
                Err(e)
            }
        }
    }
}
