"""Test-only moto extension: RDS cross-Region automated backup replication.

moto 5.2.5 has no StartDBInstanceAutomatedBackupsReplication,
StopDBInstanceAutomatedBackupsReplication, DeleteDBInstanceAutomatedBackup or
DescribeSourceRegions, and its
DescribeDBInstanceAutomatedBackups only returns DBInstanceIdentifier + Status, grouped from
automated snapshots. This module adds them by monkeypatching moto's RDS backend and response
classes. Call ``install()`` once, before moto serves requests.

Responses are serialized by moto's botocore-model-driven serializer, so element names, list
member names (``DBInstanceAutomatedBackup``, ``DBInstanceAutomatedBackupsReplication``) and
the ``<...Result>`` wrappers are exactly those of the AWS model for the awsquery protocol, and
raised ``RDSClientError``s become AWS query-protocol ``<ErrorResponse>``s whose HTTP status
comes from the error shape in the model (404 for the ...NotFound codes, 400 otherwise).

AWS behaviour reproduced (AWS RDS API reference, RDS User Guide "Replicating automated
backups to another AWS Region", AWS CLI examples for these operations):

* Replication is started and stopped in the *destination* Region (the Region of the
  endpoint / credential scope); the source instance is named by ARN and found in its own
  Region (same account). The replicated automated backup exists only in the destination
  Region; the source instance lists it in ``DBInstanceAutomatedBackupsReplications``.
* An automated backup is identified per Region by the source's ``DbiResourceId``
  ("unique to an AWS Region", DeleteDBInstanceAutomatedBackup); its ARN is
  ``arn:aws:rds:<region>:<account>:auto-backup:ab-<39 lowercase alphanumerics>``.
* Start answers with Status ``pending`` and an empty RestoreWindow (CLI example); the backup
  then shows ``replicating`` (see BACKUP_WARDEN_MOTO_REPLICATION_PENDING_SECONDS).
* Stop answers with the backup as it was when the call arrived (the CLI example shows
  ``replicating``); afterwards it is ``retained`` and the source no longer lists it.
* Delete refuses automated backups that are still active/replicating
  (InvalidDBInstanceAutomatedBackupState) and answers with Status ``deleting``.
* Start refuses Aurora members, Multi-AZ DB cluster members ("Automated backup replication
  isn't supported for Multi-AZ DB clusters") and read replicas, with InvalidDBInstanceState.
* DescribeDBInstanceAutomatedBackups in a destination Region lists every replica it
  receives. The db-instance-id and dbi-resource-id filters find them by source.
* At most 20 replications per destination Region and account (User Guide: "You can replicate
  up to 20 backups to each destination AWS Region for each AWS account"). Only the account's
  own replications into that Region count: the replicas live on the destination Region's
  backend of the account, and a source in another account is never found. Like any RDS quota,
  this one can be raised per account and Region (Service Quotas); the test-only endpoint
  ``POST /moto-api/backup-warden/quota`` stands in for that, see ``quota_response``.

Environment knobs (both optional):

* BACKUP_WARDEN_MOTO_REPLICATION_PENDING_SECONDS (default 0): how long a new replication
  stays ``pending`` before it reports ``replicating``.
* BACKUP_WARDEN_MOTO_REPLICATION_QUOTA (default 20): replications per destination Region
  and account, for every account and Region without an override from the quota endpoint.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import threading
from typing import Any

import boto3
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.kms.models import kms_backends
from moto.moto_api._internal import mock_random
from moto.rds.exceptions import (
    DBInstanceNotFoundError,
    KMSKeyNotAccessibleFault,
    RDSClientError,
)
from moto.rds.models import DBInstance, DBInstanceClustered, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

import rds_pagination

EXTENSION_NAME = "backup-warden-rds-automated-backup-replication"
QUOTA_PATH = "/moto-api/backup-warden/quota"

_lock = threading.RLock()
_installed = False

# Statuses of a DBInstanceAutomatedBackup (DescribeDBInstanceAutomatedBackups "status" filter
# and the CLI examples): active (local, instance exists), pending/replicating (cross-Region
# copy running), retained (instance deleted or replication stopped), deleting.
ACTIVE, PENDING, REPLICATING, RETAINED, DELETING = (
    "active",
    "pending",
    "replicating",
    "retained",
    "deleting",
)

SOURCE_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):rds:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):db:(?P<id>[A-Za-z0-9-]+)"
)
KMS_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?:key|alias)/.+"
)


def _pending_seconds() -> float:
    return float(os.environ.get("BACKUP_WARDEN_MOTO_REPLICATION_PENDING_SECONDS", "0"))


def _default_replication_quota() -> int:
    return int(os.environ.get("BACKUP_WARDEN_MOTO_REPLICATION_QUOTA", "20"))


def _replication_quota(dest: RDSBackend) -> int:
    """Active replications allowed into ``dest``'s Region for ``dest``'s account: the override
    set through QUOTA_PATH, else BACKUP_WARDEN_MOTO_REPLICATION_QUOTA."""
    override = dest.__dict__.get("_bw_replication_quota")
    return _default_replication_quota() if override is None else override


# --------------------------------------------------------------------------------------
# Errors. Codes are the AWS error codes of the RDS model (botocore shape metadata "code").
# moto's own InvalidDBInstanceStateFault uses the code "InvalidDBInstanceStateFault", which
# is not what AWS sends ("InvalidDBInstanceState"), so these are spelled out here.
# --------------------------------------------------------------------------------------


def _error(code: str, message: str) -> RDSClientError:
    return RDSClientError(code, message)


def invalid_parameter_value(message: str) -> RDSClientError:
    return _error("InvalidParameterValue", message)


def invalid_parameter_combination(message: str) -> RDSClientError:
    return _error("InvalidParameterCombination", message)


def invalid_db_instance_state(message: str) -> RDSClientError:
    return _error("InvalidDBInstanceState", message)


def automated_backup_not_found(what: str) -> RDSClientError:
    return _error("DBInstanceAutomatedBackupNotFound", f"Automated backup {what} not found.")


def invalid_automated_backup_state(message: str) -> RDSClientError:
    return _error("InvalidDBInstanceAutomatedBackupState", message)


def automated_backup_quota_exceeded(message: str) -> RDSClientError:
    return _error("DBInstanceAutomatedBackupQuotaExceeded", message)


# --------------------------------------------------------------------------------------
# Per-Region state, kept on moto's RDS backend objects so that /moto-api/reset (which
# rebuilds the backends) also drops it.
# --------------------------------------------------------------------------------------


def _stored_backups(backend: RDSBackend) -> dict[str, AutomatedBackup]:
    """Automated backups living in this Region that are not derived from a running local
    instance: cross-Region replicas and retained backups of deleted local instances.
    Keyed by DbiResourceId (one automated backup per DbiResourceId per Region)."""
    return backend.__dict__.setdefault("_bw_automated_backups", {})


def _outbound(backend: RDSBackend) -> dict[str, dict[str, AutomatedBackup]]:
    """Replications started from this (source) Region: DbiResourceId -> {dest region: replica}."""
    return backend.__dict__.setdefault("_bw_outbound_replications", {})


def _active_replications(instance: DBInstance) -> list[AutomatedBackup]:
    outbound = _outbound(instance.backend).get(instance.dbi_resource_id, {})
    return [b for b in outbound.values() if b.is_replicating]


def automated_backup_arn(partition: str, region: str, account: str, dbi_resource_id: str) -> str:
    """Stable ARN of the automated backup of ``dbi_resource_id`` in ``region``. AWS's look
    like ``arn:aws:rds:us-west-2:123456789012:auto-backup:ab-jkib2gfq5rv7replzadausbrktni2bn4example``."""
    digest = hashlib.sha256(f"{dbi_resource_id}|{region}".encode()).digest()
    suffix = base64.b32encode(digest).decode().lower()[:39]
    return f"arn:{partition}:rds:{region}:{account}:auto-backup:ab-{suffix}"


def new_dbi_resource_id() -> str:
    # AWS: "db-" + 26 characters of upper-case base32, e.g. db-JKIB2GFQ5RV7REPLZA4EXAMPLE.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "db-" + "".join(mock_random.choice(alphabet) for _ in range(26))


def _instance_attributes(instance: DBInstance) -> dict[str, Any]:
    """The DBInstanceAutomatedBackup members that describe the source instance."""
    attrs: dict[str, Any] = {
        "DBInstanceArn": instance.db_instance_arn,
        "DbiResourceId": instance.dbi_resource_id,
        "Region": instance.region,
        "DBInstanceIdentifier": instance.db_instance_identifier,
        "AllocatedStorage": instance.allocated_storage,
        "Port": instance.port,
        "AvailabilityZone": instance.availability_zone,
        "InstanceCreateTime": instance.instance_create_time,
        "MasterUsername": instance.master_username,
        "Engine": instance.engine,
        "EngineVersion": instance.engine_version,
        "LicenseModel": instance.license_model,
        "Iops": instance.iops,
        "StorageThroughput": getattr(instance, "storage_throughput", None),
        "OptionGroupName": instance.option_group_name,
        "Encrypted": bool(instance.storage_encrypted),
        "StorageType": instance.storage_type,
        "KmsKeyId": instance.kms_key_id if instance.storage_encrypted else None,
        "IAMDatabaseAuthenticationEnabled": bool(
            instance.enable_iam_database_authentication
        ),
        "BackupRetentionPeriod": instance.backup_retention_period,
        "PreferredBackupWindow": instance.preferred_backup_window,
        "BackupTarget": "region",
        "TagList": [],
    }
    subnet_group = getattr(instance, "db_subnet_group", None)
    if subnet_group is not None and getattr(subnet_group, "vpc_id", None):
        attrs["VpcId"] = subnet_group.vpc_id
    return attrs


def _restore_window(start: datetime.datetime, end: datetime.datetime, retention_days: int) -> dict[str, Any]:
    earliest = max(start, end - datetime.timedelta(days=retention_days))
    return {"EarliestTime": earliest, "LatestTime": end}


class AutomatedBackup:
    """A stored DBInstanceAutomatedBackup (replica in a destination Region, or the retained
    backup of a deleted local instance)."""

    def __init__(
        self,
        backend: RDSBackend,
        attributes: dict[str, Any],
        *,
        replica: bool,
        status: str,
        started_at: datetime.datetime,
        retained_at: datetime.datetime | None = None,
    ) -> None:
        self.backend = backend  # the Region it lives in
        self.attributes = attributes
        self.replica = replica
        self.status = status
        self.started_at = started_at
        self.retained_at = retained_at
        self.arn = automated_backup_arn(
            backend.partition, backend.region_name, backend.account_id, self.dbi_resource_id
        )

    @property
    def dbi_resource_id(self) -> str:
        return self.attributes["DbiResourceId"]

    def current_status(self) -> str:
        if self.status == REPLICATING:
            if (utcnow() - self.started_at).total_seconds() < _pending_seconds():
                return PENDING
        return self.status

    @property
    def is_replicating(self) -> bool:
        return self.status == REPLICATING

    def retain(self) -> None:
        self.status = RETAINED
        self.retained_at = utcnow()

    def to_shape(self, status: str | None = None, restore_window: dict | None = None) -> dict[str, Any]:
        status = status or self.current_status()
        if restore_window is None:
            if status == PENDING:
                restore_window = {}  # nothing shipped yet (CLI example of Start)
            else:
                end = self.retained_at if self.status == RETAINED else utcnow()
                restore_window = _restore_window(
                    self.started_at, end, self.attributes["BackupRetentionPeriod"]
                )
        shape = dict(self.attributes)
        shape.update(
            {
                "Status": status,
                "RestoreWindow": restore_window,
                "DBInstanceAutomatedBackupsArn": self.arn,
            }
        )
        return shape


def backups_enabled_at(instance: DBInstance) -> datetime.datetime:
    """When automated backups of ``instance`` were last enabled: its creation, or the moment a
    ModifyDBInstance 0 -> N took effect (rds_backup_retention sets ``_bw_backups_enabled_at``)."""
    return instance.__dict__.get("_bw_backups_enabled_at") or instance.instance_create_time


def _local_shape(instance: DBInstance) -> dict[str, Any]:
    """DBInstanceAutomatedBackup of a running local instance with retention > 0."""
    shape = _instance_attributes(instance)
    shape.update(
        {
            "Status": ACTIVE,
            "RestoreWindow": _restore_window(
                backups_enabled_at(instance),
                instance.latest_restorable_time,
                instance.backup_retention_period,
            ),
            # DBInstanceAutomatedBackup.AwsBackupRecoveryPointArn: set for instances whose
            # automated backups AWS Backup manages (see rds_backup_retention).
            "AwsBackupRecoveryPointArn": getattr(instance, "aws_backup_recovery_point_arn", None),
            "DBInstanceAutomatedBackupsArn": automated_backup_arn(
                instance.partition, instance.region, instance.account_id, instance.dbi_resource_id
            ),
            "DBInstanceAutomatedBackupsReplications": [
                {"DBInstanceAutomatedBackupsArn": b.arn} for b in _active_replications(instance)
            ],
        }
    )
    return shape


def _has_local_automated_backup(instance: DBInstance) -> bool:
    # Aurora instances have cluster automated backups, not instance ones; retention 0 means
    # automated backups are disabled (AWS: "Current instances with retention periods greater
    # than zero (0) are returned").
    return not isinstance(instance, DBInstanceClustered) and (instance.backup_retention_period or 0) > 0


# --------------------------------------------------------------------------------------
# Backend operations
# --------------------------------------------------------------------------------------


def _find_source_instance(dest: RDSBackend, source_arn: str | None) -> DBInstance:
    if not source_arn:
        raise invalid_parameter_value("The parameter SourceDBInstanceArn must be provided.")
    match = SOURCE_ARN_RE.fullmatch(source_arn)
    if match is None:
        raise invalid_parameter_value(
            f"The parameter SourceDBInstanceArn is not a valid DB instance ARN: {source_arn}"
        )
    if match["account"] != dest.account_id:
        # Cross-account backup replication is not supported; the instance is not visible.
        raise DBInstanceNotFoundError(source_arn)
    try:
        source_backend = rds_backends[dest.account_id][match["region"]]
    except KeyError:
        raise DBInstanceNotFoundError(source_arn)
    instance = source_backend.databases.get(match["id"])
    if instance is None:
        raise DBInstanceNotFoundError(match["id"])
    return instance


def _resolve_kms_key(dest: RDSBackend, kms_key_id: str) -> str:
    """Resolve KmsKeyId (key ARN, key id, alias name or alias ARN) in the destination
    Region's KMS. AWS: the key "is the ARN for the KMS encryption key in the destination AWS
    Region"; missing, foreign-Region or non-Enabled keys fail with KMSKeyNotAccessibleFault
    ("Specified KMS key [...] does not exist, is not enabled or you do not have permissions
    to access it.")."""
    account = dest.account_id
    match = KMS_ARN_RE.fullmatch(kms_key_id)
    if match is not None:
        if match["region"] != dest.region_name:
            raise KMSKeyNotAccessibleFault(kms_key_id)
        account = match["account"]
    try:
        key = kms_backends[account][dest.region_name].describe_key(kms_key_id)
    except Exception:  # unknown id/alias (moto raises KeyError or worse for unknown aliases)
        raise KMSKeyNotAccessibleFault(kms_key_id)
    if key.key_state != "Enabled":
        raise KMSKeyNotAccessibleFault(kms_key_id)
    return key.arn


def start_db_instance_automated_backups_replication(
    self: RDSBackend,
    source_db_instance_arn: str | None,
    backup_retention_period: int | None = None,
    kms_key_id: str | None = None,
    tags: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """StartDBInstanceAutomatedBackupsReplication, called on the destination Region's backend."""
    with _lock:
        instance = _find_source_instance(self, source_db_instance_arn)
        if instance.region == self.region_name:
            # Seen from AWS when the client's Region is the source's: InvalidParameterValue
            # (boto/boto3#3201 "Feature is not available in region ...").
            raise invalid_parameter_value(
                "The source DB instance must be in a different AWS Region than the "
                f"destination Region {self.region_name} of the replicated automated backups."
            )
        # Unsupported sources. AWS documents no dedicated error for them; of the errors the
        # operation documents (DBInstanceAutomatedBackupQuotaExceeded, DBInstanceNotFound,
        # InvalidDBInstanceAutomatedBackupState, InvalidDBInstanceState,
        # KMSKeyNotAccessibleFault, StorageTypeNotSupported) only InvalidDBInstanceState ("The
        # DB instance isn't in a valid state") describes the source instance.
        if isinstance(instance, DBInstanceClustered):
            if instance.engine.startswith("aurora"):
                # "This command doesn't apply to RDS Custom, Aurora MySQL, and Aurora
                # PostgreSQL" (StopDBInstanceAutomatedBackupsReplication); Aurora backups are
                # the cluster's.
                raise invalid_db_instance_state(
                    f"DB instance {instance.db_instance_identifier} is a member of Aurora DB "
                    f"cluster {instance.db_cluster_identifier}. Automated backup replication "
                    "isn't supported for Aurora DB instances."
                )
            # User Guide: "Automated backup replication isn't supported for Multi-AZ DB clusters."
            raise invalid_db_instance_state(
                f"DB instance {instance.db_instance_identifier} is a member of Multi-AZ DB "
                f"cluster {instance.db_cluster_identifier}. Automated backup replication isn't "
                "supported for Multi-AZ DB clusters."
            )
        if instance.is_replica:
            # Read replicas are created with backups disabled ("RDS creates read replicas
            # with backups disabled", CreateDBInstanceReadReplica), so AWS refuses them with
            # InvalidDBInstanceState like any source without automated backups; refused here
            # even after backups were enabled on the replica: replicate the source instead.
            raise invalid_db_instance_state(
                f"DB instance {instance.db_instance_identifier} is a read replica of "
                f"{instance.source_db_instance_identifier}. Replicate the automated backups "
                "of the source DB instance instead."
            )
        if instance.status != "available":
            raise invalid_db_instance_state(
                f"DB instance {instance.db_instance_identifier} is not in available state."
            )
        if not _has_local_automated_backup(instance):
            raise invalid_db_instance_state(
                f"Automated backups are not enabled for DB instance {instance.db_instance_identifier}."
            )
        # One replication per source instance (its DBInstanceAutomatedBackupsReplications).
        # AWS documents no dedicated code; InvalidDBInstanceState is what Stop uses for the
        # mirror case ("... not replicating to the current region", matched by the Terraform
        # AWS provider) and what CloudFormation's RDS handler retries on for Start/Stop.
        # DBInstanceAutomatedBackupQuotaExceeded is documented only for the quota.
        existing = _active_replications(instance)
        if existing:
            regions = ", ".join(b.backend.region_name for b in existing)
            raise invalid_db_instance_state(
                f"DB instance {instance.db_instance_identifier} is already replicating "
                f"automated backups to {regions}."
            )

        retention = 7 if backup_retention_period is None else int(backup_retention_period)
        if not 1 <= retention <= 35:
            raise invalid_parameter_value(
                f"Invalid backup retention period: {retention}. The backup retention period "
                "for replicated automated backups must be between 1 and 35 days."
            )

        kms_key_arn = _resolve_kms_key(self, kms_key_id) if kms_key_id else None
        if kms_key_arn is None and instance.storage_encrypted:
            # Reported by users of aws_db_instance_automated_backups_replication.
            raise invalid_parameter_value("Encrypted instances require a valid KMS key ID.")

        # The store is this account's, in this Region: only the account's own replications
        # into the Region count (pending ones included; retained replicas don't).
        store = _stored_backups(self)
        active_here = [b for b in store.values() if b.replica and b.is_replicating]
        quota = _replication_quota(self)
        if len(active_here) >= quota:
            raise automated_backup_quota_exceeded(
                f"Cannot replicate more than {quota} automated backups to "
                f"{self.region_name} for account {self.account_id}."
            )

        attributes = _instance_attributes(instance)
        attributes.update(
            {
                "AvailabilityZone": None,  # a replica lives in no AZ (CLI examples omit it)
                "VpcId": None,
                "BackupRetentionPeriod": retention,
                "KmsKeyId": kms_key_arn,
                "Encrypted": kms_key_arn is not None or bool(instance.storage_encrypted),
                "TagList": [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags or []],
            }
        )
        now = utcnow()
        retained = store.get(instance.dbi_resource_id)
        if retained is not None and retained.replica and retained.status == RETAINED:
            # Restarting into a Region that still holds the retained replica resumes it. AWS
            # requires the same KMS key then (aws-cloudformation-resource-providers-rds#516:
            # "When customers have retained backups in a region they must provide the same KMS
            # key used to encrypt those backups"); the error code for a mismatch is a guess.
            if retained.attributes.get("KmsKeyId") != kms_key_arn:
                raise invalid_parameter_combination(
                    "Retained automated backups of this DB instance in "
                    f"{self.region_name} are encrypted with KMS key "
                    f"{retained.attributes.get('KmsKeyId')}; specify the same KmsKeyId."
                )
            backup = retained
            backup.attributes.update(attributes)
            backup.status, backup.started_at, backup.retained_at = REPLICATING, now, None
        else:
            backup = AutomatedBackup(
                self, attributes, replica=True, status=REPLICATING, started_at=now
            )
            store[backup.dbi_resource_id] = backup
        _outbound(instance.backend).setdefault(instance.dbi_resource_id, {})[
            self.region_name
        ] = backup
        # The Start response shows the new replication as pending (AWS CLI example).
        return backup.to_shape(status=PENDING, restore_window={})


def stop_db_instance_automated_backups_replication(
    self: RDSBackend, source_db_instance_arn: str | None
) -> dict[str, Any]:
    """StopDBInstanceAutomatedBackupsReplication, called on the destination Region's backend."""
    with _lock:
        instance = _find_source_instance(self, source_db_instance_arn)
        backup = _stored_backups(self).get(instance.dbi_resource_id)
        if backup is None or not backup.replica or not backup.is_replicating:
            # Terraform's AWS provider treats this AWS error as "already stopped":
            # InvalidDBInstanceState + "not replicating to the current region".
            raise invalid_db_instance_state(
                f"DB instance {instance.db_instance_identifier} is not replicating to the "
                "current region."
            )
        # AWS answers with the backup as it was when the stop was accepted (the CLI example
        # shows "replicating"); it is retained from then on, keeping its backups.
        response = backup.to_shape()
        backup.retain()
        _outbound(instance.backend).get(instance.dbi_resource_id, {}).pop(self.region_name, None)
        return response


def delete_db_instance_automated_backup(
    self: RDSBackend,
    dbi_resource_id: str | None = None,
    db_instance_automated_backups_arn: str | None = None,
) -> dict[str, Any]:
    """DeleteDBInstanceAutomatedBackup: deletes a retained automated backup of this Region."""
    with _lock:
        if not dbi_resource_id and not db_instance_automated_backups_arn:
            raise invalid_parameter_combination(
                "Either DbiResourceId or DBInstanceAutomatedBackupsArn must be specified."
            )
        wanted = dbi_resource_id or db_instance_automated_backups_arn
        for instance in self.databases.values():
            if not _has_local_automated_backup(instance):
                continue
            arn = automated_backup_arn(
                instance.partition, self.region_name, self.account_id, instance.dbi_resource_id
            )
            if _matches(instance.dbi_resource_id, arn, dbi_resource_id, db_instance_automated_backups_arn):
                raise invalid_automated_backup_state(
                    f"Automated backup {wanted} is associated with an active DB instance "
                    f"{instance.db_instance_identifier} and can't be deleted."
                )
        store = _stored_backups(self)
        for key, backup in list(store.items()):
            if not _matches(backup.dbi_resource_id, backup.arn, dbi_resource_id, db_instance_automated_backups_arn):
                continue
            if backup.status != RETAINED:
                raise invalid_automated_backup_state(
                    f"Automated backup {wanted} is replicating and can't be deleted. Stop "
                    "the automated backup replication first."
                )
            del store[key]
            if not backup.replica:
                # The retained local backup owns the automated snapshots moto kept.
                for name, snap in list(self.database_snapshots.items()):
                    if snap.snapshot_type == "automated" and snap.dbi_resource_id == backup.dbi_resource_id:
                        del self.database_snapshots[name]
            return backup.to_shape(status=DELETING, restore_window={})
        raise automated_backup_not_found(wanted)


def _matches(dbi: str, arn: str, want_dbi: str | None, want_arn: str | None) -> bool:
    if want_dbi and dbi.lower() != want_dbi.lower():
        return False
    if want_arn and arn != want_arn:
        return False
    return True


FILTERS = ("status", "db-instance-id", "dbi-resource-id")


def describe_db_instance_automated_backups(
    self: RDSBackend,
    dbi_resource_id: str | None = None,
    db_instance_identifier: str | None = None,
    db_instance_automated_backups_arn: str | None = None,
    filters: list[dict[str, Any]] | None = None,
    max_records: int | None = None,
    marker: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """DescribeDBInstanceAutomatedBackups: local automated backups of this Region (active for
    running instances with retention > 0, retained for deleted ones) plus the replicas this
    Region receives. Pages are in DBInstanceAutomatedBackupsArn order and the Marker names the
    last backup returned, so backups deleted between two pages don't shift the listing."""
    rds_pagination.max_records(max_records)  # 20..100, before anything else
    wanted_filters: dict[str, list[str]] = {}
    for f in filters or []:
        name = f.get("Name")
        if name not in FILTERS:
            raise invalid_parameter_value(f"Unrecognized filter name: {name}.")
        wanted_filters[name] = list(f.get("Values") or [])

    with _lock:
        shapes = [_local_shape(i) for i in self.databases.values() if _has_local_automated_backup(i)]
        shapes += [b.to_shape() for b in _stored_backups(self).values()]

    def keep(shape: dict[str, Any]) -> bool:
        if dbi_resource_id and shape["DbiResourceId"].lower() != dbi_resource_id.lower():
            return False
        if db_instance_identifier and shape["DBInstanceIdentifier"].lower() != db_instance_identifier.lower():
            return False
        if db_instance_automated_backups_arn and shape["DBInstanceAutomatedBackupsArn"] != db_instance_automated_backups_arn:
            return False
        if "status" in wanted_filters and shape["Status"] not in wanted_filters["status"]:
            return False
        if "dbi-resource-id" in wanted_filters:
            # "Accepts DB resource identifiers and Amazon Resource Names (ARNs)": the resource
            # ID itself, or the ARN of the automated backup or of its DB instance.
            ids = {v.lower() for v in wanted_filters["dbi-resource-id"]}
            own = {
                shape["DbiResourceId"].lower(),
                shape["DBInstanceAutomatedBackupsArn"].lower(),
                shape["DBInstanceArn"].lower(),
            }
            if not ids & own:
                return False
        if "db-instance-id" in wanted_filters:
            ids = {v.lower() for v in wanted_filters["db-instance-id"]}
            if shape["DBInstanceIdentifier"].lower() not in ids and shape["DBInstanceArn"].lower() not in ids:
                return False
        return True

    shapes = [s for s in shapes if keep(s)]
    if not shapes and (dbi_resource_id or db_instance_identifier or db_instance_automated_backups_arn):
        # The operation's only documented error; the Terraform AWS provider maps it to
        # "not found" when it looks up a replication by DBInstanceAutomatedBackupsArn.
        raise automated_backup_not_found(
            dbi_resource_id or db_instance_identifier or db_instance_automated_backups_arn
        )
    return rds_pagination.paginate(
        "DescribeDBInstanceAutomatedBackups",
        shapes,
        lambda shape: shape["DBInstanceAutomatedBackupsArn"],
        max_records,
        marker,
    )


def describe_source_regions(
    self: RDSBackend,
    region_name: str | None = None,
    max_records: int | None = None,
    marker: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """DescribeSourceRegions (missing in moto): the Regions this Region can replicate
    automated backups from. AWS lists the other Regions of the partition; here every one of
    them supports automated backup replication. Filters "isn't currently supported" (AWS)."""
    max_records = 100 if max_records is None else int(max_records)
    if not 20 <= max_records <= 100:
        raise invalid_parameter_value(
            f"Invalid value {max_records} for MaxRecords. Must be between 20 and 100."
        )
    regions = boto3.session.Session().get_available_regions("rds", self.partition)
    shapes = [
        {
            "RegionName": region,
            "Endpoint": f"https://rds.{region}.amazonaws.com",
            "Status": "available",
            "SupportsDBInstanceAutomatedBackupsReplication": True,
        }
        for region in sorted(regions)
        if region != self.region_name and (not region_name or region == region_name)
    ]
    start = _decode_marker(marker)
    page = shapes[start : start + max_records]
    next_marker = _encode_marker(start + max_records) if start + max_records < len(shapes) else None
    return page, next_marker


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"bw-automated-backups:{offset}".encode()).decode()


def _decode_marker(marker: str | None) -> int:
    if not marker:
        return 0
    try:
        prefix, offset = base64.urlsafe_b64decode(marker.encode()).decode().split(":")
        assert prefix == "bw-automated-backups"
        return int(offset)
    except Exception:
        raise invalid_parameter_value(f"Invalid marker: {marker}")


# --------------------------------------------------------------------------------------
# GET/POST /moto-api/backup-warden/quota: per account and Region replication quota
# --------------------------------------------------------------------------------------

ACCOUNT_ID_RE = re.compile(r"\d{12}")
QUOTA_KEYS = ("account_id", "region", "replications")


def set_replication_quota(account_id: str, region: str, replications: int) -> dict[str, Any]:
    """Override the replication quota of ``account_id`` into ``region``. Kept on that RDS
    backend (created if needed), so /moto-api/reset drops it. Raises KeyError for a Region
    moto's RDS doesn't know."""
    with _lock:
        backend = rds_backends[account_id][region]
        backend.__dict__["_bw_replication_quota"] = replications
    return {"account_id": account_id, "region": region, "replications": replications}


def replication_quota_overrides() -> list[dict[str, Any]]:
    with _lock:
        overrides = [
            {"account_id": account, "region": region, "replications": quota}
            for account, regions in list(rds_backends.items())
            for region, backend in list(regions.items())
            if (quota := backend.__dict__.get("_bw_replication_quota")) is not None
        ]
    return sorted(overrides, key=lambda o: (o["account_id"], o["region"]))


def request_body(request: Any) -> bytes:
    get_data = getattr(request, "get_data", None)
    if callable(get_data):
        return get_data() or b""
    body = getattr(request, "body", None) or b""
    return body.encode() if isinstance(body, str) else body


def _parse_quota_body(raw: bytes) -> tuple[str, str, int]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as e:
        raise ValueError(f"not JSON: {e}")
    if not isinstance(body, dict):
        raise ValueError('expected a JSON object {"account_id", "region", "replications"}')
    unknown = sorted(set(body) - set(QUOTA_KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown}")
    missing = [k for k in QUOTA_KEYS if k not in body]
    if missing:
        raise ValueError(f"missing keys {missing}")
    account_id, region, replications = (body[k] for k in QUOTA_KEYS)
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.fullmatch(account_id):
        raise ValueError("account_id must be a string of 12 digits")
    if not isinstance(region, str) or not region:
        raise ValueError("region must be a non-empty string")
    # bool is an int in Python; 25.0 is not an integer quota.
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 0:
        raise ValueError("replications must be an integer >= 0")
    return account_id, region, replications


def quota_response(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """GET/POST /moto-api/backup-warden/quota

    POST {"account_id": "123456789012", "region": "us-west-2", "replications": 1000} sets the
    quota "automated-backup replications per destination Region" of that account into that
    Region (AWS raises it per account and Region through Service Quotas). All three keys are
    required; other keys are refused. Answers 200 with the stored setting, the same three
    keys. Start then refuses a replication into the Region once the account has that many
    active (pending/replicating) ones there. Lowering the quota below the current count stops
    nothing; it only refuses further starts. Setting the same account and Region again
    replaces the override.

    GET answers 200 {"default": <BACKUP_WARDEN_MOTO_REPLICATION_QUOTA or 20>, "overrides":
    [{"account_id", "region", "replications"}, ...]} sorted by account and Region.

    400 {"error": "BadRequest", ...}: the body is not a JSON object, a key is missing or
    unknown, account_id is not a 12-digit string, region is not a string or not an RDS Region
    moto knows, or replications is not an integer >= 0. 405 for other methods.
    /moto-api/reset drops every override.
    """
    json_headers = {"Content-Type": "application/json"}
    if request.method == "GET":
        body = {"default": _default_replication_quota(), "overrides": replication_quota_overrides()}
        return 200, json_headers, json.dumps(body)
    if request.method != "POST":
        return 405, json_headers, json.dumps({"error": "MethodNotAllowed", "message": "GET or POST only"})

    def bad_request(message: str) -> tuple[int, dict[str, str], str]:
        return 400, json_headers, json.dumps({"error": "BadRequest", "message": message})

    try:
        account_id, region, replications = _parse_quota_body(request_body(request))
    except ValueError as e:
        return bad_request(f"invalid JSON body: {e}")
    try:
        stored = set_replication_quota(account_id, region, replications)
    except KeyError:
        return bad_request(f"invalid JSON body: region {region!r} is not an RDS Region")
    return 200, json_headers, json.dumps(stored)


# --------------------------------------------------------------------------------------
# Hooks into existing moto behaviour
# --------------------------------------------------------------------------------------


def _patch_dbi_resource_id() -> None:
    """moto gives every instance the same DbiResourceId (db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U).
    AWS's is unique per instance, and automated backups are keyed by it."""
    original_init = DBInstance.__init__

    def __init__(self: DBInstance, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.dbi_resource_id = new_dbi_resource_id()

    DBInstance.__init__ = __init__  # type: ignore[method-assign]

    # Read replicas are shallow copies of their primary in moto; give them their own id.
    original_read_replica = RDSBackend.create_db_instance_read_replica

    def create_db_instance_read_replica(self: RDSBackend, db_kwargs: dict[str, Any]) -> DBInstance:
        replica = original_read_replica(self, db_kwargs)
        replica.dbi_resource_id = new_dbi_resource_id()
        return replica

    RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica  # type: ignore[method-assign]


def _patch_delete_db_instance() -> None:
    """Deleting a source instance: its replicas in other Regions are retained (their
    backups are kept for their retention period), and with DeleteAutomatedBackups=false its
    local automated backup is retained too (AWS default: DeleteAutomatedBackups=true)."""
    original = RDSBackend.delete_db_instance

    def delete_db_instance(self: RDSBackend, db_instance_identifier: str, *args: Any, **kwargs: Any) -> DBInstance:
        instance = self.databases.get(db_instance_identifier)
        result = original(self, db_instance_identifier, *args, **kwargs)
        if instance is None:
            return result
        with _lock:
            for backup in _outbound(self).pop(instance.dbi_resource_id, {}).values():
                backup.retain()
            delete_automated = kwargs.get("delete_automated_backups", True)
            if len(args) >= 3:
                delete_automated = args[2]
            if delete_automated is False and _has_local_automated_backup(instance):
                now = utcnow()
                retained = AutomatedBackup(
                    self,
                    _instance_attributes(instance),
                    replica=False,
                    status=RETAINED,
                    started_at=instance.instance_create_time,
                    retained_at=now,
                )
                _stored_backups(self)[retained.dbi_resource_id] = retained
        return result

    RDSBackend.delete_db_instance = delete_db_instance  # type: ignore[method-assign]


def _db_instance_automated_backups_replications(self: DBInstance) -> list[dict[str, str]]:
    """DBInstance.DBInstanceAutomatedBackupsReplications in DescribeDBInstances."""
    if isinstance(self, DBInstanceClustered):
        return []
    return [{"DBInstanceAutomatedBackupsArn": b.arn} for b in _active_replications(self)]


# --------------------------------------------------------------------------------------
# Response (awsquery) handlers, found by moto through the action name in snake_case.
# --------------------------------------------------------------------------------------


def _tags(params: Any) -> list[dict[str, str]]:
    tags = []
    for tag in params.get("Tags") or []:
        tag = tag.original_dict() if hasattr(tag, "original_dict") else dict(tag)
        tags.append(tag)
    return tags


def _response_start(self: RDSResponse) -> ActionResult:
    backup = self.backend.start_db_instance_automated_backups_replication(
        source_db_instance_arn=self.params.get("SourceDBInstanceArn"),
        backup_retention_period=self.params.get("BackupRetentionPeriod"),
        kms_key_id=self.params.get("KmsKeyId"),
        tags=_tags(self.params),
        # PreSignedUrl / SourceRegion only matter in GovCloud (ignored elsewhere by AWS).
    )
    return ActionResult({"DBInstanceAutomatedBackup": backup})


def _response_stop(self: RDSResponse) -> ActionResult:
    backup = self.backend.stop_db_instance_automated_backups_replication(
        source_db_instance_arn=self.params.get("SourceDBInstanceArn"),
    )
    return ActionResult({"DBInstanceAutomatedBackup": backup})


def _response_delete(self: RDSResponse) -> ActionResult:
    backup = self.backend.delete_db_instance_automated_backup(
        dbi_resource_id=self.params.get("DbiResourceId"),
        db_instance_automated_backups_arn=self.params.get("DBInstanceAutomatedBackupsArn"),
    )
    return ActionResult({"DBInstanceAutomatedBackup": backup})


def _response_describe(self: RDSResponse) -> ActionResult:
    filters = []
    for f in self.params.get("Filters") or []:
        filters.append({"Name": f.get("Name"), "Values": list(f.get("Values") or [])})
    backups, marker = self.backend.describe_db_instance_automated_backups(
        dbi_resource_id=self.params.get("DbiResourceId"),
        db_instance_identifier=self.params.get("DBInstanceIdentifier"),
        db_instance_automated_backups_arn=self.params.get("DBInstanceAutomatedBackupsArn"),
        filters=filters,
        max_records=self.params.get("MaxRecords"),
        marker=self.params.get("Marker"),
    )
    return ActionResult({"DBInstanceAutomatedBackups": backups, "Marker": marker})


def _response_describe_source_regions(self: RDSResponse) -> ActionResult:
    regions, marker = self.backend.describe_source_regions(
        region_name=self.params.get("RegionName"),
        max_records=self.params.get("MaxRecords"),
        marker=self.params.get("Marker"),
    )
    return ActionResult({"SourceRegions": regions, "Marker": marker})


def install() -> None:
    """Patch moto (idempotent)."""
    global _installed
    if _installed:
        return
    _patch_dbi_resource_id()
    _patch_delete_db_instance()
    DBInstance.db_instance_automated_backups_replications = property(  # type: ignore[attr-defined]
        _db_instance_automated_backups_replications
    )
    RDSBackend.start_db_instance_automated_backups_replication = start_db_instance_automated_backups_replication  # type: ignore[attr-defined]
    RDSBackend.stop_db_instance_automated_backups_replication = stop_db_instance_automated_backups_replication  # type: ignore[attr-defined]
    RDSBackend.delete_db_instance_automated_backup = delete_db_instance_automated_backup  # type: ignore[attr-defined]
    RDSBackend.describe_db_instance_automated_backups = describe_db_instance_automated_backups  # type: ignore[method-assign]
    RDSBackend.describe_source_regions = describe_source_regions  # type: ignore[attr-defined]
    RDSResponse.describe_source_regions = _response_describe_source_regions  # type: ignore[attr-defined]
    RDSResponse.start_db_instance_automated_backups_replication = _response_start  # type: ignore[attr-defined]
    RDSResponse.stop_db_instance_automated_backups_replication = _response_stop  # type: ignore[attr-defined]
    RDSResponse.delete_db_instance_automated_backup = _response_delete  # type: ignore[attr-defined]
    RDSResponse.describe_db_instance_automated_backups = _response_describe  # type: ignore[method-assign]
    _installed = True
