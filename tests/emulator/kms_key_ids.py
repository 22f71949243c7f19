"""KMS fixes for backup-warden's tests, faithful to the AWS KMS API reference.

- DisableKey, EnableKey, CancelKeyDeletion and ScheduleKeyDeletion take a key ID *or key
  ARN* in AWS; moto 5.2.5 indexes its key table with the raw argument and fails with a 500
  on an ARN.
- CreateKey without KeyUsage defaults to ENCRYPT_DECRYPT in AWS; moto leaves it empty.
"""

from __future__ import annotations

from typing import Any

from moto.kms.models import KmsBackend

_installed = False


def _accepting_arns(original: Any) -> Any:
    def patched(self: KmsBackend, key_id: str, *args: Any, **kwargs: Any) -> Any:
        return original(self, self.get_key_id(key_id), *args, **kwargs)

    patched.__name__ = original.__name__
    patched.__doc__ = original.__doc__
    return patched


def _create_key_with_default_usage(original: Any) -> Any:
    def patched(self: KmsBackend, policy: Any, key_usage: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, policy, key_usage or "ENCRYPT_DECRYPT", *args, **kwargs)

    patched.__name__ = original.__name__
    return patched


def install() -> None:
    """Patch moto's KMS backend (idempotent)."""
    global _installed
    if _installed:
        return
    for name in ("disable_key", "enable_key", "cancel_key_deletion", "schedule_key_deletion"):
        setattr(KmsBackend, name, _accepting_arns(getattr(KmsBackend, name)))
    KmsBackend.create_key = _create_key_with_default_usage(KmsBackend.create_key)  # type: ignore[method-assign]
    _installed = True
