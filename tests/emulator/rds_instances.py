"""Test-only moto extension: DescribeDBInstances facts for the kinds of instances that the
backup policy has to tell apart.

moto 5.2.5 already returns DBClusterIdentifier for Aurora members,
ReadReplicaSourceDBInstanceIdentifier for read replicas, DBInstanceStatus,
PreferredMaintenanceWindow, PreferredBackupWindow and StorageEncrypted. This module fixes the
rest (AWS RDS API reference and User Guide):

* Multi-AZ DB clusters (CreateDBCluster with Engine mysql or postgres): "A Multi-AZ DB cluster
  has a writer DB instance and two reader DB instances in three separate Availability Zones".
  RDS creates them with the cluster, and they appear in DescribeDBInstances with
  DBClusterIdentifier. moto created none. They are named ``<cluster>-instance-1..3`` as in the
  console, and are deleted with the cluster. Their StorageType is the cluster's; moto reports
  "aurora" for every cluster member.
* Read replicas: "RDS creates read replicas with backups disabled" (CreateDBInstanceReadReplica),
  so their BackupRetentionPeriod is 0. moto copied the source's retention, and also copied
  this extension's per-instance state (pending changes, AWS Backup recovery point).
* KmsKeyId of an encrypted instance or cluster: "If StorageEncrypted is enabled, the Amazon Web
  Services KMS key identifier for the encrypted DB instance. The key identifier is the key
  ARN". With no KmsKeyId given, "Amazon RDS uses your default KMS key" (alias aws/rds).
  moto returned the literal "default_kms_key_id", or the key ID or alias exactly as given. An
  unencrypted cluster (and so its Aurora members) reported "default_kms_key_id" too, where AWS
  returns no KmsKeyId. Identifiers that the Region's KMS doesn't know are left as given.
"""

from __future__ import annotations

from typing import Any

from moto.kms.models import kms_backends
from moto.rds.models import DBCluster, DBInstance, DBInstanceClustered, RDSBackend

import rds_backup_retention

_installed = False

MULTI_AZ_CLUSTER_ENGINES = ("mysql", "postgres")
MULTI_AZ_MEMBERS = 3
AWS_MANAGED_RDS_KEY = "alias/aws/rds"
_MOTO_DEFAULT_KEY = "default_kms_key_id"


def is_multi_az_cluster(cluster: DBCluster) -> bool:
    return cluster.engine in MULTI_AZ_CLUSTER_ENGINES


def _key_arn(account_id: str, region: str, key_id: str | None) -> str | None:
    wanted = AWS_MANAGED_RDS_KEY if key_id in (None, "", _MOTO_DEFAULT_KEY) else key_id
    try:
        return kms_backends[account_id][region].describe_key(wanted).arn
    except Exception:  # unknown to this Region's KMS: keep what the caller gave
        return key_id


def _patch_kms_key_ids() -> None:
    original_instance_init = DBInstance.__init__

    def instance_init(self: DBInstance, *args: Any, **kwargs: Any) -> None:
        original_instance_init(self, *args, **kwargs)
        if not isinstance(self, DBInstanceClustered) and self.storage_encrypted:
            self.kms_key_id = _key_arn(self.account_id, self.region, self.kms_key_id)

    DBInstance.__init__ = instance_init  # type: ignore[method-assign]

    original_cluster_init = DBCluster.__init__

    def cluster_init(self: DBCluster, *args: Any, **kwargs: Any) -> None:
        original_cluster_init(self, *args, **kwargs)
        if self.storage_encrypted:
            self.kms_key_id = _key_arn(self.account_id, self.region, self.kms_key_id)
        else:
            self.kms_key_id = None

    DBCluster.__init__ = cluster_init  # type: ignore[method-assign]


def _patch_read_replicas() -> None:
    original = RDSBackend.create_db_instance_read_replica

    def create_db_instance_read_replica(self: RDSBackend, db_kwargs: dict[str, Any]) -> DBInstance:
        replica = original(self, db_kwargs)
        rds_backup_retention.reset_copied_state(replica)
        # "RDS creates read replicas with backups disabled."
        replica.backup_retention_period = 0
        return replica

    RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica  # type: ignore[method-assign]


def _patch_multi_az_db_clusters() -> None:
    original_create = RDSBackend.create_db_cluster

    def create_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
        cluster = original_create(self, kwargs)
        if is_multi_az_cluster(cluster):
            zones = list(cluster.availability_zones or []) or [f"{self.region_name}{z}" for z in "abc"]
            for n in range(1, MULTI_AZ_MEMBERS + 1):
                self.create_db_instance(
                    {
                        "db_instance_identifier": f"{cluster.db_cluster_identifier}-instance-{n}",
                        "db_cluster_identifier": cluster.db_cluster_identifier,
                        "engine": cluster.engine,
                        "db_instance_class": cluster.db_cluster_instance_class or "db.m6gd.large",
                        "availability_zone": zones[(n - 1) % len(zones)],
                        "promotion_tier": n,
                    }
                )
        return cluster

    RDSBackend.create_db_cluster = create_db_cluster  # type: ignore[method-assign]

    original_delete = RDSBackend.delete_db_cluster

    def delete_db_cluster(self: RDSBackend, cluster_identifier: str, *args: Any, **kwargs: Any) -> DBCluster:
        cluster = self.clusters.get(cluster_identifier)
        if cluster is not None and is_multi_az_cluster(cluster) and not cluster.deletion_protection:
            # Deleting a Multi-AZ DB cluster deletes its DB instances.
            for member in list(cluster._members):
                self.databases.pop(member.db_instance_identifier, None)
        return original_delete(self, cluster_identifier, *args, **kwargs)

    RDSBackend.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]

    aurora_storage_type = DBInstanceClustered.storage_type

    def storage_type(self: DBInstanceClustered) -> str:
        if is_multi_az_cluster(self.cluster):
            return self.cluster.storage_type
        return aurora_storage_type.fget(self)  # type: ignore[union-attr]

    DBInstanceClustered.storage_type = property(storage_type, aurora_storage_type.fset)  # type: ignore[assignment]


def install() -> None:
    """Patch moto (idempotent). Install after rds_backup_retention."""
    global _installed
    if _installed:
        return
    _patch_kms_key_ids()
    _patch_read_replicas()
    _patch_multi_az_db_clusters()
    _installed = True
