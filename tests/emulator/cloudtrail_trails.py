"""CloudTrail fixes for backup-warden's tests, faithful to the AWS CloudTrail API reference.

- GetEventSelectors of a trail that never had selectors put answers AWS's default selector.
  AWS: "By default, trails created without specific event selectors are configured to log all
  read and write management events, and no data events" (PutEventSelectors), and the
  CloudTrail User Guide, "Logging management events": "By default, trails ... log all
  management events". AWS answers it as one basic selector,
  `{"ReadWriteType": "All", "IncludeManagementEvents": true, "DataResources": [],
  "ExcludeManagementEventSources": []}`; moto 5.2.5 answered `EventSelectors: []`. A trail's
  selectors are either basic or advanced, and the response carries only the kind in use
  ("You can use either AdvancedEventSelectors or EventSelectors, but not both. If you apply
  AdvancedEventSelectors to a trail, any existing EventSelectors are overwritten"). moto kept
  the advanced selectors when basic ones were put. A basic selector is answered with the
  defaults of its omitted members (`ReadWriteType` "All"; `IncludeManagementEvents`: "By
  default, the value is true"; empty `DataResources` and `ExcludeManagementEventSources`).
  Giving both kinds in one PutEventSelectors is an InvalidParameterCombinationException.
  After a PutEventSelectors, DescribeTrails answers `HasCustomEventSelectors: true` ("Specifies
  if the trail has custom event selectors"; moto always said false).
- DescribeTrails honours `trailNameList` (moto ignored it and listed every trail): "If one or
  more trail names are specified, information is returned only if the names match the names
  of trails belonging only to the current Region and current account. To return information
  about a trail in another Region, you must specify its trail ARN." A name or ARN that
  matches no trail is left out of `trailList`, as AWS does (no error). With an empty or
  absent list the moto behaviour stays: `includeShadowTrails` (default true) adds the
  multi-Region trails of the other Regions.
- GetTrailStatus: "To get the status of a shadow trail (a replication of the trail in another
  Region), you must specify its ARN"; moto also found another Region's multi-Region trail by
  its bare name. `LatestDeliveryTime`, `StartLoggingTime` and `StopLoggingTime` are epoch
  seconds (a JSON number, the awsJson1_1 timestamp form); moto computed them with
  `time.mktime` on a UTC time, so outside a UTC time zone they were off by the zone's offset
  (9 hours in Asia/Tokyo): a fresh delivery looked hours old, or in the future.

moto 5.2.5 already gets right: StartLogging (IsLogging true; while logging, every
GetTrailStatus reports a delivery that just happened, with no `LatestDeliveryError`);
UpdateTrail applies `IsMultiRegionTrail`, `EnableLogFileValidation` and
`IncludeGlobalServiceEvents` and DescribeTrails shows them; DescribeTrails without a list
shows another Region's multi-Region trail (with its `HomeRegion`) unless
`includeShadowTrails` is false.
"""

from __future__ import annotations

import calendar
import copy
import json
from datetime import datetime
from typing import Any

import moto.cloudtrail.models as cloudtrail_models
from moto.cloudtrail.exceptions import (
    InvalidParameterCombinationException,
    TrailNameTooShort,
    TrailNotFoundException,
)
from moto.cloudtrail.models import CloudTrailBackend, Trail, TrailStatus, cloudtrail_backends
from moto.cloudtrail.responses import CloudTrailResponse
from moto.utilities.utils import get_partition

# AWS's answer for a trail that was never given selectors.
DEFAULT_EVENT_SELECTOR: dict[str, Any] = {
    "ReadWriteType": "All",
    "IncludeManagementEvents": True,
    "DataResources": [],
    "ExcludeManagementEventSources": [],
}

_installed = False


def _utc_epoch(date: datetime) -> int:
    """Epoch seconds of moto's naive UTC datetimes, whatever the process's time zone."""
    return calendar.timegm(date.utctimetuple())


def _with_defaults(selector: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(DEFAULT_EVENT_SELECTOR), **selector}


def _put_event_selectors(self: Trail, event_selectors: Any, advanced_event_selectors: Any) -> None:
    if event_selectors and advanced_event_selectors:
        raise InvalidParameterCombinationException(
            "You can use either EventSelectors or AdvancedEventSelectors, but not both."
        )
    if event_selectors:
        self.event_selectors, self.advanced_event_selectors = list(event_selectors), []
    elif advanced_event_selectors:
        self.event_selectors, self.advanced_event_selectors = [], list(advanced_event_selectors)
    else:
        return
    self.has_custom_event_selectors = True


def _describe_with_custom_selectors(original: Any) -> Any:
    def patched(self: Trail, *args: Any, **kwargs: Any) -> dict[str, Any]:
        desc = original(self, *args, **kwargs)
        desc["HasCustomEventSelectors"] = bool(getattr(self, "has_custom_event_selectors", False))
        return desc

    patched.__name__ = original.__name__
    return patched


def _get_event_selectors_response(self: CloudTrailResponse) -> str:
    trail = self.cloudtrail_backend.get_trail(json.loads(self.body).get("TrailName"))
    if trail.advanced_event_selectors:
        return json.dumps({"TrailARN": trail.arn, "AdvancedEventSelectors": trail.advanced_event_selectors})
    selectors = trail.event_selectors or [DEFAULT_EVENT_SELECTOR]
    return json.dumps({"TrailARN": trail.arn, "EventSelectors": [_with_defaults(s) for s in selectors]})


def _account_trails(backend: CloudTrailBackend) -> list[Trail]:
    return [t for b in cloudtrail_backends[backend.account_id].values() for t in b.trails.values()]


def _describe_trails_response(original: Any) -> Any:
    def patched(self: CloudTrailResponse) -> str:
        names = self._get_param("trailNameList") or []
        if not names:
            return original(self)
        backend = self.cloudtrail_backend
        found: list[Trail] = []
        for name in names:
            if name.startswith("arn:"):
                trail = next((t for t in _account_trails(backend) if t.arn == name), None)
            else:
                trail = backend.trails.get(name)
            if trail is not None and trail not in found:
                found.append(trail)
        return json.dumps({"trailList": [t.description(include_region=True) for t in found]})

    patched.__name__ = original.__name__
    return patched


def _get_trail_status(self: CloudTrailBackend, name: str) -> TrailStatus:
    # moto's name length check and not-found error (which names the ARN) are kept.
    if len(name) < 3:
        raise TrailNameTooShort(actual_length=len(name))
    if name.startswith("arn:"):
        trail = next(
            (t for t in _account_trails(self)
             if t.arn == name and (t.region_name == self.region_name or t.is_multi_region)),
            None,
        )
    else:
        trail = self.trails.get(name)
    if trail is None:
        arn = name if name.startswith("arn:") else (
            f"arn:{get_partition(self.region_name)}:cloudtrail:{self.region_name}:{self.account_id}:trail/{name}")
        raise TrailNotFoundException(account_id=self.account_id, name=arn)
    return trail.status


def install() -> None:
    """Patch moto's CloudTrail backend and responses (idempotent)."""
    global _installed
    if _installed:
        return
    cloudtrail_models.datetime2int = _utc_epoch  # type: ignore[assignment]
    Trail.put_event_selectors = _put_event_selectors  # type: ignore[method-assign]
    Trail.description = _describe_with_custom_selectors(Trail.description)  # type: ignore[method-assign]
    CloudTrailBackend.get_trail_status = _get_trail_status  # type: ignore[method-assign]
    CloudTrailResponse.get_event_selectors = _get_event_selectors_response  # type: ignore[method-assign]
    CloudTrailResponse.describe_trails = _describe_trails_response(CloudTrailResponse.describe_trails)  # type: ignore[method-assign]
    _installed = True
