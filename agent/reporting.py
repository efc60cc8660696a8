"""Slot status writes: what the rollout controller acts on, written as rarely as it can be.

The slot loop calls `report` with the status each plan asks for; this decides whether it is
written. Nothing is written when nothing but `lastUpdateTime` changed. Downloading is written
only if the slot is still busy `progress_grace_seconds` later (a timer does it), so a quick
rollout costs a device one write (its outcome: Healthy or Failed) and a slow one two. Verifying
and Activating, local steps of a second or two, are only logged unless `report_every_phase`.
A write that fails is retried on the next pass (`unsynced`); the device keeps working.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from modelfleet.agent.devices import DeviceApi, retrying
from modelfleet.agent.reconcile import status_changed
from modelfleet.api.device import SlotStatus
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)

_PASSING_PHASES = frozenset({"Verifying", "Activating"})
"""Local steps of a second or two that nothing in the control plane waits for."""


class StatusReporter:
    def __init__(
        self,
        devices: DeviceApi,
        *,
        stop: threading.Event,
        report_every_phase: bool = False,
        progress_grace_seconds: float = 5.0,
    ) -> None:
        self.devices = devices
        self.stop = stop
        self.report_every_phase = report_every_phase
        self.progress_grace_seconds = progress_grace_seconds
        self.reported: dict[str, SlotStatus | None] = {}
        self.unsynced: set[str] = set()
        self.lock = threading.Lock()
        """Status writes come from the loop and from progress timers."""
        self.progress: dict[str, tuple[threading.Timer, SlotStatus]] = {}
        """slot → the deferred Downloading report and its timer."""

    def seed(self, slots: Mapping[str, SlotStatus | None]) -> None:
        """What the EdgeDevice's status says now (at registration)."""
        self.reported = dict(slots)

    def slots(self) -> set[str]:
        """Slots that have a status entry: a slot that left spec.models must drop it."""
        return set(self.reported)

    def report(self, slot: str, status: SlotStatus | None) -> None:
        with self.lock:
            known = slot not in self.unsynced
            if known and not status_changed(self.reported.get(slot), status):
                self._cancel_progress(slot)  # e.g. moved back to the active revision
                return
            every_phase = self.report_every_phase
            if status is not None and status.phase in _PASSING_PHASES and not every_phase:
                log.info("slot phase", slot=slot, phase=status.phase)
                return
            if status is not None and self._defer_progress(slot, status):
                return
            self._cancel_progress(slot)
            self._write(slot, status)

    def _cancel_progress(self, slot: str) -> None:
        progress = self.progress.pop(slot, None)
        if progress is not None:
            progress[0].cancel()

    def _defer_progress(self, slot: str, status: SlotStatus) -> bool:
        """Downloading is written only if the slot is still busy `progress_grace_seconds`
        later: a fast activation is then reported by its outcome alone (one write less per
        device and rollout; the controller times devices out from `assignedAt`, not from
        this report)."""
        grace = self.progress_grace_seconds
        if status.phase != "Downloading" or self.report_every_phase or grace <= 0:
            return False
        pending = self.progress.get(slot)
        timer = pending[0] if pending else threading.Timer(grace, self._report_progress, (slot,))
        self.progress[slot] = (timer, status)
        if pending is None:
            timer.daemon = True
            timer.start()
        return True

    def _report_progress(self, slot: str) -> None:
        with self.lock:
            pending = self.progress.pop(slot, None)
            if pending is not None and not self.stop.is_set():
                self._write(slot, pending[1])

    def _write(self, slot: str, status: SlotStatus | None) -> None:
        try:
            retrying("status", lambda: self.devices.write_slot(slot, status))
        except Exception as err:  # the device keeps working; the next pass writes it again
            self.unsynced.add(slot)
            log.warning("status write failed", slot=slot, error=describe(err))
            return
        self.unsynced.discard(slot)
        if status is None:
            self.reported.pop(slot, None)
            log.info("slot status removed", slot=slot)
            return
        self.reported[slot] = status
        log.info(
            "slot status",
            slot=slot,
            phase=status.phase,
            reason=status.reason or None,
            target=status.target_revision,
            active=status.active_revision,
        )
