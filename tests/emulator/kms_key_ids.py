"""KMS fixes for backup-warden's tests, faithful to the AWS KMS API reference.

- DisableKey, EnableKey, CancelKeyDeletion and ScheduleKeyDeletion take a key ID *or key
  ARN* in AWS; moto 5.2.5 indexes its key table with the raw argument and fails with a 500
  on an ARN.
- CreateKey without KeyUsage defaults to ENCRYPT_DECRYPT in AWS; moto leaves it empty.
- The keys behind the reserved aliases (`alias/aws/rds`, ...) are AWS managed keys:
  DescribeKey answers `KeyManager: AWS` for them ("AWS managed keys are KMS keys in your
  account that are created, managed, and used on your behalf by an AWS service", KeyMetadata
  KeyManager "The manager of the KMS key. KMS keys in your AWS account are either customer
  managed or AWS managed"); moto made them CUSTOMER like any other key.
- ListAliases pages: "Limit ... must be between 1 and 100, inclusive. If you do not include
  a value, it defaults to 50"; a response with more to come has `Truncated: true` and a
  `NextMarker` to pass as `Marker`. moto 5.2.5 returns every alias in one response whatever
  the Limit. Here aliases are listed in name order and the marker names the last one
  returned; a Limit outside 1..100 or a marker this emulator did not issue is a
  ValidationException.

Test-only endpoint: POST /moto-api/backup-warden/kms-key-age makes a key older, as if time
had passed since CreateKey (see key_age_response), so the tests of a grace period need not
wait it out.
"""

from __future__ import annotations

import json
from typing import Any

import base64

from moto.kms.exceptions import ValidationException
from moto.kms.models import KmsBackend, kms_backends
from moto.kms.responses import KmsResponse

from rds_backup_retention import _request_body

KEY_AGE_PATH = "/moto-api/backup-warden/kms-key-age"

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


def _aws_managed_default_keys(original: Any) -> Any:
    def patched(self: KmsBackend, alias_name: str) -> Any:
        key_id = original(self, alias_name)
        if key_id is not None:
            self.keys[key_id].key_manager = "AWS"
        return key_id

    patched.__name__ = original.__name__
    patched.__doc__ = original.__doc__
    return patched


def _paged_aliases(original: Any) -> Any:
    def patched(self: KmsResponse) -> str:
        aliases = sorted(json.loads(original(self))["Aliases"], key=lambda a: a["AliasName"])
        limit = self._get_param("Limit")
        size = 50 if limit is None else int(limit)
        if not 1 <= size <= 100:
            raise ValidationException(f"Limit must be between 1 and 100, inclusive, not {size}")
        marker = self._get_param("Marker")
        if marker:
            try:
                after = json.loads(base64.urlsafe_b64decode(marker.encode()).decode())["after"]
            except Exception:
                raise ValidationException(f"Invalid marker: {marker}")
            aliases = [a for a in aliases if a["AliasName"] > after]
        page: dict[str, Any] = {"Aliases": aliases[:size], "Truncated": len(aliases) > size}
        if page["Truncated"]:
            last = aliases[size - 1]["AliasName"]
            page["NextMarker"] = base64.urlsafe_b64encode(json.dumps({"after": last}).encode()).decode()
        return json.dumps(page)

    patched.__name__ = original.__name__
    patched.__doc__ = original.__doc__
    return patched


def key_age_response(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """POST /moto-api/backup-warden/kms-key-age

    JSON body: {"account_id": "123456789012", "region": "us-west-2", "key_id": "<id or ARN>",
    "seconds": 90000}: moves the key's CreationDate `seconds` (a number > 0) into the past.
    Answers 200 {"key_id", "creation_date"} (epoch seconds); 404 {"error": "NotFoundException"}
    when the account and Region hold no such key; 400 for a body that is not such an object;
    405 for other methods.
    """
    json_headers = {"Content-Type": "application/json"}
    if request.method != "POST":
        return 405, json_headers, json.dumps({"error": "MethodNotAllowed", "message": "POST only"})
    try:
        body = json.loads(_request_body(request) or b"null")
        if not isinstance(body, dict):
            raise ValueError("not an object")
        expected = {"account_id", "region", "key_id", "seconds"}
        if set(body) != expected:
            raise ValueError(f"expected exactly the keys {sorted(expected)}")
        for key in ("account_id", "region", "key_id"):
            if not isinstance(body[key], str) or not body[key]:
                raise ValueError(f"{key} must be a non-empty string")
        seconds = body["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError("seconds must be a number > 0")
    except ValueError as e:
        return 400, json_headers, json.dumps({"error": "BadRequest", "message": f"invalid JSON body: {e}"})
    try:
        backend = kms_backends[body["account_id"]][body["region"]]
    except KeyError:
        backend = None
    key = backend.keys.get(backend.get_key_id(body["key_id"])) if backend else None
    if key is None:
        return 404, json_headers, json.dumps({"error": "NotFoundException", "message": f"Key '{body['key_id']}' does not exist"})
    key.creation_date -= seconds
    return 200, json_headers, json.dumps({"key_id": key.id, "creation_date": key.creation_date})


def install() -> None:
    """Patch moto's KMS backend (idempotent)."""
    global _installed
    if _installed:
        return
    for name in ("disable_key", "enable_key", "cancel_key_deletion", "schedule_key_deletion"):
        setattr(KmsBackend, name, _accepting_arns(getattr(KmsBackend, name)))
    KmsBackend.create_key = _create_key_with_default_usage(KmsBackend.create_key)  # type: ignore[method-assign]
    KmsBackend._generate_default_keys = _aws_managed_default_keys(KmsBackend._generate_default_keys)  # type: ignore[method-assign]
    KmsResponse.list_aliases = _paged_aliases(KmsResponse.list_aliases)  # type: ignore[method-assign]
    _installed = True
