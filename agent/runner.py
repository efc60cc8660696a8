"""The agent's loop: threads, registration and the passes over every slot.

Three threads: the Lease heartbeat (`heartbeats`), the watch on the device's own EdgeDevice
(`devices.DeviceWatch`, which wakes the loop when spec changes) and this loop, which on every
wake-up - and at least every `resync_seconds` - brings each slot to its assignment
(`slots`: plan with `reconcile.plan_slot`, one step at a time with `steps`: download, verify
and store, load and probe, switch the `current` link, run the --on-activate command), reports
slot status (`reporting`: Downloading only if the slot is still busy `progress_grace_seconds`
later, then Healthy or Failed, the state the rollout controller acts on) and refreshes the
device facts (`facts`: engines and accelerators).
What the device is asked to hold is read from the watch (`assignments`).

Restart safety comes from the store: nothing here keeps state that matters across a SIGKILL
(an activation the --on-activate command had not confirmed is rolled back at start).
Failed attempts are remembered in memory only, so a restarted agent tries each assignment once
more. Status writes that fail are retried on the next pass; the device keeps working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes import client

from modelfleet.agent.activation import ActivationHook
from modelfleet.agent.assignments import Assignments
from modelfleet.agent.devices import API_BACKOFF, DeviceApi, DeviceWatch
from modelfleet.agent.download import RetryPolicy
from modelfleet.agent.facts import FactsReporter
from modelfleet.agent.heartbeats import LEASE_SECONDS, Heartbeat
from modelfleet.agent.reconcile import ASSIGNMENT_BACKOFF
from modelfleet.agent.reporting import StatusReporter
from modelfleet.agent.slots import Slots
from modelfleet.agent.steps import Steps
from modelfleet.agent.store import Store
from modelfleet.api.device import EdgeDevice
from modelfleet.backoff import Backoff, Stopped, retry
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)

STATUS_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class AgentSettings:
    device_name: str
    namespace: str
    data_dir: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    lease_duration_seconds: int = LEASE_SECONDS
    heartbeat_seconds: float | None = None
    resync_seconds: float = 300.0
    facts_seconds: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Attempts and backoff within one download."""
    assignment_backoff: Backoff = ASSIGNMENT_BACKOFF
    """Between downloads of an assignment that keeps failing."""
    max_download_rate: float | None = None
    report_every_phase: bool = False
    progress_grace_seconds: float = 5.0
    on_activate: ActivationHook | None = None
    """Run after each switch of a slot's model; its failure rolls the switch back."""


class Agent:
    def __init__(
        self,
        api: client.ApiClient,
        settings: AgentSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = Store(settings.data_dir)
        self.devices = DeviceApi(api, namespace=settings.namespace, name=settings.device_name)
        self.heartbeat = Heartbeat(
            api,
            namespace=settings.namespace,
            name=settings.device_name,
            duration_seconds=settings.lease_duration_seconds,
            interval_seconds=settings.heartbeat_seconds,
            clock=clock,
        )
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.watch = DeviceWatch(
            api,
            namespace=settings.namespace,
            name=settings.device_name,
            on_change=self.wake.set,
            relist_seconds=settings.resync_seconds,
        )
        self.assignments = Assignments(self.watch, stop=self.stop)
        self.reporter = StatusReporter(
            self.devices,
            stop=self.stop,
            report_every_phase=settings.report_every_phase,
            progress_grace_seconds=settings.progress_grace_seconds,
        )
        self.facts = FactsReporter(
            self.devices, settings.data_dir, every_seconds=settings.facts_seconds, clock=clock
        )
        steps = Steps(
            self.store,
            retry=settings.retry,
            max_download_rate=settings.max_download_rate,
            moved=self.assignments.moved,
            report=self.reporter.report,
            clock=clock,
            on_activate=settings.on_activate,
        )
        self.slots = Slots(
            self.store,
            steps,
            self.reporter,
            self.assignments,
            stop=self.stop,
            clock=clock,
            backoff=settings.assignment_backoff,
        )

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.watch.stop()

    def run(self) -> None:
        if not self._lock_store():
            return
        self.store.remove_temporaries()
        for slot in self.store.pending_activations():
            self.store.roll_back_activation(slot)
            log.warning("unconfirmed activation rolled back; installing again", slot=slot)
        if self._register() is None:
            return
        threading.Thread(
            target=self.heartbeat.run, args=(self.stop,), name="heartbeat", daemon=True
        ).start()
        self.watch.start()
        while not self.stop.is_set() and not self.watch.wait_synced(1.0):
            pass
        while not self.stop.is_set():
            self.wake.clear()
            try:
                wake_at = self.reconcile_once()
            except Exception:  # a daemon: log, back off, and let the next pass try again
                log.exception("reconcile pass failed")
                wake_at = self.clock() + timedelta(seconds=STATUS_RETRY_SECONDS * 2)
            timeout = self.settings.resync_seconds
            if wake_at is not None:
                timeout = min(timeout, max(0.05, (wake_at - self.clock()).total_seconds()))
            if self.reporter.unsynced:
                timeout = min(timeout, STATUS_RETRY_SECONDS)
            self.wake.wait(timeout)
        log.info("agent stopped")

    def _lock_store(self) -> bool:
        waiting = False
        while not self.stop.is_set():
            if self.store.try_lock():
                return True
            if not waiting:
                log.warning(
                    "another agent uses the data dir; waiting", data_dir=str(self.store.root)
                )
                waiting = True
            self.stop.wait(1.0)
        return False

    def _register(self) -> EdgeDevice | None:
        """Create or read the EdgeDevice, trying until it works: the network at the edge comes
        and goes. None: stopped first."""

        def attempt() -> EdgeDevice:
            device = self.devices.register(self.settings.labels)
            status = device.status
            self.reporter.seed(status.slots if status else {})
            self.facts.seed(status.facts if status else None)
            self.facts.refresh(force=True)
            return device

        if self.stop.is_set():
            return None
        try:
            return retry(
                attempt,
                backoff=API_BACKOFF,
                retry_on=lambda err: isinstance(err, Exception),
                stop=self.stop,
                on_retry=lambda _, err, delay: log.warning(
                    "registration failed", error=describe(err), retry_in_s=delay
                ),
            )
        except Stopped:
            return None

    def reconcile_once(self) -> datetime | None:
        """Bring every slot to its assignment; return when the next retry is due, if any."""
        device = self.assignments.device()
        if device is None:
            log.warning("EdgeDevice is gone; registering again")
            self.slots.forget()
            return None if self._register() is None else self.clock()
        assignments = self.assignments.valid(device)
        wanted = {a.sha256 for a in assignments.values()}
        for path in self.store.clean_staging(wanted):
            log.info("staging leftover removed", file=path.name)
        slots = set(assignments) | set(self.store.slot_names())
        slots |= {s for s in self.reporter.slots() if self.assignments.valid_slot(s)}
        wake_at: datetime | None = None
        for slot in sorted(slots):
            if self.stop.is_set():
                break
            due = self.slots.reconcile(slot, assignments.get(slot))
            if due is not None and (wake_at is None or due < wake_at):
                wake_at = due
        for sha in self.store.collect_garbage(self.assignments.wanted() | wanted):
            log.info("artifact removed", sha256=sha[:12])
        self.facts.refresh()
        return wake_at
