"""Events for devices that fail a revision (probe mismatch, checksum, load, download...), as
aggregates: a 5,000-device wave with failures writes one Event per reason, not one per device.

Called by the EdgeDeployment controller after each planning pass, with the devices it planned
with. Level-triggered: the failures are derived from the devices' statuses on every pass
(`failure_groups`); nothing is remembered that the objects don't show. One Event per
(deployment, revision, device reason), reason `DeviceFailed`, its series count the number of
devices that failed so and its note naming a few of them ("3 devices failed ProbeFailed on
revision 2: dev-01, dev-02, dev-07; dev-01: ..."). It is written only when that number grows,
at most once per `interval` seconds per Event (a later pass writes what grew meanwhile), so
the write rate does not grow with the fleet. After a restart the first write of a group finds
the Event already counting as many and leaves it alone (`EventRecorder.aggregate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from modelfleet.operator.events import PhaseEvent
from modelfleet.operator.rollout.conditions import names
from modelfleet.operator.rollout.fleet import DeviceView

DEVICE_FAILED: Final = "DeviceFailed"
"""Event reason; the device's own reason (from its slot status) is in the note and the name."""
WRITE_INTERVAL_S: Final = 10.0


@dataclass(frozen=True)
class FailureGroup:
    """Devices that failed one revision with one reason, sorted by name."""

    revision: int
    reason: str
    devices: tuple[str, ...]
    first_message: str = ""
    """The first device's own message: what the failure looked like."""

    @property
    def key(self) -> str:
        return f"{DEVICE_FAILED}/{self.revision}/{self.reason}"

    def event(self) -> PhaseEvent:
        count = len(self.devices)
        devices = "device" if count == 1 else "devices"
        note = (
            f"{count} {devices} failed {self.reason} on revision {self.revision}: "
            f"{names(self.devices)}"
        )
        if self.first_message:
            note += f"; {self.devices[0]}: {self.first_message}"
        return PhaseEvent("Warning", DEVICE_FAILED, note, "Rollout")


def failure_groups(deployment: str, slot: str, devices: Iterable[DeviceView]) -> list[FailureGroup]:
    """Devices holding this deployment's assignment in `slot` whose agent reports it Failed
    on that very revision, grouped by (revision, reason); pure."""
    found: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for view in devices:
        status = view.slots.get(slot)
        if status is None or status.phase != "Failed":  # most devices: one lookup
            continue
        assignment = view.models.get(slot)
        if assignment is None or assignment.deployment != deployment:
            continue
        if status.target_revision != assignment.revision:
            continue
        group = found.setdefault((assignment.revision, status.reason or "Failed"), [])
        group.append((view.name, status.message))
    groups = []
    for (revision, reason), members in sorted(found.items()):
        members.sort()
        groups.append(FailureGroup(revision, reason, tuple(n for n, _ in members), members[0][1]))
    return groups


@dataclass(frozen=True)
class Written:
    count: int
    at: float


def due(written: Written | None, count: int, *, now: float, interval: float) -> bool:
    """Write when the group grew, and not again within `interval` of the last write."""
    if written is None:
        return True
    return count > written.count and now - written.at >= interval


class Aggregator(Protocol):
    """`EventRecorder.aggregate` (operator/events.py)."""

    def aggregate(
        self, regarding: Mapping[str, Any], event: PhaseEvent, *, key: str, count: int
    ) -> bool: ...


@dataclass
class DeviceFailureEvents:
    recorder: Aggregator
    interval: float = WRITE_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    _written: dict[tuple[str, str], dict[str, Written]] = field(default_factory=dict)
    """(namespace, deployment) → Event key → what was written: only the groups of the last
    pass are kept, so memory is bounded by the revisions and reasons the fleet shows now."""

    def record(
        self,
        regarding: Mapping[str, Any],
        *,
        slot: str,
        devices: Iterable[DeviceView],
    ) -> None:
        meta = regarding["metadata"]
        deployment = (meta["namespace"], meta["name"])
        before = self._written.get(deployment, {})
        after: dict[str, Written] = {}
        now = self.clock()
        for group in failure_groups(meta["name"], slot, devices):
            count = len(group.devices)
            written = before.get(group.key)
            if due(written, count, now=now, interval=self.interval):
                ok = self.recorder.aggregate(regarding, group.event(), key=group.key, count=count)
                if ok:
                    written = Written(max(count, written.count if written else 0), now)
            if written is not None:
                after[group.key] = written
        if after:
            self._written[deployment] = after
        else:
            self._written.pop(deployment, None)
