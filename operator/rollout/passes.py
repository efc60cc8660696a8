"""What one planning pass reads and what each of its steps decides, shared by the planner's steps.

`plan_rollout` (planner.py) builds a `Context` once per pass; the steps (wave_steps.py,
aborts.py, stable_keeping.py) each return a `Decision`: the rollout's progress, a `Verdict`
(the phase and the Progressing condition), the actions and the timers; status_assembly.py
turns the final decision into the `Plan`. All of it is immutable data: no client, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelfleet.api.base import ConditionStatus
from modelfleet.api.deployment import DeploymentPhase, EdgeDeploymentSpec, EdgeDeploymentStatus
from modelfleet.operator.rollout.plans import Action
from modelfleet.operator.rollout.revisions import ResolvedArtifact, RolloutProgress


@dataclass(frozen=True)
class Context:
    """The inputs of one pass, read by every step; never changed within the pass."""

    name: str
    uid: str
    generation: int | None
    spec: EdgeDeploymentSpec
    previous: EdgeDeploymentStatus
    slot: str
    artifact: ResolvedArtifact | None
    annotations: Mapping[str, str]
    now: datetime

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.spec.strategy.device_timeout_seconds)


@dataclass(frozen=True)
class Verdict:
    """The phase and the Progressing condition."""

    phase: DeploymentPhase
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    progress: RolloutProgress
    verdict: Verdict
    actions: tuple[Action, ...] = ()
    timers: tuple[float, ...] = ()
    """Seconds until something the decision waits for is due (bake, deadline, next step)."""
