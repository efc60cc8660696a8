"""Builders for planner tests, and `Fleet`: a simulated fleet to run whole rollouts against.

`Fleet` plays both the handler (writes the plan's status, applies its actions to the devices'
spec.models) and the agents (on `tick`, every online device reports on its assignment:
Healthy, or Failed when its artifact is one of `fleet.bad`), so a test can drive a rollout
pass by pass with nothing but the pure planner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelfleet.api.base import LabelSelector
from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus, ModelRef, Strategy
from modelfleet.api.device import SlotAssignment, SlotStatus
from modelfleet.conditions import format_time
from modelfleet.operator.rollout.planner import (
    PROMOTE_ANNOTATION,
    Action,
    AssignRevision,
    DeviceView,
    Plan,
    RefreshUrl,
    ReleaseSlot,
    ResolvedArtifact,
    RollBack,
    plan_rollout,
    promotion_value,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAME = "detector"
UID = "0b6c9c4e-6c1e-4a55-9a0e-3f0e1f7c2a10"
LABELS = {"fleet": "cams"}


def sha(n: int) -> str:
    return hashlib.sha256(f"artifact-{n}".encode()).hexdigest()


def artifact(n: int = 1, *, size: int = 1000) -> ResolvedArtifact:
    return ResolvedArtifact(
        sha256=sha(n),
        format="onnx",
        uri=f"s3://models/artifacts/{n}/onnx/model.onnx",
        size_bytes=size,
        conversion="detector-v1",
        conversion_generation=n,
        probe_uri=f"s3://models/reports/{n}/onnx/probe.npz",
    )


def make_spec(
    *,
    waves: list[int | str] | None = None,
    max_in_flight: int | str = "100%",
    bake: int = 0,
    pause: str = "none",
    threshold: int = 10,
    timeout: int = 600,
    deadline: int = 3600,
    automatic: bool = True,
    paused: bool = False,
    slot: str | None = None,
    history_limit: int = 10,
) -> EdgeDeploymentSpec:
    return EdgeDeploymentSpec(
        model=ModelRef(conversion="detector-v1"),
        slot=slot,
        selector=LabelSelector(match_labels=LABELS),
        strategy=Strategy.model_validate(
            {
                "waves": waves if waves is not None else [1, "50%", "100%"],
                "maxInFlight": max_in_flight,
                "bakeSeconds": bake,
                "pause": pause,
                "failureThreshold": threshold,
                "deviceTimeoutSeconds": timeout,
                "progressDeadlineSeconds": deadline,
            }
        ),
        rollback={"automatic": automatic},
        revision_history_limit=history_limit,
        paused=paused,
    )


def assignment(revision: int, n: int | None = None, *, deployment: str = NAME) -> SlotAssignment:
    return SlotAssignment(
        deployment=deployment,
        revision=revision,
        format="onnx",
        url=f"https://minio.local/{revision}",
        sha256=sha(n if n is not None else revision),
        size_bytes=1000,
    )


def view(
    name: str,
    *,
    revision: int | None = None,
    n: int | None = None,
    active: int | None = None,
    target: int | None = None,
    phase: str = "Healthy",
    reason: str = "",
    online: bool = True,
    labels: Mapping[str, str] = LABELS,
    now: datetime = T0,
    deployment: str = NAME,
    slot: str = NAME,
) -> DeviceView:
    """One device: `revision` assigned in our slot, agent reporting `phase` on it."""
    models = {slot: assignment(revision, n, deployment=deployment)} if revision else {}
    slots: dict[str, SlotStatus] = {}
    if active is not None or target is not None:
        slots[slot] = SlotStatus(
            target_revision=target, active_revision=active, phase=phase, reason=reason
        )
    lease = now - timedelta(seconds=5) if online else now - timedelta(days=1)
    return DeviceView(
        name=name, labels=dict(labels), models=models, slots=slots, lease_renew_time=lease
    )


def healthy(name: str, revision: int, **kwargs: Any) -> DeviceView:
    return view(name, revision=revision, active=revision, target=revision, **kwargs)


def failed(name: str, revision: int, previous: int | None = None, **kwargs: Any) -> DeviceView:
    return view(
        name,
        revision=revision,
        active=previous,
        target=revision,
        phase="Failed",
        reason="ProbeMismatch",
        **kwargs,
    )


def pending(name: str, revision: int, previous: int | None = None, **kwargs: Any) -> DeviceView:
    return view(
        name, revision=revision, active=previous, target=revision, phase="Downloading", **kwargs
    )


def names(count: int, prefix: str = "cam") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


def plan(
    devices: Iterable[DeviceView],
    *,
    spec: EdgeDeploymentSpec | None = None,
    status: EdgeDeploymentStatus | None = None,
    art: ResolvedArtifact | None = None,
    now: datetime = T0,
    annotations: Mapping[str, str] | None = None,
    other_claims: Mapping[str, list[str]] | None = None,
    generation: int = 1,
) -> Plan:
    return plan_rollout(
        deployment_name=NAME,
        deployment_uid=UID,
        generation=generation,
        spec=spec or make_spec(),
        status=status,
        annotations=annotations or {},
        artifact=art,
        devices=list(devices),
        other_claims=other_claims or {},
        now=now,
    )


def progressing(status: EdgeDeploymentStatus) -> tuple[str, str]:
    """The Progressing condition's reason and message."""
    condition = next(c for c in status.conditions if c.type == "Progressing")
    return condition.reason, condition.message


def assigned(p: Plan) -> dict[str, int]:
    return {a.device: a.revision for a in p.actions if isinstance(a, AssignRevision)}


def rolled_back(p: Plan) -> dict[str, int]:
    return {a.device: a.to_revision for a in p.actions if isinstance(a, RollBack)}


# The simulated fleet.


@dataclass
class SimDevice:
    name: str
    labels: dict[str, str] = field(default_factory=lambda: dict(LABELS))
    models: dict[str, SlotAssignment] = field(default_factory=dict)
    slots: dict[str, SlotStatus] = field(default_factory=dict)
    online: bool = True
    lease: datetime | None = None
    created: datetime | None = None
    slow: int = 0
    """Ticks the agent needs per assignment, beyond the first."""
    busy: int = 0


@dataclass
class Fleet:
    spec: EdgeDeploymentSpec
    art: ResolvedArtifact | None = None
    now: datetime = T0
    devices: dict[str, SimDevice] = field(default_factory=dict)
    status: EdgeDeploymentStatus | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    """sha256s that fail their probe on every device."""
    bad_on: set[str] = field(default_factory=set)
    """Devices on which every new artifact fails."""
    plans: list[Plan] = field(default_factory=list)
    other_claims: dict[str, list[str]] = field(default_factory=dict)

    @property
    def slot(self) -> str:
        return self.spec.slot or NAME

    def add(self, *device_names: str, **kwargs: Any) -> None:
        for name in device_names:
            self.devices[name] = SimDevice(name, lease=self.now, created=self.now, **kwargs)

    def views(self) -> list[DeviceView]:
        return [
            DeviceView(
                name=d.name,
                labels=dict(d.labels),
                models=dict(d.models),
                slots=dict(d.slots),
                lease_renew_time=d.lease,
                created_at=d.created,
            )
            for d in self.devices.values()
        ]

    def plan(self) -> Plan:
        p = plan_rollout(
            deployment_name=NAME,
            deployment_uid=UID,
            generation=1,
            spec=self.spec,
            status=self.status,
            annotations=self.annotations,
            artifact=self.art,
            devices=self.views(),
            other_claims=self.other_claims,
            now=self.now,
        )
        self.plans.append(p)
        return p

    def apply(self, p: Plan) -> None:
        """What the handler does: write the status, then apply the actions."""
        self.status = p.status
        for action in p.actions:
            self.apply_action(action)

    def apply_action(self, action: Action) -> None:
        device = self.devices[action.device]
        match action:
            case (
                AssignRevision(revision=revision, artifact=ref)
                | RollBack(to_revision=revision, artifact=ref)
            ):
                device.models[action.slot] = SlotAssignment(
                    deployment=NAME,
                    revision=revision,
                    format=ref.format,
                    url=f"https://minio.local/{ref.sha256}",
                    url_expires_at=format_time(self.now + timedelta(hours=1)),
                    assigned_at=format_time(self.now),
                    sha256=ref.sha256,
                    size_bytes=ref.size_bytes or 0,
                )
            case RefreshUrl():
                old = device.models[action.slot]
                expires = format_time(self.now + timedelta(hours=1))
                device.models[action.slot] = old.model_copy(update={"url_expires_at": expires})
            case ReleaseSlot():
                device.models.pop(action.slot, None)

    def tick(self, seconds: float = 1) -> None:
        """Time passes; every online agent renews its lease and reports on its assignment."""
        self.now += timedelta(seconds=seconds)
        for device in self.devices.values():
            if not device.online:
                continue
            device.lease = self.now
            for slot, want in device.models.items():
                self._agent(device, slot, want)

    def _agent(self, device: SimDevice, slot: str, want: SlotAssignment) -> None:
        have = device.slots.get(slot, SlotStatus())
        if have.target_revision == want.revision and have.phase in ("Healthy", "Failed"):
            return
        if have.target_revision != want.revision:
            device.busy = device.slow
        stamp = format_time(self.now)
        if device.busy > 0:
            device.busy -= 1
            if have.target_revision != want.revision:  # reports once, then works quietly
                update = {"target_revision": want.revision, "phase": "Downloading"}
                device.slots[slot] = have.model_copy(update={**update, "last_update_time": stamp})
            return
        fails = want.sha256 in self.bad or (
            device.name in self.bad_on and want.sha256 != have.active_sha256
        )
        if fails:
            update = {
                "target_revision": want.revision,
                "phase": "Failed",
                "reason": "ProbeMismatch",
            }
            device.slots[slot] = have.model_copy(update={**update, "last_update_time": stamp})
            return
        device.slots[slot] = SlotStatus(
            target_revision=want.revision,
            active_revision=want.revision,
            active_sha256=want.sha256,
            previous_revision=have.active_revision,
            phase="Healthy",
            last_update_time=stamp,
        )

    def step(self, seconds: float = 1) -> Plan:
        """One pass: plan, apply, let time pass."""
        p = self.plan()
        self.apply(p)
        self.tick(seconds)
        return p

    def run(
        self,
        *,
        until: set[str] | None = None,
        steps: int = 200,
        seconds: float = 1,
        promote: bool = False,
    ) -> Plan:
        """Step until the phase is one of `until` and the plan has nothing left to do;
        with `promote`, promote every wave that waits for it, as an operator would."""
        done = until or {"Succeeded", "RolledBack", "Degraded"}
        for _ in range(steps):
            p = self.step(seconds)
            if p.status.phase in done and not p.actions and p.requeue_after != 0:
                return p
            if promote and p.status.phase == "Paused":
                self.promote()
        raise AssertionError(f"no {done} after {steps} steps: {self.status}")

    def promote(self) -> None:
        assert self.status is not None
        revision, wave = self.status.current_revision, self.status.wave
        assert revision is not None and wave is not None
        self.annotations[PROMOTE_ANNOTATION] = promotion_value(revision, wave)

    def revisions(self) -> dict[str, int | None]:
        return {
            name: (d.models[self.slot].revision if self.slot in d.models else None)
            for name, d in self.devices.items()
        }

    def active(self) -> dict[str, int | None]:
        return {
            name: (d.slots[self.slot].active_revision if self.slot in d.slots else None)
            for name, d in self.devices.items()
        }


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(spec=make_spec(), art=artifact(1))


def status_at(
    *,
    current: int,
    stable: int | None = None,
    wave: int = 0,
    started: datetime = T0,
    completed: datetime | None = None,
    phase: str = "Progressing",
) -> EdgeDeploymentStatus:
    """A status mid-rollout: revision n has artifact(n); the stable one has succeeded."""
    history = []
    for revision in sorted({r for r in (stable, current) if r is not None}):
        done = revision == stable
        history.append(
            {
                "revision": revision,
                "sha256": sha(revision),
                "format": "onnx",
                "uri": artifact(revision).uri,
                "startedAt": format_time(T0 - timedelta(days=2 if done else 0)),
                "finishedAt": format_time(T0 - timedelta(days=1)) if done else None,
                "outcome": "Succeeded" if done else "Progressing",
            }
        )
    return EdgeDeploymentStatus.model_validate(
        {
            "phase": phase,
            "slot": NAME,
            "currentRevision": current,
            "stableRevision": stable,
            "wave": wave,
            "waveStartedAt": format_time(started),
            "waveCompletedAt": format_time(completed) if completed else None,
            "history": history,
        }
    )
