"""What the rollout planner sees of the fleet: devices, their state on a revision, counts.

The handler builds one `DeviceView` per EdgeDevice (with its Lease's renewTime); `survey`
turns them into the deployment's targeted devices in rollout order, plus the devices another
deployment also claims and the devices to release.

Per device, relative to the revision it is assigned in our slot:
- assigned R: `spec.models[slot].revision == R`, written by this deployment;
- healthy on R: `status.slots[slot]` has `activeRevision == R` and phase Healthy;
- failed on R: `targetRevision == R` and phase Failed;
- timed out on R: neither, `deviceTimeoutSeconds` after it was assigned R (the assignment's
  `assignedAt`; where that is missing, after the agent last reported on R); counted failed;
- pending on R: otherwise;
- offline: Lease renewed (before the first heartbeat: device created) more than
  `deviceTimeoutSeconds` ago, or never. Offline is independent of the above.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelfleet.api.base import LabelSelector
from modelfleet.api.deployment import DeviceCounts
from modelfleet.api.device import EdgeDevice, SlotAssignment, SlotStatus
from modelfleet.conditions import as_utc, parse_time
from modelfleet.operator.rollout.ordering import rollout_order, selector_matches

State = Literal["healthy", "failed", "timed_out", "pending"]
TIMEOUT = "Timeout"
"""The failure reason of a device that timed out."""


@dataclass(frozen=True)
class DeviceView:
    """What the planner needs of one EdgeDevice and its Lease."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, SlotAssignment] = field(default_factory=dict)
    slots: Mapping[str, SlotStatus] = field(default_factory=dict)
    lease_renew_time: datetime | None = None
    created_at: datetime | None = None

    @classmethod
    def of(
        cls,
        device: EdgeDevice,
        *,
        lease_renew_time: datetime | None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
    ) -> DeviceView:
        """From an EdgeDevice and its Lease's renewTime (None: no Lease yet). Name, labels and
        creation time default to the device's metadata."""
        metadata = device.metadata
        created = metadata.get("creationTimestamp")
        if created_at is None and isinstance(created, str):
            created_at = parse_time(created)
        return cls(
            name=name if name is not None else str(metadata.get("name", "")),
            labels=dict(labels if labels is not None else metadata.get("labels") or {}),
            models=dict(device.spec.models),
            slots=dict(device.status.slots) if device.status else {},
            lease_renew_time=lease_renew_time,
            created_at=created_at,
        )


@dataclass(frozen=True)
class Device:
    """One targeted device in this pass, relative to the revision it is assigned (if any)."""

    view: DeviceView
    revision: int | None
    online: bool
    state: State | None
    reason: str
    since: datetime | None
    """When its time on the revision started; it times out `deviceTimeoutSeconds` later."""
    name: str = field(init=False)
    """The view's, copied: a planning pass asks every device's name several times."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.view.name)

    @property
    def heartbeat(self) -> datetime | None:
        return self.view.lease_renew_time or self.view.created_at

    @property
    def failed(self) -> bool:
        return self.state in ("failed", "timed_out")


@dataclass(frozen=True)
class Survey:
    targeted: list[Device]
    """Devices the deployment rolls out to, in rollout order."""
    conflicts: list[tuple[str, list[str]]]
    """Selected devices skipped because other deployments claim the slot, with their names."""
    releases: list[tuple[str, str]]
    """(device, slot) holding this deployment's assignment that it no longer targets."""
    highest_revision: int = 0
    """The highest revision of this deployment that any device holds."""


def survey(
    devices: Sequence[DeviceView],
    *,
    deployment: str,
    uid: str,
    selector: LabelSelector,
    slot: str,
    other_claims: Mapping[str, Collection[str]],
    timeout: timedelta,
    now: datetime,
) -> Survey:
    targeted: list[Device] = []
    conflicts: list[tuple[str, list[str]]] = []
    releases: list[tuple[str, str]] = []
    for view in rollout_order(uid, devices):
        if not selector_matches(selector, view.labels):
            if _holds(view, slot, deployment):
                releases.append((view.name, slot))
            continue
        claimants = set(other_claims.get(view.name, ())) - {deployment}
        assignment = view.models.get(slot)
        if assignment is not None and assignment.deployment != deployment:
            claimants.add(assignment.deployment)
        if claimants:
            conflicts.append((view.name, sorted(claimants)))
            continue
        revision = assignment.revision if assignment is not None else None
        targeted.append(observe(view, slot, revision, timeout=timeout, now=now))
    highest = max(
        (a.revision for v in devices for a in v.models.values() if a.deployment == deployment),
        default=0,
    )
    return Survey(targeted, conflicts, releases, highest)


def observe(
    view: DeviceView,
    slot: str,
    revision: int | None,
    *,
    timeout: timedelta,
    now: datetime,
    assigned_now: bool = False,
) -> Device:
    """The device's state on `revision`; `assigned_now` when this pass assigns it."""
    heartbeat = view.lease_renew_time or view.created_at
    online = heartbeat is not None and now - as_utc(heartbeat) <= timeout
    status = view.slots.get(slot)
    if revision is None:
        return Device(view, None, online, None, "", None)
    if status is not None and status.active_revision == revision and status.phase == "Healthy":
        return Device(view, revision, online, "healthy", "", None)
    if status is not None and status.target_revision == revision and status.phase == "Failed":
        return Device(view, revision, online, "failed", status.reason or "Failed", None)
    since = now if assigned_now else _since(view, slot, revision)
    if since is not None and now - since > timeout:
        return Device(view, revision, online, "timed_out", TIMEOUT, since)
    return Device(view, revision, online, "pending", "", since)


def count(devices: Sequence[Device], current: int | None) -> DeviceCounts:
    """The status counts. healthy and failed: on whatever each device is assigned; updated and
    inFlight: on the current revision; healthy, failed and inFlight count online devices only."""
    online = [d for d in devices if d.online]
    return DeviceCounts(
        targeted=len(devices),
        updated=sum(1 for d in devices if current is not None and d.revision == current),
        healthy=sum(1 for d in online if d.state == "healthy"),
        failed=sum(1 for d in online if d.failed),
        in_flight=sum(1 for d in online if d.revision == current and d.state == "pending"),
        offline=len(devices) - len(online),
    )


def assigned_at(view: DeviceView, slot: str) -> datetime | None:
    """When the slot's current assignment was written, where known."""
    assignment = view.models.get(slot)
    if assignment is not None and assignment.assigned_at:
        return parse_time(assignment.assigned_at)
    return None


def _holds(view: DeviceView, slot: str, deployment: str) -> bool:
    assignment = view.models.get(slot)
    return assignment is not None and assignment.deployment == deployment


def _since(view: DeviceView, slot: str, revision: int) -> datetime | None:
    assigned = assigned_at(view, slot)
    if assigned is not None:
        return assigned
    status = view.slots.get(slot)
    if status is not None and status.target_revision == revision and status.last_update_time:
        return parse_time(status.last_update_time)
    return None
