//! RDS: paginated inventories of instances, replicated backups and automated snapshots, and
//! the three changes backup-warden makes (retention, start and stop of replication).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_rds::{
    primitives::DateTime,
    types::{DbInstance, DbInstanceAutomatedBackup, Filter},
};
use k8s_openapi::jiff::Timestamp;

use super::{AwsClients, AwsError, Scope};
use crate::policy::database::{InstanceChange, InstanceFacts, ReplicaFacts};

/// Page size of every Describe call: the API maximum, so a sweep reads as few pages as possible.
pub const PAGE_SIZE: i32 = 100;

#[async_trait]
pub trait Rds: Send + Sync {
    /// Every DB instance of the scope (DescribeDBInstances, all pages).
    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceFacts>, AwsError>;
    /// One instance (DescribeDBInstances filtered by identifier); `None` when it does not exist.
    async fn instance(&self, scope: &Scope, identifier: &str) -> Result<Option<InstanceFacts>, AwsError>;
    /// Every automated backup held in the scope's region, replicas included.
    async fn automated_backups(&self, scope: &Scope) -> Result<Vec<ReplicaFacts>, AwsError>;
    /// The automated backups held in the scope's region of the instance `source_arn`
    /// (filtered by the `db-instance-id` filter, which takes ARNs).
    async fn automated_backups_of(
        &self,
        scope: &Scope,
        source_arn: &str,
    ) -> Result<Vec<ReplicaFacts>, AwsError>;
    /// The newest automated snapshot per instance identifier.
    async fn newest_automated_snapshots(&self, scope: &Scope)
    -> Result<HashMap<String, Timestamp>, AwsError>;
    /// The newest automated snapshot of one instance.
    async fn newest_automated_snapshot(
        &self,
        scope: &Scope,
        identifier: &str,
    ) -> Result<Option<Timestamp>, AwsError>;
    /// Regions the scope's region can replicate automated backups from.
    async fn replication_source_regions(&self, scope: &Scope) -> Result<Vec<String>, AwsError>;
    /// ModifyDBInstance with the fields `change` sets; returns the instance as RDS now
    /// reports it.
    async fn modify_instance(
        &self,
        scope: &Scope,
        identifier: &str,
        change: &InstanceChange,
    ) -> Result<InstanceFacts, AwsError>;
    /// StartDBInstanceAutomatedBackupsReplication, called in the destination scope.
    async fn start_replication(
        &self,
        destination: &Scope,
        source_arn: &str,
        kms_key_arn: &str,
        retention_days: i32,
    ) -> Result<ReplicaFacts, AwsError>;
    /// StopDBInstanceAutomatedBackupsReplication, called in the destination scope.
    async fn stop_replication(&self, destination: &Scope, source_arn: &str) -> Result<(), AwsError>;
}

pub(crate) fn timestamp(t: &DateTime) -> Option<Timestamp> {
    Timestamp::new(t.secs(), i32::try_from(t.subsec_nanos()).unwrap_or(0)).ok()
}

fn instance_facts(region: &str, db: &DbInstance) -> InstanceFacts {
    InstanceFacts {
        identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
        arn: db.db_instance_arn().unwrap_or_default().to_string(),
        resource_id: db.dbi_resource_id().map(str::to_string),
        region: region.into(),
        status: db.db_instance_status().unwrap_or_default().into(),
        engine: db.engine().unwrap_or_default().into(),
        retention_days: db.backup_retention_period().unwrap_or(0),
        pending_retention_days: db
            .pending_modified_values()
            .and_then(|p| p.backup_retention_period()),
        latest_restorable_time: db.latest_restorable_time().and_then(timestamp),
        cluster_identifier: db.db_cluster_identifier().map(str::to_string),
        read_replica_source: db
            .read_replica_source_db_instance_identifier()
            .map(str::to_string),
        aws_backup_recovery_point_arn: db.aws_backup_recovery_point_arn().map(str::to_string),
        kms_key_id: db.kms_key_id().map(str::to_string),
        replications: db
            .db_instance_automated_backups_replications()
            .iter()
            .filter_map(|r| r.db_instance_automated_backups_arn().map(str::to_string))
            .collect(),
        tags: db
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect(),
    }
}

fn replica_facts(b: &DbInstanceAutomatedBackup) -> ReplicaFacts {
    ReplicaFacts {
        arn: b
            .db_instance_automated_backups_arn()
            .unwrap_or_default()
            .to_string(),
        source_arn: b.db_instance_arn().unwrap_or_default().to_string(),
        dbi_resource_id: b.dbi_resource_id().map(str::to_string),
        status: b.status().unwrap_or_default().into(),
        retention_days: b.backup_retention_period(),
        kms_key_arn: b.kms_key_id().map(str::to_string),
        latest_time: b
            .restore_window()
            .and_then(|w| w.latest_time())
            .and_then(timestamp),
    }
}

/// The real thing, through aws-sdk-rds. Every request, each page of a listing included,
/// first draws from the account-region's RDS budget.
pub struct SdkRds {
    pub clients: std::sync::Arc<AwsClients>,
}

/// A `db-instance-id` filter: instance identifiers or ARNs.
pub(super) fn instance_filter(id: &str) -> Filter {
    Filter::builder().name("db-instance-id").values(id).build()
}

impl SdkRds {
    /// DescribeDBInstances, all pages, with `filter` when given.
    async fn describe_instances(
        &self,
        scope: &Scope,
        filter: Option<Filter>,
    ) -> Result<Vec<InstanceFacts>, AwsError> {
        self.describe_db_instances(scope, filter, |db| Some(instance_facts(&scope.region, db)))
            .await
    }

    /// DescribeDBInstances, all pages, with `filter` when given; each instance as `pick`
    /// makes it (or left out).
    pub(super) async fn describe_db_instances<T>(
        &self,
        scope: &Scope,
        filter: Option<Filter>,
        pick: impl Fn(&DbInstance) -> Option<T>,
    ) -> Result<Vec<T>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let (mut out, mut marker) = (Vec::new(), None);
        loop {
            c.rds_budget.take().await;
            let page = c
                .rds
                .describe_db_instances()
                .set_filters(filter.clone().map(|f| vec![f]))
                .max_records(PAGE_SIZE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeDBInstances", &e))?;
            out.extend(page.db_instances().iter().filter_map(&pick));
            marker = next(page.marker());
            if marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// DescribeDBInstanceAutomatedBackups, all pages, with `filter` when given.
    async fn describe_automated_backups(
        &self,
        scope: &Scope,
        filter: Option<Filter>,
    ) -> Result<Vec<ReplicaFacts>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let (mut out, mut marker) = (Vec::new(), None);
        loop {
            c.rds_budget.take().await;
            let page = c
                .rds
                .describe_db_instance_automated_backups()
                .set_filters(filter.clone().map(|f| vec![f]))
                .max_records(PAGE_SIZE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeDBInstanceAutomatedBackups", &e))?;
            out.extend(page.db_instance_automated_backups().iter().map(replica_facts));
            marker = next(page.marker());
            if marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// The newest automated snapshot per instance (DescribeDBSnapshots, all pages), of one
    /// instance when `identifier` is given.
    async fn describe_snapshots(
        &self,
        scope: &Scope,
        identifier: Option<&str>,
    ) -> Result<HashMap<String, Timestamp>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let (mut newest, mut marker) = (HashMap::<String, Timestamp>::new(), None);
        loop {
            c.rds_budget.take().await;
            let page = c
                .rds
                .describe_db_snapshots()
                .set_db_instance_identifier(identifier.map(str::to_string))
                .snapshot_type("automated")
                .max_records(PAGE_SIZE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeDBSnapshots", &e))?;
            for snapshot in page.db_snapshots() {
                let (Some(id), Some(created)) = (
                    snapshot.db_instance_identifier(),
                    snapshot.snapshot_create_time().and_then(timestamp),
                ) else {
                    continue;
                };
                let slot = newest.entry(id.to_string()).or_insert(created);
                *slot = (*slot).max(created);
            }
            marker = next(page.marker());
            if marker.is_none() {
                return Ok(newest);
            }
        }
    }
}

/// The marker of the next page, if there is one.
fn next(marker: Option<&str>) -> Option<String> {
    marker.filter(|m| !m.is_empty()).map(str::to_string)
}

#[async_trait]
impl Rds for SdkRds {
    async fn instances(&self, scope: &Scope) -> Result<Vec<InstanceFacts>, AwsError> {
        self.describe_instances(scope, None).await
    }

    async fn instance(&self, scope: &Scope, identifier: &str) -> Result<Option<InstanceFacts>, AwsError> {
        // A filter, not DBInstanceIdentifier: no instance is an empty answer, not an error.
        let found = self
            .describe_instances(scope, Some(instance_filter(identifier)))
            .await?;
        Ok(found.into_iter().find(|i| i.identifier == identifier))
    }

    async fn automated_backups(&self, scope: &Scope) -> Result<Vec<ReplicaFacts>, AwsError> {
        self.describe_automated_backups(scope, None).await
    }

    async fn automated_backups_of(
        &self,
        scope: &Scope,
        source_arn: &str,
    ) -> Result<Vec<ReplicaFacts>, AwsError> {
        let found = self
            .describe_automated_backups(scope, Some(instance_filter(source_arn)))
            .await?;
        Ok(found.into_iter().filter(|b| b.source_arn == source_arn).collect())
    }

    async fn newest_automated_snapshots(
        &self,
        scope: &Scope,
    ) -> Result<HashMap<String, Timestamp>, AwsError> {
        self.describe_snapshots(scope, None).await
    }

    async fn newest_automated_snapshot(
        &self,
        scope: &Scope,
        identifier: &str,
    ) -> Result<Option<Timestamp>, AwsError> {
        Ok(self
            .describe_snapshots(scope, Some(identifier))
            .await?
            .remove(identifier))
    }

    async fn replication_source_regions(&self, scope: &Scope) -> Result<Vec<String>, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        let (mut out, mut marker) = (Vec::new(), None);
        loop {
            c.rds_budget.take().await;
            let page = c
                .rds
                .describe_source_regions()
                .max_records(PAGE_SIZE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeSourceRegions", &e))?;
            out.extend(
                page.source_regions()
                    .iter()
                    .filter(|r| {
                        r.supports_db_instance_automated_backups_replication()
                            .unwrap_or(false)
                    })
                    .filter_map(|r| r.region_name().map(str::to_string)),
            );
            marker = next(page.marker());
            if marker.is_none() {
                return Ok(out);
            }
        }
    }

    async fn modify_instance(
        &self,
        scope: &Scope,
        identifier: &str,
        change: &InstanceChange,
    ) -> Result<InstanceFacts, AwsError> {
        let c = self.clients.for_scope(scope).await;
        let _permit = c.limit.acquire().await;
        c.rds_budget.take().await;
        let out = c
            .rds
            .modify_db_instance()
            .db_instance_identifier(identifier)
            .set_backup_retention_period(change.backup_retention_days)
            .apply_immediately(change.apply_immediately)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ModifyDBInstance", &e))?;
        out.db_instance()
            .map(|db| instance_facts(&scope.region, db))
            .ok_or_else(|| AwsError {
                operation: "ModifyDBInstance",
                kind: super::AwsErrorKind::Refused,
                code: "EmptyResponse".into(),
                message: "no DBInstance in the response".into(),
            })
    }

    async fn start_replication(
        &self,
        destination: &Scope,
        source_arn: &str,
        kms_key_arn: &str,
        retention_days: i32,
    ) -> Result<ReplicaFacts, AwsError> {
        let c = self.clients.for_scope(destination).await;
        let _permit = c.limit.acquire().await;
        c.rds_budget.take().await;
        let out = c
            .rds
            .start_db_instance_automated_backups_replication()
            .source_db_instance_arn(source_arn)
            .kms_key_id(kms_key_arn)
            .backup_retention_period(retention_days)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("StartDBInstanceAutomatedBackupsReplication", &e))?;
        Ok(out
            .db_instance_automated_backup()
            .map(replica_facts)
            .unwrap_or_else(|| ReplicaFacts {
                source_arn: source_arn.to_string(),
                status: "pending".into(),
                retention_days: Some(retention_days),
                kms_key_arn: Some(kms_key_arn.to_string()),
                ..Default::default()
            }))
    }

    async fn stop_replication(&self, destination: &Scope, source_arn: &str) -> Result<(), AwsError> {
        let c = self.clients.for_scope(destination).await;
        let _permit = c.limit.acquire().await;
        c.rds_budget.take().await;
        c.rds
            .stop_db_instance_automated_backups_replication()
            .source_db_instance_arn(source_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("StopDBInstanceAutomatedBackupsReplication", &e))?;
        Ok(())
    }
}
