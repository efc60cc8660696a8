"""The steps a slot plan asks for, done on disk and over the network.

`plan_slot` (reconcile) decides; `Steps.execute` does one step: drop a slot (Deactivate),
record a new revision of the active artifact (Adopt), fetch the artifact (Download), check its
size and sha256 and move it into the store (Verify), or load it on the runtime the assignment
asks for, probe it there, write `runtime.json` and switch the slot's `current` link (Install).
A step that the assignment moved away from stops early (`moved`, checked per downloaded chunk)
with `Cancelled`; a failed one raises its classified `AgentError`. The slot loop (`slots`) calls
this and keeps the failure records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modelfleet.agent import probe as probing
from modelfleet.agent.activation import ActivationHook, hook_env, run_hook
from modelfleet.agent.download import RetryPolicy, download
from modelfleet.agent.errors import ActivationFailed, AgentError, ChecksumMismatch, ProbeFailed
from modelfleet.agent.reconcile import (
    Adopt,
    Deactivate,
    Download,
    Install,
    LocalSlot,
    Verify,
    activating_status,
    retrying_status,
)
from modelfleet.agent.store import Store, sha256_file
from modelfleet.api.device import ProbeResult, SlotAssignment, SlotRuntime, SlotStatus
from modelfleet.device import RUNTIME_FILE, runtime_document
from modelfleet.engines import Session
from modelfleet.logs import get_logger

log = get_logger(__name__)

PROBE_LIMIT_BYTES = 256 * 1024 * 1024


class Steps:
    def __init__(
        self,
        store: Store,
        *,
        retry: RetryPolicy,
        max_download_rate: float | None,
        moved: Callable[[str, SlotAssignment], bool],
        report: Callable[[str, SlotStatus | None], None],
        clock: Callable[[], datetime],
        on_activate: ActivationHook | None = None,
    ) -> None:
        self.store = store
        self.on_activate = on_activate
        self.retry = retry
        self.max_download_rate = max_download_rate
        self.moved = moved
        self.report = report
        self.clock = clock

    def execute(self, slot: str, step: Deactivate | Adopt | Download | Verify | Install) -> bool:
        """Do `step`; True when the slot is settled (dropped or activated), which ends any
        failure recorded for it."""
        if isinstance(step, Deactivate):
            self.store.deactivate(slot)
            log.info("slot deactivated", slot=slot)
            return True
        if isinstance(step, Adopt):
            current, _ = self.store.read_slot(slot)
            self._record(
                slot,
                step.assignment,
                current.probe if current else None,
                current.runtime if current else None,
            )
            log.info("revision adopted", slot=slot, revision=step.assignment.revision)
        elif isinstance(step, Download):
            self._download(slot, step.assignment)
        elif isinstance(step, Verify):
            self._verify(step.assignment)
        else:
            return self._install(slot, step.assignment)
        return False

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
            policy=self.retry,
            should_stop=lambda: self.moved(slot, assignment),
            max_rate=self.max_download_rate,
            on_retry=lambda attempt, cause, delay: self._retrying(
                slot, assignment, attempt, cause, delay
            ),
        )
        log.info(
            "downloaded", slot=slot, received=transfer.received, resumed_at=transfer.resumed_at
        )

    def _retrying(
        self, slot: str, assignment: SlotAssignment, attempt: int, cause: str, delay: float
    ) -> None:
        current, previous = self.store.read_slot(slot)
        local = LocalSlot(current=current, previous=previous)
        status = retrying_status(
            assignment, local, self.clock(), attempt=attempt, cause=cause, delay=delay
        )
        self.report(slot, status)

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

    def _install(self, slot: str, assignment: SlotAssignment) -> bool:
        sha = assignment.sha256
        model = self.store.object_path(sha)
        if sha256_file(model) != sha:  # the disk changed it: fetch it again
            log.error("stored artifact corrupted; discarding it", slot=slot, sha256=sha[:12])
            self.store.discard(model)
            return False
        session = probing.load_session(model, assignment.runtime)
        result = self._probe(slot, assignment, session)
        description = session.describe()  # after the probe: with the kernels' placement
        before, previous = self.store.read_slot(slot)
        local = LocalSlot(current=before, previous=previous, stored=True)
        self.report(slot, activating_status(assignment, local, self.clock()))
        if self.on_activate is not None:
            self.store.begin_activation(slot)
        self._record(slot, assignment, result, description.status())
        self.store.write_runtime(
            slot,
            runtime_document(description, sha256=sha, model=self.store.model_reference(sha)),
        )
        self.store.activate(slot, sha)
        if self.on_activate is not None:
            self._notify(slot, self.on_activate)
        log.info(
            "activated",
            slot=slot,
            revision=assignment.revision,
            sha256=sha[:12],
            previous=before.revision if before else None,
            probe_max_abs=result.max_abs if result else None,
            engine=description.engine,
            used=list(description.used),
            fallback=description.fallback,
        )
        return True

    def _notify(self, slot: str, hook: ActivationHook) -> None:
        """Run the command for what is current now; when it fails, put the slot back as it
        was, tell the command so (best effort: the slot fails either way), raise."""
        try:
            run_hook(hook, self._hook_env(slot))
        except ActivationFailed as err:
            self.store.roll_back_activation(slot)
            restored, _ = self.store.read_slot(slot)
            log.error(
                "on-activate command failed; slot rolled back",
                slot=slot,
                error=err.message,
                revision=restored.revision if restored else None,
            )
            if restored is not None:
                try:
                    run_hook(hook, self._hook_env(slot))
                except ActivationFailed as again:
                    log.error("on-activate command failed after the rollback", error=again.message)
            raise
        self.store.end_activation(slot)

    def _hook_env(self, slot: str) -> dict[str, str]:
        current, _ = self.store.read_slot(slot)
        assert current is not None, "the command runs for an active model"
        link = self.store.current_link(slot)
        return hook_env(
            slot=slot,
            slot_dir=link.parent,
            model=self.store.object_path(current.sha256),
            runtime=link.parent / RUNTIME_FILE,
            revision=current.revision,
            sha256=current.sha256,
        )

    def _probe(self, slot: str, assignment: SlotAssignment, session: Session) -> ProbeResult | None:
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
                policy=self.retry,
                should_stop=lambda: self.moved(slot, assignment),
                max_bytes=PROBE_LIMIT_BYTES,
                on_retry=lambda attempt, cause, delay: self._retrying(
                    slot, assignment, attempt, f"probe: {cause}", delay
                ),
            )
        try:
            arrays, meta = probing.read_probe(path)
            meta = probing.with_tolerance(meta, assignment.format, assignment.tolerance)
            verdict = probing.run_probe(session, arrays, meta, assignment.format)
            if not verdict:
                raise ProbeFailed(verdict.summary())
        except AgentError:
            if path != cached:
                self.store.discard(path)
            raise
        self.store.keep_probe(sha, path)
        log.info("probe passed", slot=slot, summary=verdict.summary())
        return ProbeResult(
            max_abs=verdict.max_abs,
            latency_ms=round(verdict.latency_ms, 3),
            validated_max_abs=verdict.validated_max_abs,
        )

    def _record(
        self,
        slot: str,
        assignment: SlotAssignment,
        probe: ProbeResult | None,
        runtime: SlotRuntime | None,
    ) -> None:
        self.store.record(
            slot,
            assignment.sha256,
            revision=assignment.revision,
            deployment=assignment.deployment,
            fmt=assignment.format,
            probe=probe,
            runtime=runtime,
            request=assignment.runtime,
        )
