"""Test-only moto extension: MaxRecords/Marker pagination of DescribeDBInstances and
DescribeDBSnapshots as the AWS RDS API reference describes it.

For both operations, MaxRecords is "The maximum number of records to include in the response.
If more records exist than the specified MaxRecords value, a pagination token called a marker
is included in the response so that you can retrieve the remaining results. Default: 100.
Constraints: Minimum 20, maximum 100." A Marker makes "the response include only records
beyond the marker, up to the value specified by MaxRecords".

moto 5.2.5 paginates DescribeDBInstances through its generic paginator, which accepts any
MaxRecords (10 worked) and keys its marker on the next record: when that record is deleted
between two pages, the next call fails. moto does not paginate DescribeDBSnapshots at all: it
returns every snapshot whatever MaxRecords says, and never a Marker. It also ignores
DescribeDBSnapshots' DbiResourceId parameter.

Here both operations list records in identifier order, and the marker names the last record
returned, so records created or deleted between pages don't break a listing. MaxRecords
outside 20..100 and markers this emulator didn't issue are InvalidParameterValue.
rds_backup_replication's DescribeDBInstanceAutomatedBackups pages the same way.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, TypeVar

from moto.core.responses import ActionResult
from moto.rds.exceptions import RDSClientError
from moto.rds.responses import RDSResponse

T = TypeVar("T")

_installed = False


def max_records(value: Any) -> int:
    n = 100 if value is None else int(value)
    if not 20 <= n <= 100:
        raise RDSClientError(
            "InvalidParameterValue", f"Invalid value {n} for MaxRecords. Must be between 20 and 100."
        )
    return n


def _encode(operation: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"op": operation, "after": after}).encode()).decode()


def _decode(operation: str, marker: str) -> str:
    try:
        doc = json.loads(base64.urlsafe_b64decode(marker.encode()).decode())
        if doc["op"] != operation or not isinstance(doc["after"], str):
            raise ValueError(marker)
        return doc["after"]
    except Exception:
        raise RDSClientError("InvalidParameterValue", f"Invalid marker: {marker}")


def paginate(
    operation: str,
    records: list[T],
    key: Callable[[T], str],
    limit: Any,
    marker: str | None,
) -> tuple[list[T], str | None]:
    """One page of ``records`` (sorted by ``key``) after ``marker``; the next marker or None."""
    size = max_records(limit)
    ordered = sorted(records, key=key)
    if marker:
        after = _decode(operation, marker)
        ordered = [r for r in ordered if key(r) > after]
    page = ordered[:size]
    next_marker = _encode(operation, key(page[-1])) if len(ordered) > size else None
    return page, next_marker


def _filters(params: Any) -> dict[str, list[str]]:
    return {f["Name"]: list(f.get("Values") or []) for f in params.get("Filters") or []}


def _describe_db_instances(self: RDSResponse) -> ActionResult:
    instances = self.backend.describe_db_instances(
        self.params.get("DBInstanceIdentifier"), filters=_filters(self.params)
    )
    page, marker = paginate(
        "DescribeDBInstances",
        list(instances),
        lambda i: i.db_instance_identifier,
        self.params.get("MaxRecords"),
        self.params.get("Marker"),
    )
    return ActionResult({"DBInstances": page, "Marker": marker})


def _describe_db_snapshots(self: RDSResponse) -> ActionResult:
    filters = _filters(self.params)
    dbi_resource_id = self.params.get("DbiResourceId")
    if dbi_resource_id:
        # "A specific DB resource ID to describe."
        filters.setdefault("dbi-resource-id", []).append(dbi_resource_id)
    snapshots = self.backend.describe_db_snapshots(
        self.params.get("DBInstanceIdentifier"),
        self.params.get("DBSnapshotIdentifier"),
        self.params.get("SnapshotType"),
        filters,
    )
    page, marker = paginate(
        "DescribeDBSnapshots",
        list(snapshots),
        lambda s: s.db_snapshot_identifier,
        self.params.get("MaxRecords"),
        self.params.get("Marker"),
    )
    return ActionResult({"DBSnapshots": page, "Marker": marker})


def install() -> None:
    """Patch moto (idempotent)."""
    global _installed
    if _installed:
        return
    RDSResponse.describe_db_instances = _describe_db_instances  # type: ignore[method-assign]
    RDSResponse.describe_db_snapshots = _describe_db_snapshots  # type: ignore[method-assign]
    _installed = True
