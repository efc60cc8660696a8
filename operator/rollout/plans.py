"""The rollout planner's output: a `Plan` (new status + actions), which the handler applies.

Actions are data, nothing more: the EdgeDeployment handler presigns the artifact's URLs and
patches `EdgeDevice.spec.models[slot]`. Each action names one device and one slot; a plan
never holds two actions for the same device and slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelfleet.api.conversion import Tolerance
from modelfleet.api.deployment import EdgeDeploymentStatus
from modelfleet.api.device import RuntimeRequest


@dataclass(frozen=True)
class ArtifactRef:
    """Which bytes a device should run. The handler presigns `uri` and `probe_uri`.

    `probe_uri` is None for an artifact without a probe (a pinned artifact stored outside the
    artifact layout). `size_bytes` is None only for a history record without `sizeBytes`,
    which the schema allows but this operator never writes. `variant`, `runtime` and
    `tolerance` are the device's variant's (variants.py); None for the default.
    """

    sha256: str
    uri: str
    format: str
    size_bytes: int | None = None
    probe_uri: str | None = None
    variant: str | None = None
    runtime: RuntimeRequest | None = None
    tolerance: Tolerance | None = None


@dataclass(frozen=True)
class AssignRevision:
    """Point the device's slot at `revision`: the rollout's, or the stable one to catch up."""

    device: str
    slot: str
    revision: int
    artifact: ArtifactRef


@dataclass(frozen=True)
class RollBack:
    """Point the device's slot back from `from_revision` to the stable `to_revision`."""

    device: str
    slot: str
    from_revision: int
    to_revision: int
    artifact: ArtifactRef


@dataclass(frozen=True)
class RefreshUrl:
    """Presign the device's current assignment again: its URLs expire before it is done."""

    device: str
    slot: str
    revision: int
    artifact: ArtifactRef


@dataclass(frozen=True)
class ReleaseSlot:
    """Remove this deployment's assignment from the device's slot: it is no longer targeted."""

    device: str
    slot: str


Action = AssignRevision | RollBack | RefreshUrl | ReleaseSlot


@dataclass(frozen=True)
class Plan:
    """Write `status` first, then apply `actions`; plan again after `requeue_after` seconds.

    The status carries the decisions (a new revision, the wave, an abort), so if applying the
    actions is interrupted the next pass derives them again. Applying them first could lose
    an abort: rolled-back devices would look as if they had never moved.
    """

    status: EdgeDeploymentStatus
    actions: tuple[Action, ...]
    requeue_after: float | None
    """Seconds until a timer (bake, device timeout, deadline) is due; None: wait for events."""
