"""`Fleet`: a simulated fleet to run whole rollouts against, with nothing but the pure planner.

`Fleet` plays both the handler (writes the plan's status, applies its actions to the devices'
spec.models) and the agents (on `tick`, every online device reports on its assignment:
Healthy, or Failed when its artifact is one of `fleet.bad`), so a test can drive a rollout
pass by pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus
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
from tests.unit.planner.builders import LABELS, NAME, T0, UID


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
                    runtime=ref.runtime,
                    variant=ref.variant,
                    tolerance=ref.tolerance,
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
