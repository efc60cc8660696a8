"""Expectations for the rollout controller's own device writes, like client-go's
ControllerExpectations.

A planning pass reads devices from the operator's index, which learns of the pass's own
patches only when the watch echoes them. Without this, the next pass (often milliseconds
later, woken by another device's event) assigns the same devices again: idempotent, but
2-7% extra writes per rollout at 1,000 devices (bench/FINDINGS.md). Memory only and only an
optimisation: an expectation ends when the index shows the write or after `ttl_s`, and after a
restart the index alone is the truth again.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from modelfleet.api.device import SlotAssignment
from modelfleet.operator.rollout.fleet import DeviceView

DeviceKey = tuple[str, str]
"""(namespace, device)"""


@dataclass(frozen=True)
class _Expected:
    assignment: SlotAssignment | None
    """What was written: an assignment, or None for a released slot."""
    until: float


@dataclass
class Expectations:
    ttl_s: float = 30.0
    _pending: dict[DeviceKey, dict[str, _Expected]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(
        self, device: DeviceKey, slot: str, assignment: SlotAssignment | None, *, now: float
    ) -> None:
        with self._lock:
            self._pending.setdefault(device, {})[slot] = _Expected(assignment, now + self.ttl_s)

    def pending(self) -> int:
        with self._lock:
            return sum(len(slots) for slots in self._pending.values())

    def overlay(
        self, namespace: str, devices: Sequence[DeviceView], *, now: float
    ) -> list[DeviceView]:
        """The devices as they will be once the watch has caught up with our writes."""
        with self._lock:
            if not self._pending:
                return list(devices)
            settled = [self._settle((namespace, device.name), device, now) for device in devices]
            present = {device.name for device in devices}
            for key in [k for k in self._pending if k[0] == namespace and k[1] not in present]:
                del self._pending[key]
            return settled

    def _settle(self, key: DeviceKey, device: DeviceView, now: float) -> DeviceView:
        slots = self._pending.get(key)
        if not slots:
            return device
        models = dict(device.models)
        overridden: set[str] = set()
        for slot, expected in list(slots.items()):
            if models.get(slot) == expected.assignment or now >= expected.until:
                del slots[slot]
                continue
            overridden.add(slot)
            if expected.assignment is None:
                models.pop(slot, None)
            else:
                models[slot] = expected.assignment
        if not slots:
            del self._pending[key]
        return dataclasses.replace(device, models=models) if overridden else device
