"""Device heartbeats for the rollout planner: Lease renewTimes from the shared informer.

Agents renew one `coordination.k8s.io/v1` Lease per device (agent/heartbeats.py). As a kopf
index every renewal was a full kopf event (diff-base, cause detection, index bookkeeping):
~2 ms of operator CPU each, 0.2 of a core per 1,000 devices at a 10 s heartbeat, and the Leases
doubled the objects in kopf's roughly quadratic start-up (bench/FINDINGS.md). The planner needs
one timestamp per device, so this keeps exactly that, from `modelfleet.informers`' list and
watch on raw JSON.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes import client

from modelfleet.conditions import parse_time
from modelfleet.informers import Informer, Resource

LEASES = Resource("coordination.k8s.io", "v1", "leases")


class LeaseTable:
    """renewTime per (namespace, lease name); a device's Lease is named after the device."""

    def __init__(self, api: client.ApiClient, namespaces: tuple[str, ...] = ()) -> None:
        """`namespaces` empty: cluster-wide."""
        self._informer = Informer(api, LEASES, _renew_time, namespaces=namespaces)

    @property
    def synced(self) -> bool:
        """False until every scope was listed once: before that each device looks offline."""
        return self._informer.synced

    def renew_time(self, namespace: str, name: str) -> dt.datetime | None:
        return self._informer.get(namespace, name)

    def start(self) -> None:
        self._informer.start()

    def stop(self) -> None:
        self._informer.stop()


def _renew_time(lease: dict[str, Any]) -> dt.datetime | None:
    renewed = (lease.get("spec") or {}).get("renewTime")
    return parse_time(renewed) if renewed else None
