"""Keep the emulator's state across a restart, as AWS keeps it across an outage.

With ``BACKUP_WARDEN_MOTO_STATE_FILE`` set, the launcher loads that file at start (when it
exists) and writes it when the server gets SIGTERM or SIGINT, then exits. The fault tests restart the
emulator this way: the endpoint goes away and comes back, the instances, replications and
keys do not. Without the variable nothing changes (moto keeps everything in memory only).

RDS, KMS, IAM and STS are kept: IAM holds the access keys AssumeRole handed out, which is how
moto knows a caller's account, so credentials issued before a restart keep working in the
same account. For the audit trail kind, CloudTrail (trails, their logging status and event
selectors), CloudWatch Logs (log groups and their retention) and S3 (buckets with their
lifecycle, versioning, Object Lock and objects) are kept too, with S3's map of bucket names to
accounts. The Resource Groups Tagging API reads the other backends; nothing else is
needed across a restart. KMS keys hold ``cryptography`` private keys,
which do not pickle; they are written as PKCS#8 PEM and read back.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import sys
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
import moto.server as moto_server
from moto.cloudtrail.models import cloudtrail_backends
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.logs.models import logs_backends
from moto.rds.models import rds_backends
from moto.s3.models import s3_backends
from moto.sts.models import sts_backends

STATE_FILE_VARIABLE = "BACKUP_WARDEN_MOTO_STATE_FILE"

_BACKENDS = {
    "rds": rds_backends,
    "kms": kms_backends,
    "iam": iam_backends,
    "sts": sts_backends,
    "cloudtrail": cloudtrail_backends,
    "logs": logs_backends,
    "s3": s3_backends,
}
# S3 also finds a bucket's account through this map (bucket names are global).
_S3_BUCKET_ACCOUNTS = "s3_bucket_accounts"


def _load_private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _reduce_private_key(key: Any) -> tuple[Any, tuple[bytes]]:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _load_private_key, (pem,)


def _register_key_pickling() -> None:
    # The concrete classes live in cryptography's Rust bindings; find them by making one.
    samples = [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ]
    for sample in samples:
        copyreg.pickle(type(sample), _reduce_private_key)


def save(path: str) -> None:
    """Writes the state atomically. Request threads may be changing it meanwhile: a dict
    that changed size during the walk is retried."""
    for attempt in range(20):
        try:
            state: dict[str, Any] = {name: dict(backend) for name, backend in _BACKENDS.items()}
            state[_S3_BUCKET_ACCOUNTS] = dict(s3_backends.bucket_accounts)
            data = pickle.dumps(state)
            break
        except RuntimeError:
            if attempt == 19:
                raise
            time.sleep(0.05)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def load(path: str) -> None:
    with open(path, "rb") as f:
        state = pickle.load(f)
    for name, backend in _BACKENDS.items():
        backend.clear()
        backend.update(state.get(name, {}))
    s3_backends.bucket_accounts.clear()
    s3_backends.bucket_accounts.update(state.get(_S3_BUCKET_ACCOUNTS, {}))


def install() -> None:
    path = os.environ.get(STATE_FILE_VARIABLE)
    if not path:
        return
    _register_key_pickling()
    if os.path.exists(path):
        load(path)
        print(f"backup-warden-moto: state loaded from {path}", file=sys.stderr, flush=True)

    def on_stop(signum: int, frame: Any) -> None:
        save(path)
        print(f"backup-warden-moto: state saved to {path}", file=sys.stderr, flush=True)
        os._exit(0)

    # moto's main installs this module-level function for SIGINT and SIGTERM when it starts.
    moto_server.signal_handler = on_stop
