"""One slot brought to its assignment: plan, report, one step, and again, until `Keep`.

The runner calls `Slots.reconcile` for every slot on each pass. Each round asks the pure
`plan_slot` for the next step and the status to report, hands the status to the reporter and
the step to `Steps`, and reads the assignment again from the watch, so a change mid-way is
seen at the next step. A classified failure becomes the slot's `Failure` record (retryable
ones back off by `backoff`, per assignment); records live in memory only, so a restarted
agent tries each assignment once more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from modelfleet.agent.assignments import Assignments
from modelfleet.agent.errors import RETRYABLE, AgentError, Cancelled
from modelfleet.agent.reconcile import (
    ASSIGNMENT_BACKOFF,
    Failure,
    Keep,
    LocalSlot,
    assignment_key,
    failure_after,
    plan_slot,
)
from modelfleet.agent.reporting import StatusReporter
from modelfleet.agent.steps import Steps
from modelfleet.agent.store import Store
from modelfleet.api.device import SlotAssignment
from modelfleet.backoff import Backoff
from modelfleet.logs import get_logger

log = get_logger(__name__)

MAX_STEPS = 16
"""A full activation is four steps; never spin forever."""


class Slots:
    def __init__(
        self,
        store: Store,
        steps: Steps,
        reporter: StatusReporter,
        assignments: Assignments,
        *,
        stop: threading.Event,
        clock: Callable[[], datetime],
        backoff: Backoff = ASSIGNMENT_BACKOFF,
    ) -> None:
        self.store = store
        self.steps = steps
        self.reporter = reporter
        self.assignments = assignments
        self.stop = stop
        self.clock = clock
        self.backoff = backoff
        self.failures: dict[str, Failure] = {}

    def forget(self) -> None:
        """Drop every failure record (the EdgeDevice is gone: assignments start over)."""
        self.failures.clear()

    def reconcile(self, slot: str, assignment: SlotAssignment | None) -> datetime | None:
        """Step the slot until its plan is `Keep`; return when to plan it again, if ever."""
        for _ in range(MAX_STEPS):
            plan = plan_slot(
                assignment, self._local(slot, assignment), self.failures.get(slot), self.clock()
            )
            self.reporter.report(slot, plan.status)
            step = plan.step
            if isinstance(step, Keep):
                return step.wake_at
            if self.stop.is_set():
                return None
            try:
                if self.steps.execute(slot, step):
                    self.failures.pop(slot, None)
            except Cancelled as err:
                log.info("step cancelled", slot=slot, why=str(err))
                return None
            except AgentError as err:
                assert assignment is not None
                self._fail(slot, assignment, err)
            latest = self.assignments.device()
            if latest is None:
                return None
            assignment = latest.spec.models.get(slot)
        return self.clock()

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

    def _fail(self, slot: str, assignment: SlotAssignment, err: AgentError) -> None:
        failure = failure_after(
            self.failures.get(slot),
            key=assignment_key(assignment),
            reason=err.reason,
            message=err.message,
            retryable=err.reason in RETRYABLE,
            now=self.clock(),
            backoff=self.backoff,
        )
        self.failures[slot] = failure
        log.warning(
            "slot failed",
            slot=slot,
            revision=assignment.revision,
            reason=failure.reason,
            message=failure.message,
        )
