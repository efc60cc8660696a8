"""The agent's loop: the I/O shell around `reconcile.plan_slot`.

Three threads: the Lease heartbeat (`heartbeats`), the watch on the device's own EdgeDevice
(`devices.DeviceWatch`, which wakes the loop when spec changes) and this loop, which on every
wake-up - and at least every `resync_seconds` - plans each slot and executes one step at a
time until the plan is `Keep`: download (`download`), verify and store (`store`), load and
probe (`probe`), switch the `current` link. Status is patched when the slot takes up a new
target (Downloading, only if it is still busy `progress_grace_seconds` later) and when it
reaches an outcome (Healthy or Failed), the state the rollout controller acts on: a quick
rollout costs a device one write, a slow one two. Every phase (Downloading at once, Verifying,
Activating) is reported with `report_every_phase` (for debugging a device).

Restart safety comes from the store: nothing here keeps state that matters across a SIGKILL.
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

from modelfleet.agent import probe as probing
from modelfleet.agent.devices import DeviceApi, DeviceWatch, retrying
from modelfleet.agent.download import RetryPolicy, download
from modelfleet.agent.errors import (
    RETRYABLE,
    AgentError,
    Cancelled,
    ChecksumMismatch,
    ProbeFailed,
)
from modelfleet.agent.facts import collect_facts
from modelfleet.agent.heartbeats import Heartbeat
from modelfleet.agent.reconcile import (
    Adopt,
    Deactivate,
    Download,
    Failure,
    Install,
    Keep,
    LocalSlot,
    Verify,
    activating_status,
    assignment_key,
    failure_after,
    plan_slot,
    status_changed,
)
from modelfleet.agent.store import SLOT_NAME, Store, sha256_file
from modelfleet.api.device import DeviceFacts, EdgeDevice, ProbeResult, SlotAssignment, SlotStatus
from modelfleet.logs import get_logger

log = get_logger(__name__)

PROBE_LIMIT_BYTES = 256 * 1024 * 1024
STATUS_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class AgentSettings:
    device_name: str
    namespace: str
    data_dir: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    lease_duration_seconds: int = 240
    heartbeat_seconds: float | None = None
    resync_seconds: float = 300.0
    facts_seconds: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_base: timedelta = timedelta(seconds=10)
    retry_max: timedelta = timedelta(minutes=10)
    max_download_rate: float | None = None
    report_every_phase: bool = False
    progress_grace_seconds: float = 5.0


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
            self.devices,
            on_change=self.wake.set,
            relist_seconds=settings.resync_seconds,
            stop=self.stop,
        )
        self.failures: dict[str, Failure] = {}
        self.reported: dict[str, SlotStatus | None] = {}
        self.unsynced: set[str] = set()
        self.status_lock = threading.Lock()
        """Status writes come from the loop and from progress timers."""
        self.progress: dict[str, tuple[threading.Timer, SlotStatus]] = {}
        """slot → the deferred Downloading report and its timer."""
        self.facts: DeviceFacts | None = None
        self.facts_due = 0.0
        self.invalid_slots: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()

    def run(self) -> None:
        if not self._lock_store():
            return
        self.store.remove_temporaries()
        device = self._register()
        if device is None:
            return
        threading.Thread(
            target=self.heartbeat.run, args=(self.stop,), name="heartbeat", daemon=True
        ).start()
        threading.Thread(target=self.watch.run, name="watch", daemon=True).start()
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
            if self.unsynced:
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
        delay = 0.5
        while not self.stop.is_set():
            try:
                device = self.devices.register(self.settings.labels)
                status = device.status
                self.reported = dict(status.slots) if status else {}
                self.facts = status.facts if status else None
                self._refresh_facts(force=True)
                return device
            except Exception as err:  # keep trying: the network at the edge comes and goes
                log.warning("registration failed", error=_describe(err), retry_in_s=delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
        return None

    # -- one pass ----------------------------------------------------------------------------

    def reconcile_once(self) -> datetime | None:
        """Plan and execute every slot; return when the next retry is due, if any."""
        device = self.watch.latest()
        if device is None:
            log.warning("EdgeDevice is gone; registering again")
            self.failures.clear()
            return None if self._register() is None else self.clock()
        assignments = {s: a for s, a in device.spec.models.items() if self._valid_slot(s)}
        wanted = {a.sha256 for a in assignments.values()}
        for path in self.store.clean_staging(wanted):
            log.info("staging leftover removed", file=path.name)
        slots = set(assignments) | set(self.store.slot_names())
        slots |= {s for s in self.reported if self._valid_slot(s)}
        wake_at: datetime | None = None
        for slot in sorted(slots):
            if self.stop.is_set():
                break
            due = self._reconcile_slot(slot, assignments.get(slot))
            if due is not None and (wake_at is None or due < wake_at):
                wake_at = due
        for sha in self.store.collect_garbage(self._wanted() | wanted):
            log.info("artifact removed", sha256=sha[:12])
        self._refresh_facts()
        return wake_at

    def _reconcile_slot(self, slot: str, assignment: SlotAssignment | None) -> datetime | None:
        for _ in range(16):  # a full activation is four steps; never spin forever
            plan = plan_slot(
                assignment, self._local(slot, assignment), self._failure(slot), self.clock()
            )
            self._report(slot, plan.status)
            step = plan.step
            if isinstance(step, Keep):
                return step.wake_at
            if self.stop.is_set():
                return None
            try:
                self._execute(slot, step)
            except Cancelled as err:
                log.info("step cancelled", slot=slot, why=str(err))
                return None
            except AgentError as err:
                assert assignment is not None
                self._fail(slot, assignment, err)
            latest = self.watch.latest()
            if latest is None:
                return None
            assignment = latest.spec.models.get(slot)
        return self.clock()

    def _execute(self, slot: str, step: Deactivate | Adopt | Download | Verify | Install) -> None:
        if isinstance(step, Deactivate):
            self.store.deactivate(slot)
            self.failures.pop(slot, None)
            log.info("slot deactivated", slot=slot)
        elif isinstance(step, Adopt):
            current, _ = self.store.read_slot(slot)
            self._record(slot, step.assignment, current.probe if current else None)
            log.info("revision adopted", slot=slot, revision=step.assignment.revision)
        elif isinstance(step, Download):
            self._download(slot, step.assignment)
        elif isinstance(step, Verify):
            self._verify(step.assignment)
        else:
            self._install(slot, step.assignment)

    # -- steps -------------------------------------------------------------------------------

    def _download(self, slot: str, assignment: SlotAssignment) -> None:
        log.info(
            "downloading",
            slot=slot,
            revision=assignment.revision,
            sha256=assignment.sha256[:12],
            size=assignment.size_bytes,
        )
        transfer = download(
            assignment.url,
            self.store.staging_path(assignment.sha256),
            size=assignment.size_bytes,
            policy=self.settings.retry,
            should_stop=lambda: self._moved(slot, assignment),
            max_rate=self.settings.max_download_rate,
        )
        log.info(
            "downloaded", slot=slot, received=transfer.received, resumed_at=transfer.resumed_at
        )

    def _verify(self, assignment: SlotAssignment) -> None:
        staged = self.store.staging_path(assignment.sha256)
        size = staged.stat().st_size
        if size != assignment.size_bytes:
            self.store.discard(staged)
            raise ChecksumMismatch(f"got {size} bytes, the assignment says {assignment.size_bytes}")
        digest = sha256_file(staged)
        if digest != assignment.sha256:
            self.store.discard(staged)
            raise ChecksumMismatch(
                f"sha256 of the download is {digest}, the assignment says {assignment.sha256}"
            )
        self.store.commit(assignment.sha256, staged)

    def _install(self, slot: str, assignment: SlotAssignment) -> None:
        sha = assignment.sha256
        model = self.store.object_path(sha)
        if sha256_file(model) != sha:  # the disk changed it: fetch it again
            log.error("stored artifact corrupted; discarding it", slot=slot, sha256=sha[:12])
            self.store.discard(model)
            return
        session = probing.load_session(model)
        result = self._probe(slot, assignment, session)
        before, previous = self.store.read_slot(slot)
        local = LocalSlot(current=before, previous=previous, stored=True)
        self._report(slot, activating_status(assignment, local, self.clock()))
        self._record(slot, assignment, result)
        self.store.activate(slot, sha)
        self.failures.pop(slot, None)
        log.info(
            "activated",
            slot=slot,
            revision=assignment.revision,
            sha256=sha[:12],
            previous=before.revision if before else None,
            probe_max_abs=result.max_abs if result else None,
        )

    def _probe(self, slot: str, assignment: SlotAssignment, session: object) -> ProbeResult | None:
        sha = assignment.sha256
        cached = self.store.probe_path(sha)
        path = cached
        if not cached.is_file():
            if not assignment.probe_url:
                log.warning("no probe assigned; activating after load only", slot=slot)
                return None
            path = self.store.staging_path(sha, ".probe.tmp")
            download(
                assignment.probe_url,
                path,
                size=None,
                policy=self.settings.retry,
                should_stop=lambda: self._moved(slot, assignment),
                max_bytes=PROBE_LIMIT_BYTES,
            )
        try:
            arrays, meta = probing.read_probe(path)
            verdict = probing.run_probe(session, arrays, meta, assignment.format)
            if not verdict:
                raise ProbeFailed(verdict.summary())
        except AgentError:
            if path != cached:
                self.store.discard(path)
            raise
        self.store.keep_probe(sha, path)
        log.info("probe passed", slot=slot, summary=verdict.summary())
        return ProbeResult(max_abs=verdict.max_abs, latency_ms=round(verdict.latency_ms, 3))

    # -- helpers -----------------------------------------------------------------------------

    def _record(self, slot: str, assignment: SlotAssignment, probe: ProbeResult | None) -> None:
        self.store.record(
            slot,
            assignment.sha256,
            revision=assignment.revision,
            deployment=assignment.deployment,
            fmt=assignment.format,
            probe=probe,
        )

    def _local(self, slot: str, assignment: SlotAssignment | None) -> LocalSlot:
        current, previous = self.store.read_slot(slot)
        if assignment is None:
            return LocalSlot(current=current, previous=previous)
        return LocalSlot(
            current=current,
            previous=previous,
            stored=self.store.has_object(assignment.sha256),
            staged_bytes=self.store.staged_bytes(assignment.sha256),
        )

    def _failure(self, slot: str) -> Failure | None:
        return self.failures.get(slot)

    def _fail(self, slot: str, assignment: SlotAssignment, err: AgentError) -> None:
        failure = failure_after(
            self.failures.get(slot),
            key=assignment_key(assignment),
            reason=err.reason,
            message=err.message,
            retryable=err.reason in RETRYABLE,
            now=self.clock(),
            base_delay=self.settings.retry_base,
            max_delay=self.settings.retry_max,
        )
        self.failures[slot] = failure
        log.warning(
            "slot failed",
            slot=slot,
            revision=assignment.revision,
            reason=failure.reason,
            message=failure.message,
        )

    def _moved(self, slot: str, assignment: SlotAssignment) -> bool:
        """Whether to give up a running step: stopping, or the slot wants other bytes now."""
        if self.stop.is_set():
            return True
        latest = self.watch.latest()
        now = latest.spec.models.get(slot) if latest else None
        return now is None or now.sha256 != assignment.sha256

    def _wanted(self) -> set[str]:
        latest = self.watch.latest()
        return {a.sha256 for a in latest.spec.models.values()} if latest else set()

    def _report(self, slot: str, status: SlotStatus | None) -> None:
        with self.status_lock:
            known = slot not in self.unsynced
            if known and not status_changed(self.reported.get(slot), status):
                self._cancel_progress(slot)  # e.g. moved back to the active revision
                return
            every_phase = self.settings.report_every_phase
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
        grace = self.settings.progress_grace_seconds
        if status.phase != "Downloading" or self.settings.report_every_phase or grace <= 0:
            return False
        pending = self.progress.get(slot)
        timer = pending[0] if pending else threading.Timer(grace, self._report_progress, (slot,))
        self.progress[slot] = (timer, status)
        if pending is None:
            timer.daemon = True
            timer.start()
        return True

    def _report_progress(self, slot: str) -> None:
        with self.status_lock:
            pending = self.progress.pop(slot, None)
            if pending is not None and not self.stop.is_set():
                self._write(slot, pending[1])

    def _write(self, slot: str, status: SlotStatus | None) -> None:
        try:
            retrying("status", lambda: self.devices.write_slot(slot, status))
        except Exception as err:  # the device keeps working; the next pass writes it again
            self.unsynced.add(slot)
            log.warning("status write failed", slot=slot, error=_describe(err))
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

    def _refresh_facts(self, *, force: bool = False) -> None:
        now = self.clock().timestamp()
        if not force and now < self.facts_due:
            return
        self.facts_due = now + self.settings.facts_seconds
        facts = collect_facts(self.settings.data_dir)
        if facts == self.facts:
            return
        try:
            retrying("facts", lambda: self.devices.write_facts(facts))
        except Exception as err:  # facts are informative; next refresh tries again
            log.warning("facts write failed", error=_describe(err))
            return
        self.facts = facts
        log.info("facts updated", arch=facts.arch, onnxruntime=facts.runtime.onnxruntime)

    def _valid_slot(self, slot: str) -> bool:
        if SLOT_NAME.match(slot):
            return True
        if slot not in self.invalid_slots:
            self.invalid_slots.add(slot)
            log.error("slot name is not a DNS label; ignored", slot=slot[:80])
        return False


_PASSING_PHASES = frozenset({"Verifying", "Activating"})
"""Local steps of a second or two that nothing in the control plane waits for."""


def _describe(err: BaseException) -> str:
    status = getattr(err, "status", None)
    if status is not None:
        return f"HTTP {status} {getattr(err, 'reason', '')}".strip()
    return f"{type(err).__name__}: {str(err)[:200]}"
