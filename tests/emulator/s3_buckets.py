"""S3 fixes for backup-warden's tests, faithful to the Amazon S3 API reference.

- GetBucketVersioning answers the documented body, `<VersioningConfiguration>` with an
  optional `<Status>` (and `<MfaDelete>`). moto 5.2.5 named the root element
  `<GetBucketVersioningResponse>`, which the AWS SDK for Rust refuses ("encountered invalid
  XML root: expected VersioningConfiguration"). A bucket whose versioning was never set
  answers an empty `<VersioningConfiguration/>`, as in AWS.
- GetObjectLockConfiguration answers only the period that was set: DefaultRetention takes
  `Days` or `Years` ("Either Days or Years must be specified, but not both"; each "must be
  used with Mode"). moto also answered the other one as `0` (`<Days>0</Days><Years>2</Years>`),
  which an SDK reads as a zero-day retention.

moto 5.2.5 already gets right: GetBucketLocation (`LocationConstraint` empty, so None, for
us-east-1, else the Region); GetBucketLifecycleConfiguration / PutBucketLifecycleConfiguration
keep rule IDs, order, `Filter` (`Prefix`, `Tag`, `And` with tags), `Status`,
`Expiration.Days` / `Expiration.Date`, `Transitions` and
`NoncurrentVersionExpiration.NoncurrentDays`, and answer NoSuchLifecycleConfiguration when
there is none; CreateBucket with `ObjectLockEnabledForBucket` enables versioning; a bucket
without Object Lock answers ObjectLockConfigurationNotFoundError.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.s3.responses import S3Response

_installed = False


def _versioning_root(original: Any) -> Any:
    def patched(self: S3Response) -> Any:
        status, headers, body = original(self)
        text = body.decode() if isinstance(body, bytes) else body
        text = text.replace("<GetBucketVersioningResponse", "<VersioningConfiguration", 1)
        text = text.replace("</GetBucketVersioningResponse>", "</VersioningConfiguration>", 1)
        return status, headers, text.encode() if isinstance(body, bytes) else text

    patched.__name__ = original.__name__
    return patched


def _get_object_lock_configuration(self: S3Response) -> Any:
    lock_enabled, mode, days, years = self.backend.get_object_lock_configuration(self.bucket_name)
    config: dict[str, Any] = {"ObjectLockEnabled": "Enabled" if lock_enabled else "Disabled"}
    if mode:
        retention: dict[str, Any] = {"Mode": mode}
        if days:
            retention["Days"] = days
        if years:
            retention["Years"] = years
        config["Rule"] = {"DefaultRetention": retention}
    self.data["Action"] = "GetObjectLockConfiguration"
    return self.serialized(ActionResult({"ObjectLockConfiguration": config}))


def install() -> None:
    """Patch moto's S3 responses (idempotent)."""
    global _installed
    if _installed:
        return
    S3Response.get_bucket_versioning = _versioning_root(S3Response.get_bucket_versioning)  # type: ignore[method-assign]
    S3Response.get_object_lock_configuration = _get_object_lock_configuration  # type: ignore[method-assign]
    _installed = True
