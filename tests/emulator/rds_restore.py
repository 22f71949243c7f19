"""Test-only moto extension: RestoreDBInstanceToPointInTime from automated backups, including
replicated ones, and restored instances that take a while to become available.

moto 5.2.5 reads only SourceDBInstanceIdentifier. Without it (a restore by
SourceDBInstanceAutomatedBackupsArn or SourceDbiResourceId) it lists every instance of the
Region and restores the first one, an unrelated instance, or fails with a 500 when the Region
has none. It never checks RestoreTime or UseLatestRestorableTime. It drops every override
that is false or 0 (``if value:``), so PubliclyAccessible=false, DeletionProtection=false and
BackupRetentionPeriod=0 silently kept the source's values. The new instance is ``available``
at once. This module replaces the operation. Call ``install()`` once, after
rds_backup_replication and rds_pagination.

AWS behaviour reproduced (AWS RDS API reference, RestoreDBInstanceToPointInTime; error shapes
of the botocore RDS model):

* The source is exactly one of SourceDBInstanceIdentifier, SourceDbiResourceId and
  SourceDBInstanceAutomatedBackupsArn ("Required if ... is not specified" for each).
  SourceDBInstanceAutomatedBackupsArn is "The Amazon Resource Name (ARN) of the replicated
  automated backups from which to restore". It is looked up in the Region of the call, among
  the replicas that Region receives, the retained backups of its deleted instances, and the
  local automated backups of its instances. An ARN that names none of them is
  DBInstanceAutomatedBackupNotFound (404, "No automated backup for this DB instance was
  found"). SourceDbiResourceId finds a running instance, else a stored backup, by resource ID.
* The new instance takes the backup's engine, engine version, allocated storage, storage type,
  IOPS, master user name, port and encryption (a replica's KMS key: the call has no
  KmsKeyId). DBInstanceClass defaults to "the same DB instance class as the original DB
  instance". It gets "the default security group, the default subnet group, and the default DB
  parameter group", and is single-AZ, unless the request says otherwise. Tags are the
  request's only. BackupRetentionPeriod "Default: Uses existing setting" (the backup's), "Must
  be a value from 0 to 35". Port "must be 1150-65535". AvailabilityZone can't go with MultiAZ.
* RestoreTime "Can't be specified if the UseLatestRestorableTime parameter is enabled"
  (InvalidParameterCombination), and must lie in the backup's RestoreWindow
  (InvalidRestoreFault). A backup that is not replicating/active/retained (a replica still
  pending) or has no restorable time yet is InvalidDBInstanceAutomatedBackupState. A source
  instance with BackupRetentionPeriod 0 is PointInTimeRestoreNotEnabled ("refers to a DB
  instance with BackupRetentionPeriod equal to 0"). A target identifier in use is
  DBInstanceAlreadyExists.
* The response shows the new instance ``creating``, without an Endpoint, as AWS's does. It
  becomes ``available`` as moto's state manager says for the model RESTORE_MODEL:
  BACKUP_WARDEN_MOTO_RESTORE_SECONDS (default 0, at once) sets the default, and
  ``POST /moto-api/state-manager/set-transition`` overrides it at runtime ("immediate",
  {"progression": "time", "seconds": N}, or {"progression": "manual", "times": N}, where each
  DescribeDBInstances answer that lists the instance counts once). DescribeDBInstances answers
  no Endpoint while the instance is creating.

The source's own automated backups are not touched. DeleteDBInstance of the restored instance
is moto's (with rds_backup_replication's hooks). A restored instance with BackupRetentionPeriod
0 has no automated backup to delete or retain. The state file keeps restored instances
with the rest of the RDS backend, their restore progress included.
"""

from __future__ import annotations

import copy
import datetime
import os
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.moto_api import state_manager
from moto.rds.exceptions import DBInstanceAlreadyExists, RDSClientError
from moto.rds.models import DBInstance, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

import rds_backup_replication as replication

RESTORE_MODEL = "rds::restored-db-instance"
RESTORE_SECONDS_VARIABLE = "BACKUP_WARDEN_MOTO_RESTORE_SECONDS"
SOURCE_PARAMETERS = ("SourceDBInstanceIdentifier", "SourceDbiResourceId", "SourceDBInstanceAutomatedBackupsArn")
# Automated backups a restore can start from; a replica is "pending" until its first backup.
RESTORABLE_STATUSES = (replication.ACTIVE, replication.REPLICATING, replication.RETAINED)
# Only for backups stored by an emulator from before this module (a state file): AWS always
# knows the class; the model of DBInstanceAutomatedBackup just doesn't show it.
FALLBACK_DB_INSTANCE_CLASS = "db.t3.micro"

_installed = False


def restore_seconds() -> float:
    seconds = float(os.environ.get(RESTORE_SECONDS_VARIABLE, "0"))
    if seconds < 0:
        raise ValueError(f"{RESTORE_SECONDS_VARIABLE} must be >= 0, got {seconds}")
    return seconds


def default_transition() -> dict[str, Any]:
    seconds = restore_seconds()
    if seconds == 0:
        return {"progression": "immediate"}
    return {"progression": "time", "seconds": seconds}


# --------------------------------------------------------------------------------------
# creating -> available
# --------------------------------------------------------------------------------------


def _progress(instance: DBInstance) -> None:
    """Make a restored instance available once its transition says so. The restore's start and
    the DescribeDBInstances count live in the instance's __dict__, so the state file keeps them."""
    restore = instance.__dict__.get("_bw_restore")
    if restore is None:
        return
    transition = state_manager.get_transition(RESTORE_MODEL)
    progression = transition.get("progression")
    if progression == "time":
        done = (utcnow() - restore["started"]).total_seconds() >= float(transition["seconds"])
    elif progression == "manual":
        done = restore["looks"] >= int(transition["times"])
    else:  # "immediate"
        done = True
    if done:
        instance.__dict__.pop("_bw_restore", None)
        instance.__dict__["status"] = "available"


def _get_status(self: DBInstance) -> str:
    _progress(self)
    return self.__dict__.get("status")  # type: ignore[return-value]


def _set_status(self: DBInstance, value: str) -> None:
    self.__dict__["status"] = value
    if value != "creating":
        # Deleted, stopped, ...: the restore is over.
        self.__dict__.pop("_bw_restore", None)


def _endpoint(self: DBInstance) -> dict[str, Any] | None:
    # A creating instance has no address yet; AWS leaves Endpoint out until it has one.
    if self.status == "creating":
        return None
    return {"Address": self.address, "Port": self.port}


def _as_just_created(instance: DBInstance) -> DBInstance:
    """The instance as the restore response shows it: creating (AWS's response does, whatever
    happens next), no Endpoint. A shallow copy, so the stored instance progresses on its own."""
    shown = copy.copy(instance)
    shown.__dict__.pop("_bw_restore", None)
    shown.__dict__["status"] = "creating"
    return shown


# --------------------------------------------------------------------------------------
# The restore
# --------------------------------------------------------------------------------------


def _as_naive_utc(value: Any) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


class _Source:
    """What a restore starts from: the DBInstanceAutomatedBackup members describing the source
    instance, and the window it can be restored to."""

    def __init__(self, what: str, attributes: dict[str, Any], window: dict[str, Any]) -> None:
        self.what = what  # for messages
        self.attributes = attributes
        self.window = window


def _from_instance(instance: DBInstance) -> _Source:
    if not replication._has_local_automated_backup(instance):
        # Retention 0, or an Aurora member (whose backups are the cluster's; AWS: "This
        # operation doesn't apply to Aurora MySQL and Aurora PostgreSQL").
        raise RDSClientError(
            "PointInTimeRestoreNotEnabled",
            f"Automated backups are not enabled for DB instance {instance.db_instance_identifier}: "
            "point-in-time restore needs a backup retention period greater than 0.",
        )
    window = replication._restore_window(
        replication.backups_enabled_at(instance),
        instance.latest_restorable_time,
        instance.backup_retention_period,
    )
    return _Source(instance.db_instance_identifier, replication._instance_attributes(instance), window)


def _from_backup(backup: replication.AutomatedBackup) -> _Source:
    shape = backup.to_shape()
    status = shape["Status"]
    if status not in RESTORABLE_STATUSES:
        raise replication.invalid_automated_backup_state(
            f"Automated backup {backup.arn} is {status}; it can be restored from once it is "
            "active, replicating or retained."
        )
    window = shape.get("RestoreWindow") or {}
    if not window.get("LatestTime"):
        raise replication.invalid_automated_backup_state(
            f"Automated backup {backup.arn} has no restorable time yet."
        )
    return _Source(backup.arn, dict(backup.attributes), window)


def _find_source(backend: RDSBackend, params: Any) -> _Source:
    """The source named by exactly one of SOURCE_PARAMETERS, in this Region."""
    identifier = params.get("SourceDBInstanceIdentifier")
    if identifier:
        return _from_instance(backend.describe_db_instances(identifier)[0])  # DBInstanceNotFound

    arn = params.get("SourceDBInstanceAutomatedBackupsArn")
    dbi_resource_id = params.get("SourceDbiResourceId")
    for instance in backend.databases.values():
        if dbi_resource_id and instance.dbi_resource_id == dbi_resource_id:
            return _from_instance(instance)
        if arn and replication._has_local_automated_backup(instance):
            own_arn = replication.automated_backup_arn(
                instance.partition, backend.region_name, backend.account_id, instance.dbi_resource_id
            )
            if own_arn == arn:
                return _from_instance(instance)
    # Replicas this Region receives and retained backups of deleted instances.
    for backup in replication._stored_backups(backend).values():
        if backup.arn == arn or (dbi_resource_id and backup.dbi_resource_id == dbi_resource_id):
            return _from_backup(backup)
    raise replication.automated_backup_not_found(arn or dbi_resource_id)


def _db_instance_class(backend: RDSBackend, attributes: dict[str, Any]) -> str:
    recorded = attributes.get("DBInstanceClass")
    if recorded:
        return recorded
    # A backup stored before DBInstanceClass was recorded: ask the source if it still exists.
    match = replication.SOURCE_ARN_RE.fullmatch(attributes.get("DBInstanceArn") or "")
    if match is not None:
        source = rds_backends[backend.account_id][match["region"]].databases.get(match["id"])
        if source is not None:
            return source.db_instance_class
    return FALLBACK_DB_INSTANCE_CLASS


def _check_parameters(params: Any) -> None:
    given = [p for p in SOURCE_PARAMETERS if params.get(p)]
    if len(given) != 1:
        raise replication.invalid_parameter_combination(
            "Specify exactly one of SourceDBInstanceIdentifier, SourceDbiResourceId and "
            f"SourceDBInstanceAutomatedBackupsArn (got {', '.join(given) or 'none'})."
        )
    if params.get("UseLatestRestorableTime") and params.get("RestoreTime") is not None:
        raise replication.invalid_parameter_combination(
            "Cannot specify both RestoreTime and UseLatestRestorableTime."
        )
    retention = params.get("BackupRetentionPeriod")
    if retention is not None and not 0 <= int(retention) <= 35:
        raise replication.invalid_parameter_value(
            f"Invalid backup retention period: {retention}. The backup retention period must "
            "be between 0 and 35 days."
        )
    port = params.get("Port")
    if port is not None and not 1150 <= int(port) <= 65535:
        raise replication.invalid_parameter_value(f"Invalid port {port}: the value must be 1150-65535.")
    if params.get("MultiAZ") and params.get("AvailabilityZone"):
        raise replication.invalid_parameter_combination(
            "Requesting a specific availability zone is not valid for Multi-AZ instances."
        )


def _check_restore_time(source: _Source, params: Any) -> None:
    """RestoreTime within the RestoreWindow; UseLatestRestorableTime (or neither, which moto
    and this module treat as the latest time) restores to its LatestTime."""
    wanted = params.get("RestoreTime")
    if wanted is None:
        return
    wanted = _as_naive_utc(wanted)
    earliest = _as_naive_utc(source.window["EarliestTime"])
    latest = _as_naive_utc(source.window["LatestTime"])
    if not earliest <= wanted <= latest:
        raise RDSClientError(
            "InvalidRestoreFault",
            f"Restore time {wanted.isoformat()}Z is outside the restorable window of "
            f"{source.what}: {earliest.isoformat()}Z to {latest.isoformat()}Z.",
        )


def _instance_kwargs(backend: RDSBackend, target: str, source: _Source, params: Any) -> dict[str, Any]:
    """CreateDBInstance arguments of the restored instance: the source's storage and engine,
    AWS's defaults for the rest, then what the request sets (false and 0 included)."""
    a = source.attributes
    kwargs: dict[str, Any] = {
        "db_instance_identifier": target,
        "db_instance_class": _db_instance_class(backend, a),
        "engine": a["Engine"],
        "engine_version": a.get("EngineVersion"),
        "allocated_storage": a.get("AllocatedStorage"),
        "storage_type": a.get("StorageType"),
        "iops": a.get("Iops"),
        "storage_throughput": a.get("StorageThroughput"),
        "license_model": a.get("LicenseModel") or "general-public-license",
        "master_username": a.get("MasterUsername"),
        "db_name": a.get("DBName"),
        "port": a.get("Port"),
        "storage_encrypted": bool(a.get("Encrypted")),
        "backup_retention_period": a.get("BackupRetentionPeriod") or 0,
        "enable_iam_database_authentication": bool(a.get("IAMDatabaseAuthenticationEnabled")),
        "multi_az": False,
        "deletion_protection": False,
        "copy_tags_to_snapshot": False,
        "tags": [],
    }
    if a.get("PreferredBackupWindow"):
        kwargs["preferred_backup_window"] = a["PreferredBackupWindow"]
    if kwargs["storage_encrypted"]:
        kwargs["kms_key_id"] = a.get("KmsKeyId")  # the backup's key: the call takes none

    overrides = {
        "DBInstanceClass": "db_instance_class",
        "Engine": "engine",
        "AllocatedStorage": "allocated_storage",
        "StorageType": "storage_type",
        "Iops": "iops",
        "StorageThroughput": "storage_throughput",
        "LicenseModel": "license_model",
        "DBName": "db_name",
        "Port": "port",
        "BackupRetentionPeriod": "backup_retention_period",
        "PreferredBackupWindow": "preferred_backup_window",
        "EnableIAMDatabaseAuthentication": "enable_iam_database_authentication",
        "MultiAZ": "multi_az",
        "AvailabilityZone": "availability_zone",
        "DBSubnetGroupName": "db_subnet_group_name",
        "PubliclyAccessible": "publicly_accessible",
        "DeletionProtection": "deletion_protection",
        "CopyTagsToSnapshot": "copy_tags_to_snapshot",
        "AutoMinorVersionUpgrade": "auto_minor_version_upgrade",
        "VpcSecurityGroupIds": "vpc_security_group_ids",
        "DBParameterGroupName": "db_parameter_group_name",
        "OptionGroupName": "option_group_name",
        "MaxAllocatedStorage": "max_allocated_storage",
        "CACertificateIdentifier": "ca_certificate_identifier",
    }
    for parameter, argument in overrides.items():
        value = params.get(parameter)
        if value is not None:  # moto's "if value:" lost false and 0
            kwargs[argument] = value
    if params.get("AllocatedStorage") is not None and int(params["AllocatedStorage"]) < int(a.get("AllocatedStorage") or 0):
        raise replication.invalid_parameter_value(
            "The allocated storage size can't be less than the source snapshot or backup size."
        )
    kwargs["tags"] = [{"Key": t["Key"], "Value": t.get("Value", "")} for t in params.get("Tags") or []]
    return kwargs


def restore_db_instance_to_point_in_time(
    self: RDSBackend,
    source_db_identifier: str | None,
    target_db_identifier: str,
    overrides: Any,
) -> DBInstance:
    """RestoreDBInstanceToPointInTime. ``overrides`` is the whole request (moto's response
    passes its params), read by AWS parameter name."""
    params = overrides
    with replication._lock:
        _check_parameters(params)
        # Identifiers are case-insensitive (stored in lower case).
        if any(name.lower() == (target_db_identifier or "").lower() for name in self.databases):
            raise DBInstanceAlreadyExists()
        source = _find_source(self, params)
        _check_restore_time(source, params)
        instance = self.create_db_instance(_instance_kwargs(self, target_db_identifier, source, params))
        instance.status = "creating"
        instance.__dict__["_bw_restore"] = {"started": utcnow(), "looks": 0}
        return instance


# --------------------------------------------------------------------------------------
# Response handlers
# --------------------------------------------------------------------------------------


def _response_restore(self: RDSResponse) -> ActionResult:
    instance = self.backend.restore_db_instance_to_point_in_time(
        self.params.get("SourceDBInstanceIdentifier"),
        self.params.get("TargetDBInstanceIdentifier"),
        self.params,
    )
    return ActionResult({"DBInstance": _as_just_created(instance)})


def _patch_describe_db_instances() -> None:
    """Counts DescribeDBInstances answers for the "manual" progression: each answer that lists
    a creating restored instance is one look at it."""
    original = RDSResponse.describe_db_instances

    def describe_db_instances(self: RDSResponse) -> ActionResult:
        result = original(self)
        with replication._lock:
            for instance in result.result.get("DBInstances") or []:  # type: ignore[union-attr]
                restore = instance.__dict__.get("_bw_restore")
                if restore is not None:
                    restore["looks"] += 1
        return result

    RDSResponse.describe_db_instances = describe_db_instances  # type: ignore[method-assign]


def _patch_instance_attributes() -> None:
    """Record DBInstanceClass and DBName with every stored automated backup, so a restore from
    it knows them after the source is gone. The DBInstanceAutomatedBackup shape has neither
    member, so the responses don't change."""
    original = replication._instance_attributes

    def instance_attributes(instance: DBInstance) -> dict[str, Any]:
        attributes = original(instance)
        attributes["DBInstanceClass"] = instance.db_instance_class
        attributes["DBName"] = instance.db_name
        return attributes

    replication._instance_attributes = instance_attributes  # looked up by name at call time


def install() -> None:
    """Patch moto (idempotent). Install after rds_backup_replication and rds_pagination."""
    global _installed
    if _installed:
        return
    state_manager.register_default_transition(RESTORE_MODEL, default_transition())
    DBInstance.status = property(_get_status, _set_status)  # type: ignore[assignment]
    DBInstance.endpoint = property(_endpoint)  # type: ignore[assignment]
    _patch_instance_attributes()
    _patch_describe_db_instances()
    RDSBackend.restore_db_instance_to_point_in_time = restore_db_instance_to_point_in_time  # type: ignore[method-assign]
    RDSResponse.restore_db_instance_to_point_in_time = _response_restore  # type: ignore[method-assign]
    _installed = True
