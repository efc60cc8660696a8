"""Builders for the rollout planner's tests: `make_*` functions for its inputs, `plan` to run
it once, and readers of the plan it returns.

Revision n has `make_artifact(n)`; devices are labelled `LABELS`, so the default spec selects
them; device names from `names` (cam-000...) are visited in the planner's own hash order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelfleet.api.base import LabelSelector
from modelfleet.api.conversion import ArtifactStatus
from modelfleet.api.deployment import (
    EdgeDeploymentSpec,
    EdgeDeploymentStatus,
    ModelRef,
    Strategy,
    Variant,
)
from modelfleet.api.device import SlotAssignment, SlotStatus
from modelfleet.conditions import format_time
from modelfleet.operator.rollout.planner import (
    AssignRevision,
    DeviceView,
    Plan,
    ResolvedArtifact,
    RollBack,
    plan_rollout,
)
from modelfleet.operator.rollout.variants import MissingFormats, variant_artifacts

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAME = "detector"
UID = "0b6c9c4e-6c1e-4a55-9a0e-3f0e1f7c2a10"
LABELS = {"fleet": "cams"}


def sha(n: int) -> str:
    return hashlib.sha256(f"artifact-{n}".encode()).hexdigest()


def make_artifact(n: int = 1, *, size: int = 1000) -> ResolvedArtifact:
    return ResolvedArtifact(
        sha256=sha(n),
        format="onnx",
        uri=f"s3://models/artifacts/{n}/onnx/model.onnx",
        size_bytes=size,
        conversion="detector-v1",
        conversion_generation=n,
        probe_uri=f"s3://models/reports/{n}/onnx/probe.npz",
    )


def format_sha(n: int, fmt: str) -> str:
    """Revision n's artifact in `fmt`; onnx is make_artifact(n)'s."""
    return sha(n) if fmt == "onnx" else hashlib.sha256(f"artifact-{n}-{fmt}".encode()).hexdigest()


def make_conversion_artifacts(
    n: int, formats: Iterable[str] = ("onnx", "onnx-fp16", "onnx-int8")
) -> list[ArtifactStatus]:
    """What the conversion's status lists for revision n's generation."""
    return [
        ArtifactStatus.model_validate(
            {
                "format": fmt,
                "uri": f"s3://models/artifacts/{n}/{fmt}/model.onnx",
                "sha256": format_sha(n, fmt),
                "sizeBytes": 1000,
                "manifestUri": f"s3://models/artifacts/{n}/{fmt}/manifest.json",
                "probeUri": f"s3://models/reports/{n}/{fmt}/probe.npz",
            }
        )
        for fmt in formats
    ]


def make_variant(name: str, labels: Mapping[str, str], fmt: str = "onnx", **fields: Any) -> Variant:
    """A variant for devices labelled `labels`; `fields` in camelCase (runtime, tolerance)."""
    return Variant.model_validate(
        {"name": name, "selector": {"matchLabels": dict(labels)}, "format": fmt, **fields}
    )


def make_release(n: int, spec: EdgeDeploymentSpec) -> ResolvedArtifact:
    """make_artifact(n) with each of the spec's variants resolved in revision n."""
    variants = variant_artifacts(spec, make_conversion_artifacts(n), conversion="detector-v1")
    assert not isinstance(variants, MissingFormats)
    return replace(make_artifact(n), variants=variants)


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
    variants: Iterable[Variant] = (),
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
        variants=list(variants),
    )


def make_assignment(
    revision: int, n: int | None = None, *, deployment: str = NAME
) -> SlotAssignment:
    return SlotAssignment(
        deployment=deployment,
        revision=revision,
        format="onnx",
        url=f"https://minio.local/{revision}",
        sha256=sha(n if n is not None else revision),
        size_bytes=1000,
    )


def make_view(
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
    models = {slot: make_assignment(revision, n, deployment=deployment)} if revision else {}
    slots: dict[str, SlotStatus] = {}
    if active is not None or target is not None:
        slots[slot] = SlotStatus(
            target_revision=target, active_revision=active, phase=phase, reason=reason
        )
    lease = now - timedelta(seconds=5) if online else now - timedelta(days=1)
    return DeviceView(
        name=name, labels=dict(labels), models=models, slots=slots, lease_renew_time=lease
    )


def make_healthy(name: str, revision: int, **kwargs: Any) -> DeviceView:
    return make_view(name, revision=revision, active=revision, target=revision, **kwargs)


def make_failed(name: str, revision: int, previous: int | None = None, **kwargs: Any) -> DeviceView:
    return make_view(
        name,
        revision=revision,
        active=previous,
        target=revision,
        phase="Failed",
        reason="ProbeMismatch",
        **kwargs,
    )


def make_pending(
    name: str, revision: int, previous: int | None = None, **kwargs: Any
) -> DeviceView:
    return make_view(
        name, revision=revision, active=previous, target=revision, phase="Downloading", **kwargs
    )


def names(count: int, prefix: str = "cam") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


def make_status(
    *,
    current: int,
    stable: int | None = None,
    wave: int = 0,
    started: datetime = T0,
    completed: datetime | None = None,
    phase: str = "Progressing",
) -> EdgeDeploymentStatus:
    """A status mid-rollout, its history as the planner records it: revision n has
    make_artifact(n); the stable one has succeeded."""
    history = []
    for revision in sorted({r for r in (stable, current) if r is not None}):
        done = revision == stable
        history.append(
            {
                "revision": revision,
                "sha256": sha(revision),
                "format": "onnx",
                "uri": make_artifact(revision).uri,
                "sizeBytes": make_artifact(revision).size_bytes,
                "probeUri": make_artifact(revision).probe_uri,
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


# Running the planner once and reading its plan.


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
    unresolved: tuple[str, str] | None = None,
) -> Plan:
    """One pass; `unresolved`: (reason, message) of a spec that resolves to no artifact."""
    reason, message = unresolved or ("WaitingForArtifact", "")
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
        unresolved_message=message,
        unresolved_reason=reason,
    )


def progressing(status: EdgeDeploymentStatus) -> tuple[str, str]:
    """The Progressing condition's reason and message."""
    condition = next(c for c in status.conditions if c.type == "Progressing")
    return condition.reason, condition.message


def assigned(p: Plan) -> dict[str, int]:
    return {a.device: a.revision for a in p.actions if isinstance(a, AssignRevision)}


def rolled_back(p: Plan) -> dict[str, int]:
    return {a.device: a.to_revision for a in p.actions if isinstance(a, RollBack)}
