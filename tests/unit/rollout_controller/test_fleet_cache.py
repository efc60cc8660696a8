"""The fleet cache parses an EdgeDevice once and joins it with its Lease per pass."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelfleet.api.base import LabelSelector
from modelfleet.operator.rollout.controller import DeploymentClaim
from modelfleet.operator.rollout.fleet_cache import (
    WithLeases,
    concerned,
    parse_deployment,
    parse_device,
)

T0 = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def _body(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {}}


def test_an_unchanged_view_is_not_joined_again_but_its_lease_is_current() -> None:
    joins = WithLeases()
    base = parse_device(_body("d1"))
    [first] = joins.join("ns", {"d1": base}, lambda ns, name: T0)
    [same] = joins.join("ns", {"d1": base}, lambda ns, name: T0)
    assert same is first and first.lease_renew_time == T0
    later = T0 + dt.timedelta(minutes=1)
    [renewed] = joins.join("ns", {"d1": base}, lambda ns, name: later)
    assert renewed.lease_renew_time == later and renewed.name == "d1"


def test_a_new_view_is_joined_and_vanished_devices_are_forgotten() -> None:
    joins = WithLeases()
    joins.join("ns", {"d1": parse_device(_body("d1")), "d2": parse_device(_body("d2"))},
               lambda ns, name: None)  # fmt: skip
    [changed] = joins.join("ns", {"d1": parse_device(_body("d1", {"site": "b"}))},
                           lambda ns, name: None)  # fmt: skip
    assert changed.labels == {"site": "b"}
    assert joins.join("ns", {}, lambda ns, name: None) == []


def test_a_device_that_does_not_validate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_device({"metadata": {"name": "bad"}, "spec": {"models": {"x": {"revision": "?"}}}})


def test_a_device_change_concerns_deployments_that_select_or_hold_it() -> None:
    claims = {
        "north": DeploymentClaim("north", "detector", LabelSelector(matchLabels={"site": "n"})),
        "south": DeploymentClaim("south", "detector", LabelSelector(matchLabels={"site": "s"})),
        "other": DeploymentClaim("other", "detector", LabelSelector(matchLabels={"site": "x"})),
    }
    moved_old = parse_device(_body("d", {"site": "n"}))
    moved_new = parse_device(_body("d", {"site": "s"}))
    assert concerned(claims, moved_old, moved_new) == {"north", "south"}
    assert concerned(claims, None, parse_device(_body("d", {"site": "z"}))) == set()


def test_a_deployment_claims_its_slot_or_its_name() -> None:
    claim = parse_deployment(
        {"metadata": {"name": "cams"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}}
    )
    assert claim.slot == "cams" and claim.selector.match_labels == {"a": "b"}
