"""CloudWatch Logs fix for backup-warden's tests, faithful to the CloudWatch Logs API reference.

PutRetentionPolicy takes only the documented retention periods: "retentionInDays ... Possible
values are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
2557, 2922, 3288, and 3653." AWS refuses any other value with InvalidParameterException
("1 validation error detected: Value '2' at 'retentionInDays' failed to satisfy constraint:
Member must satisfy enum value set: [1, 3, ...]"), before it looks the log group up; moto
5.2.5 stored any number.

moto 5.2.5 already gets right: DescribeLogGroups with `logGroupNamePrefix`, and
`retentionInDays` answered only when a retention is set ("Never expire" otherwise);
PutRetentionPolicy on a missing group is ResourceNotFoundException.
"""

from __future__ import annotations

from typing import Any

from moto.logs.exceptions import InvalidParameterException
from moto.logs.models import LogsBackend

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)

_installed = False


def _validated_retention(original: Any) -> Any:
    def patched(self: LogsBackend, log_group_name: str, retention_in_days: Any) -> None:
        try:
            allowed = int(retention_in_days) in RETENTION_DAYS and not isinstance(retention_in_days, bool)
        except (TypeError, ValueError):
            allowed = False
        if not allowed:
            raise InvalidParameterException(
                constraint=f"Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]",
                parameter="retentionInDays",
                value=retention_in_days,
            )
        return original(self, log_group_name, int(retention_in_days))

    patched.__name__ = original.__name__
    patched.__doc__ = original.__doc__
    return patched


def install() -> None:
    """Patch moto's CloudWatch Logs backend (idempotent)."""
    global _installed
    if _installed:
        return
    LogsBackend.put_retention_policy = _validated_retention(LogsBackend.put_retention_policy)  # type: ignore[method-assign]
    _installed = True
