"""Which devices a deployment targets, and in what order it updates them.

Pure helpers for the rollout planner (and for the handler, which uses `selector_matches` to
find which other deployments claim a device's slot).

The order is a stable hash of (deployment uid, device name): the same deployment always
walks its fleet in the same order, across operator restarts and whatever order the API server
lists devices in, while two deployments (or the same name recreated) pick different canaries.
Hashing instead of sorting by name spreads the first waves across sites, because names like
`plant-a-cam-001` would otherwise put one site's devices first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from modelfleet.api.base import LabelSelector, LabelSelectorRequirement


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def order_key(deployment_uid: str, device_name: str) -> tuple[str, str]:
    """Sort key of one device; the name breaks (astronomically unlikely) hash ties."""
    digest = hashlib.sha256(f"{deployment_uid}/{device_name}".encode()).hexdigest()
    return digest, device_name


def rollout_order(deployment_uid: str, devices: Iterable[N]) -> list[N]:
    """`devices` in the order this deployment updates them: independent of the input order."""
    return sorted(devices, key=lambda d: order_key(deployment_uid, d.name))


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics; an empty selector matches everything."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(_requirement_matches(r, labels) for r in selector.match_expressions)


def _requirement_matches(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    value = labels.get(requirement.key)
    match requirement.operator:
        case "In":
            return present and value in requirement.values
        case "NotIn":
            return not present or value not in requirement.values
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
