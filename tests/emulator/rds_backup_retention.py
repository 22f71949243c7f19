"""Test-only moto extension: when ModifyDBInstance backup retention changes take effect, and
instances whose backups AWS Backup manages.

moto 5.2.5 applies every ModifyDBInstance change at once, never reports
PendingModifiedValues, lets an Aurora member's retention be "modified" (a 500 from a
NotImplementedError), and takes an automated snapshot of every new instance, even one created
with backups disabled. This module makes these behave as the AWS RDS API reference and User
Guide describe. Call ``install()`` once, before moto serves requests.

AWS behaviour reproduced:

* ModifyDBInstance BackupRetentionPeriod: "Changing this parameter can result in an outage if
  you change from 0 to a non-zero value or from a non-zero value to 0. These changes are
  applied during the next maintenance window unless the ApplyImmediately parameter is enabled
  for this request. If you change the parameter from one non-zero value to another non-zero
  value, the change is asynchronously applied as soon as possible." Until the change is
  applied, DescribeDBInstances and the ModifyDBInstance response show the old
  BackupRetentionPeriod and the new one in ``PendingModifiedValues``. That member is
  "returned only when there are pending changes".
* ApplyImmediately applies "the modifications in this request and any pending
  modifications". A pending change that an earlier request queued is applied as well.
* BackupRetentionPeriod "Must be a value from 0 to 35".
* "This setting doesn't apply to Amazon Aurora DB instances. The retention period for
  automated backups is managed by the DB cluster." AWS answers InvalidParameterCombination,
  "The specified DB Instance is a member of a cluster. Modify backup retention for the DB
  Cluster using the ModifyDbCluster API" (seen in Optum/dce#244 and
  cloud-custodian/cloud-custodian#178). Multi-AZ DB cluster members are cluster members too.
* AwsBackupRecoveryPointArn: DescribeDBInstances returns it, and ModifyDBInstance sets it
  (moto already stores it through its generic attribute update; this module validates it
  against the model's constraints). While it is set, AWS Backup owns the retention, and AWS
  refuses any other BackupRetentionPeriod with InvalidParameterValue: "Your RDS instance db is
  associated with an AWS Backup resource with id arn:aws:backup:...:recovery-point:continuous:
  db-.... You can leave BackupRetentionPeriod blank, or you can specify it only with the
  current value 8. For more details, see the AWS Backup documentation."
  (crossplane-contrib/provider-aws#1356; the DB cluster variant is quoted in
  terraform-aws-modules/terraform-aws-rds-aurora#411 and
  aws-cloudformation-resource-providers-rds#511.) Repeating the current value is accepted.
* Enabling backups (0 -> N applied): the automated backup appears, and RDS takes a first
  automated snapshot at once ("enabling" backups "can result in a brief I/O suspension", as the
  backup runs). The backup's RestoreWindow starts then. Disabling (N -> 0 applied): "Disabling
  automatic backups for a DB instance deletes all existing automated backups for the instance"
  (RDS User Guide, "Disabling automated backups"), so moto's automated snapshots of the
  instance go too.
* A new instance with BackupRetentionPeriod 0, and an Aurora or Multi-AZ DB cluster member
  (its backups are the cluster's), gets no automated DB snapshot.
* LatestRestorableTime ("The latest time to which a database in this DB instance can be
  restored with point-in-time restore") is only returned while automated backups are enabled.
  With retention 0 there is no point-in-time restore.

The test-only endpoint ``POST /moto-api/backup-warden/maintenance`` stands in for the
maintenance window passing; see ``maintenance_response``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.core.utils import utcnow
from moto.rds.exceptions import DBInstanceNotFoundError, DBSnapshotAlreadyExistsError
from moto.rds.models import DBInstance, DBInstanceClustered, RDSBackend, rds_backends

import rds_backup_replication as replication

MAINTENANCE_PATH = "/moto-api/backup-warden/maintenance"

_installed = False

# ModifyDBInstanceMessage.AwsBackupRecoveryPointArn in the botocore RDS model: min 43, max 350.
AWS_BACKUP_RECOVERY_POINT_ARN_RE = re.compile(
    r"arn:aws[a-z-]*:backup:[-a-z0-9]+:[0-9]{12}:[-a-z]+:([a-z0-9\-]+:)?[a-z][a-z0-9\-]{0,255}"
)


# --------------------------------------------------------------------------------------
# Per-instance state
# --------------------------------------------------------------------------------------


def _pending(instance: DBInstance) -> dict[str, Any]:
    """PendingModifiedValues members queued for the maintenance window (only
    BackupRetentionPeriod is modelled)."""
    return instance.__dict__.setdefault("_bw_pending_modified_values", {})


def _pending_modified_values(self: DBInstance) -> dict[str, Any] | None:
    # "This information is returned only when there are pending changes."
    pending = self.__dict__.get("_bw_pending_modified_values")
    return dict(pending) if pending else None


def _is_cluster_member(instance: DBInstance) -> bool:
    return isinstance(instance, DBInstanceClustered)


def _aws_backup_arn(instance: DBInstance) -> str | None:
    return getattr(instance, "aws_backup_recovery_point_arn", None)


# --------------------------------------------------------------------------------------
# Applying a retention change
# --------------------------------------------------------------------------------------


def _apply_retention(instance: DBInstance, new: int) -> dict[str, int] | None:
    """Apply BackupRetentionPeriod now, with the side effects AWS has. Returns {from, to}."""
    old = int(instance.backup_retention_period or 0)
    _pending(instance).pop("BackupRetentionPeriod", None)
    if old == new:
        return None
    instance.backup_retention_period = new
    if old == 0 and new > 0:
        instance.__dict__["_bw_backups_enabled_at"] = utcnow()
        try:
            # moto's own automated backup: events + an "automated" DBSnapshot rds:<id>-<time>.
            instance.save_automated_backup()
        except DBSnapshotAlreadyExistsError:
            pass  # one taken in the same minute already exists
    elif old > 0 and new == 0:
        instance.__dict__["_bw_backups_enabled_at"] = None
        backend = instance.backend
        for name, snap in list(backend.database_snapshots.items()):
            # (moto's DBSnapshot keeps a copy of its instance: match the resource ID)
            if snap.snapshot_type == "automated" and snap.dbi_resource_id == instance.dbi_resource_id:
                del backend.database_snapshots[name]
    return {"from": old, "to": new}


def apply_pending(instance: DBInstance) -> dict[str, Any]:
    """Apply every pending modified value of ``instance`` (maintenance window or
    ApplyImmediately). Returns what changed, keyed by PendingModifiedValues member."""
    applied: dict[str, Any] = {}
    pending = _pending(instance)
    if "BackupRetentionPeriod" in pending:
        new = pending["BackupRetentionPeriod"]
        change = _apply_retention(instance, new)
        applied["BackupRetentionPeriod"] = change or {"from": new, "to": new}
    pending.clear()
    return applied


# --------------------------------------------------------------------------------------
# ModifyDBInstance
# --------------------------------------------------------------------------------------


def _patch_modify_db_instance() -> None:
    original = RDSBackend.modify_db_instance

    def modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: Any) -> DBInstance:
        with replication._lock:
            instance = self.describe_db_instances(db_instance_identifier)[0]
            apply_immediately = bool(db_kwargs.get("apply_immediately"))
            requested = db_kwargs.get("backup_retention_period")
            recovery_point = db_kwargs.get("aws_backup_recovery_point_arn")

            if recovery_point is not None and not (
                43 <= len(recovery_point) <= 350 and AWS_BACKUP_RECOVERY_POINT_ARN_RE.fullmatch(recovery_point)
            ):
                raise replication.invalid_parameter_value(
                    f"Invalid AwsBackupRecoveryPointArn: {recovery_point}"
                )

            if requested is not None:
                requested = int(requested)
                if not 0 <= requested <= 35:
                    # "Must be a value from 0 to 35."
                    raise replication.invalid_parameter_value(
                        f"Invalid backup retention period: {requested}. The backup retention "
                        "period must be between 0 and 35 days."
                    )
                if _is_cluster_member(instance):
                    # AWS's answer for Aurora members (Optum/dce#244); moto crashed with a 500.
                    raise replication.invalid_parameter_combination(
                        "The specified DB Instance is a member of a cluster. Modify backup "
                        "retention for the DB Cluster using the ModifyDbCluster API"
                    )
                current = int(instance.backup_retention_period or 0)
                managed_by = _aws_backup_arn(instance)
                if managed_by and requested != current:
                    # AWS's message, crossplane-contrib/provider-aws#1356.
                    raise replication.invalid_parameter_value(
                        f"Your RDS instance {instance.db_instance_identifier} is associated "
                        f"with an AWS Backup resource with id {managed_by}. You can leave "
                        "BackupRetentionPeriod blank, or you can specify it only with the "
                        f"current value {current}. For more details, see the AWS Backup "
                        "documentation."
                    )

            if requested is not None:
                # Applied below, after moto's own validation of the rest of the request.
                db_kwargs["backup_retention_period"] = None  # moto's update() skips None

            database = original(self, db_instance_identifier, db_kwargs)

            if requested is not None:
                current = int(database.backup_retention_period or 0)
                enabling_or_disabling = (current == 0) != (requested == 0)
                if enabling_or_disabling and not apply_immediately:
                    # 0 -> N or N -> 0 waits for the maintenance window.
                    _pending(database)["BackupRetentionPeriod"] = requested
                else:
                    # Non-zero to non-zero ("as soon as possible"), an unchanged value, or
                    # ApplyImmediately: applied now, replacing anything pending.
                    _apply_retention(database, requested)
            if apply_immediately:
                # "... the modifications in this request and any pending modifications".
                apply_pending(database)
            return database

    RDSBackend.modify_db_instance = modify_db_instance  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------
# Automated snapshots and LatestRestorableTime
# --------------------------------------------------------------------------------------


def _patch_automated_snapshot_policy() -> None:
    original_save = DBInstance.save_automated_backup

    def save_automated_backup(self: DBInstance) -> None:
        # Backups disabled, or the instance's backups are its DB cluster's: no DB snapshot.
        if _is_cluster_member(self) or int(self.backup_retention_period or 0) == 0:
            return
        original_save(self)

    DBInstance.save_automated_backup = save_automated_backup  # type: ignore[method-assign]

    def latest_restorable_time(self: DBInstance) -> Any:
        if not _is_cluster_member(self) and int(self.backup_retention_period or 0) == 0:
            return None  # no point-in-time restore without automated backups
        return utcnow()

    DBInstance.latest_restorable_time = property(latest_restorable_time)  # type: ignore[assignment]

    original_init = DBInstance.__init__

    def __init__(self: DBInstance, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.__dict__["_bw_pending_modified_values"] = {}
        self.__dict__["_bw_backups_enabled_at"] = None
        self.__dict__.setdefault("aws_backup_recovery_point_arn", None)

    DBInstance.__init__ = __init__  # type: ignore[method-assign]


def reset_copied_state(replica: DBInstance) -> None:
    """moto builds a read replica as a shallow copy of its source; give it its own state."""
    replica.__dict__["_bw_pending_modified_values"] = {}
    replica.__dict__["_bw_backups_enabled_at"] = None
    replica.__dict__["aws_backup_recovery_point_arn"] = None


# --------------------------------------------------------------------------------------
# POST /moto-api/backup-warden/maintenance
# --------------------------------------------------------------------------------------


def run_maintenance(
    account_id: str | None = None,
    region: str | None = None,
    db_instance_identifier: str | None = None,
) -> list[dict[str, Any]]:
    """Apply pending modified values of the selected instances, as if their maintenance
    window had passed. Raises DBInstanceNotFoundError when an identifier selects nothing."""
    applied: list[dict[str, Any]] = []
    found = False
    wanted = db_instance_identifier.lower() if db_instance_identifier else None
    with replication._lock:
        for account, regions in list(rds_backends.items()):
            if account_id and account != account_id:
                continue
            for region_name, backend in list(regions.items()):
                if region and region_name != region:
                    continue
                for instance in list(backend.databases.values()):
                    if wanted and instance.db_instance_identifier != wanted:
                        continue
                    found = True
                    changes = apply_pending(instance)
                    if changes:
                        applied.append(
                            {
                                "account_id": account,
                                "region": region_name,
                                "db_instance_identifier": instance.db_instance_identifier,
                                "applied": changes,
                            }
                        )
    if wanted and not found:
        raise DBInstanceNotFoundError(db_instance_identifier)
    return applied


def _request_body(request: Any) -> bytes:
    get_data = getattr(request, "get_data", None)
    if callable(get_data):
        return get_data() or b""
    body = getattr(request, "body", None) or b""
    return body.encode() if isinstance(body, str) else body


def maintenance_response(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """POST /moto-api/backup-warden/maintenance

    Optional JSON body: {"region": "...", "db_instance_identifier": "...", "account_id": "..."};
    every key narrows the selection, none (or no body) means every instance of every Region
    and account. Answers 200 {"applied": [{"account_id", "region", "db_instance_identifier",
    "applied": {"BackupRetentionPeriod": {"from": 0, "to": 7}}}]} listing the instances whose
    pending modified values were applied (instances without any are not listed); 404 when
    db_instance_identifier names no instance in the selection; 400 for a body that is not a
    JSON object; 405 for other methods.
    """
    json_headers = {"Content-Type": "application/json"}
    if request.method != "POST":
        return 405, json_headers, json.dumps({"error": "MethodNotAllowed", "message": "POST only"})
    raw = _request_body(request).strip()
    try:
        body = json.loads(raw) if raw else {}
        if not isinstance(body, dict):
            raise ValueError("not an object")
        selection = {k: body.get(k) for k in ("account_id", "region", "db_instance_identifier")}
        unknown = sorted(set(body) - set(selection))
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        for key, value in selection.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
    except ValueError as e:
        return 400, json_headers, json.dumps({"error": "BadRequest", "message": f"invalid JSON body: {e}"})
    try:
        applied = run_maintenance(**selection)
    except DBInstanceNotFoundError:
        return 404, json_headers, json.dumps(
            {
                "error": "DBInstanceNotFound",
                "message": f"DBInstance {selection['db_instance_identifier']} not found.",
            }
        )
    return 200, json_headers, json.dumps({"applied": applied})


def install() -> None:
    """Patch moto (idempotent). Install after rds_backup_replication."""
    global _installed
    if _installed:
        return
    _patch_modify_db_instance()
    _patch_automated_snapshot_policy()
    DBInstance.pending_modified_values = property(_pending_modified_values)  # type: ignore[attr-defined]
    _installed = True
