"""The operator re-parses an EdgeDevice only when its resourceVersion moved."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelfleet.operator.rollout.controller import DeviceViews

T0 = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def _body(name: str, version: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": version, "labels": labels or {}},
        "spec": {},
        "status": {},
    }


def test_an_unchanged_device_is_not_parsed_again_but_its_lease_is_current() -> None:
    views = DeviceViews()
    [first] = views.of("ns", [_body("d1", "1")], lambda ns, name: T0)
    [same] = views.of("ns", [_body("d1", "1")], lambda ns, name: T0)
    assert same is first
    later = T0 + dt.timedelta(minutes=1)
    [renewed] = views.of("ns", [_body("d1", "1")], lambda ns, name: later)
    assert renewed.lease_renew_time == later and renewed.name == "d1"


def test_a_new_resource_version_is_parsed_and_vanished_devices_are_forgotten() -> None:
    views = DeviceViews()
    views.of("ns", [_body("d1", "1"), _body("d2", "1")], lambda ns, name: None)
    [changed] = views.of("ns", [_body("d1", "2", {"site": "b"})], lambda ns, name: None)
    assert changed.labels == {"site": "b"}
    [back] = views.of("ns", [_body("d2", "1", {"site": "c"})], lambda ns, name: None)
    assert back.labels == {"site": "c"}, "d2 was dropped when it left the index"
