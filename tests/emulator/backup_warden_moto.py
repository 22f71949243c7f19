"""Launch moto's server with the backup-warden RDS extension installed.

    PY=$(hack/moto-venv.sh)
    "$PY" tests/emulator/backup_warden_moto.py --host 127.0.0.1 --port 15000

Accepts the same arguments as `moto_server` (moto.server.main) and serves every moto
service (RDS, KMS, S3, STS, ...) on one port, exactly like `moto_server`. The only
difference is that the patches in this directory are installed first:
rds_backup_replication.py, rds_backup_retention.py, rds_instances.py, rds_pagination.py,
rds_restore.py (RestoreDBInstanceToPointInTime from replicated automated backups),
kms_key_ids.py, and for the audit trail kind cloudtrail_trails.py (GetEventSelectors defaults,
DescribeTrails trailNameList, GetTrailStatus times), logs_retention.py (PutRetentionPolicy
values) and s3_buckets.py (GetBucketVersioning root element, GetObjectLockConfiguration
period).

Readiness: GET http://HOST:PORT/moto-api/backup-warden answers 200 with a small JSON
document naming the extension once the server accepts requests (a plain moto_server on the
same port answers 404 there).

Test-only endpoint: POST http://HOST:PORT/moto-api/backup-warden/maintenance applies pending
modified values as if the maintenance window had passed (see
rds_backup_retention.maintenance_response and README.md).

Test-only endpoint: POST http://HOST:PORT/moto-api/backup-warden/quota sets the automated
backup replication quota of one account and destination Region, GET lists the overrides (see
rds_backup_replication.quota_response and README.md).

Test-only endpoint: POST http://HOST:PORT/moto-api/backup-warden/kms-key-age makes a KMS key
older (see kms_key_ids.key_age_response and README.md).

With BACKUP_WARDEN_MOTO_STATE_FILE set, the RDS, KMS, CloudTrail, CloudWatch Logs and S3
state survives a restart: loaded at start, written on SIGTERM (see state_file.py).
"""

from __future__ import annotations

import json
import os
import sys

# Run as a script: this directory is sys.path[0]; make that explicit for `python -m` too.
# No __pycache__ in the checkout for the extension module.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto  # noqa: E402
import moto.moto_api._internal.urls as moto_api_urls  # noqa: E402
from moto.server import main as moto_server_main  # noqa: E402

import cloudtrail_trails  # noqa: E402
import kms_key_ids  # noqa: E402
import logs_retention  # noqa: E402
import rds_backup_replication  # noqa: E402
import rds_backup_retention  # noqa: E402
import rds_instances  # noqa: E402
import rds_pagination  # noqa: E402
import rds_restore  # noqa: E402
import s3_buckets  # noqa: E402
import state_file  # noqa: E402

HEALTH_PATH = "/moto-api/backup-warden"


def _health(request: object, full_url: str, headers: object) -> tuple[int, dict[str, str], str]:
    body = json.dumps(
        {
            "status": "ok",
            "extension": rds_backup_replication.EXTENSION_NAME,
            "moto": moto.__version__,
        }
    )
    return 200, {"Content-Type": "application/json"}, body


def install() -> None:
    kms_key_ids.install()
    cloudtrail_trails.install()
    logs_retention.install()
    s3_buckets.install()
    # Order matters: each wraps methods the previous one patched.
    rds_backup_replication.install()
    rds_backup_retention.install()
    rds_instances.install()
    rds_pagination.install()
    rds_restore.install()
    # moto builds the Flask app for /moto-api/* lazily from this table (on first request).
    moto_api_urls.url_paths["{0}" + HEALTH_PATH + "$"] = _health
    moto_api_urls.url_paths["{0}" + rds_backup_retention.MAINTENANCE_PATH + "$"] = (
        rds_backup_retention.maintenance_response
    )
    moto_api_urls.url_paths["{0}" + rds_backup_replication.QUOTA_PATH + "$"] = (
        rds_backup_replication.quota_response
    )
    moto_api_urls.url_paths["{0}" + kms_key_ids.KEY_AGE_PATH + "$"] = kms_key_ids.key_age_response
    state_file.install()


def main(argv: list[str] | None = None) -> None:
    install()
    print(
        f"backup-warden-moto: moto {moto.__version__} with {rds_backup_replication.EXTENSION_NAME}; "
        f"health check: GET {HEALTH_PATH}",
        file=sys.stderr,
        flush=True,
    )
    moto_server_main(argv)


if __name__ == "__main__":
    main()
