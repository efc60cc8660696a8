"""What the agent is asked to hold, read from the watched EdgeDevice.

The runner, the slot loop and a running download all ask here rather than keeping a copy: the
informer's store is the one place the device's assignments live, so a step that is under way
sees a new assignment as soon as the watch delivers it (`moved`, checked per downloaded chunk).
Slot names that are not DNS labels (the store links slots by name) are ignored, logged once.
"""

from __future__ import annotations

import threading

from modelfleet.agent.devices import DeviceWatch
from modelfleet.agent.store import SLOT_NAME
from modelfleet.api.device import EdgeDevice, SlotAssignment
from modelfleet.logs import get_logger

log = get_logger(__name__)


class Assignments:
    def __init__(self, watch: DeviceWatch, *, stop: threading.Event) -> None:
        self.watch = watch
        self.stop = stop
        self._invalid: set[str] = set()

    def device(self) -> EdgeDevice | None:
        return self.watch.latest()

    def valid(self, device: EdgeDevice) -> dict[str, SlotAssignment]:
        """The device's assignments of slots that can be stored."""
        return {s: a for s, a in device.spec.models.items() if self.valid_slot(s)}

    def wanted(self) -> set[str]:
        """sha256 of every artifact the device assigns now (garbage collection keeps them)."""
        latest = self.watch.latest()
        return {a.sha256 for a in latest.spec.models.values()} if latest else set()

    def moved(self, slot: str, assignment: SlotAssignment) -> bool:
        """Whether to give up a running step: stopping, or the slot wants other bytes now."""
        if self.stop.is_set():
            return True
        latest = self.watch.latest()
        now = latest.spec.models.get(slot) if latest else None
        return now is None or now.sha256 != assignment.sha256

    def valid_slot(self, slot: str) -> bool:
        if SLOT_NAME.match(slot):
            return True
        if slot not in self._invalid:
            self._invalid.add(slot)
            log.error("slot name is not a DNS label; ignored", slot=slot[:80])
        return False
