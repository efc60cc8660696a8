"""What the fault cases share: the fleet's size, the rollout strategy, pinned artifacts, and the
one deployment whose revisions the rollout and pause cases move."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelfleet.conditions import parse_time
from support.fleet import Artifact
from support.operator import wait_for
from support.recorders import AssignmentLog, LinkWatch
from support.rollouts import Rollouts, assignment_of, slot_of

AGENTS = 4
WAVES = [1, "50%", "100%"]
"""1, 2 and 4 devices of 4."""
BAKE = 3
STRATEGY = {"waves": WAVES, "maxInFlight": "100%", "bakeSeconds": BAKE}


@dataclass
class Deployment:
    """One EdgeDeployment pinned to artifacts the test publishes, and every artifact it had."""

    rollouts: Rollouts
    name: str
    published: dict[str, Artifact] = field(default_factory=dict)

    @property
    def slot(self) -> str:
        return self.name

    def publish(
        self, label: str, *, shift: float, bad_probe: bool = False, padding: int = 0
    ) -> Artifact:
        """A new artifact; `bad_probe`: its probe disagrees, so devices refuse it."""
        artifact = self.rollouts.fleet.publish(
            f"{self.name}-{label}",
            weight_shift=shift,
            padding=padding,
            probe_shift=shift + (1.0 if bad_probe else 0.0),
            layout=True,
        )
        self.published[artifact.sha256] = artifact
        return artifact

    def model(self, artifact: Artifact) -> dict[str, Any]:
        return {"uri": self.rollouts.fleet.storage.uri(artifact.key), "sha256": artifact.sha256}

    def pin(self, artifact: Artifact, **strategy: Any) -> None:
        spec: dict[str, Any] = {"model": self.model(artifact)}
        if strategy:
            spec["strategy"] = strategy
        self.rollouts.patch(self.name, {"spec": spec})

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.rollouts.deployment(self.name).get("status") or {}
        return found

    def devices(self) -> list[dict[str, Any]]:
        return self.rollouts.devices()

    def on_revision(self, revision: int) -> list[str]:
        """Devices whose assignment names `revision` now."""
        return sorted(
            d["metadata"]["name"]
            for d in self.devices()
            if assignment_of(d, self.slot).get("revision") == revision
        )

    def settle(self, phase: str, revision: int, timeout: float = 120) -> dict[str, Any]:
        """Until the deployment reaches `phase` for its current generation, at `revision`
        (the stable one once Succeeded; the one rolled back once RolledBack)."""

        def reached(body: dict[str, Any]) -> bool:
            status = body.get("status") or {}
            at = status.get("stableRevision") if phase == "Succeeded" else None
            history = {r["revision"]: r for r in status.get("history", [])}
            rolled = history.get(revision, {}).get("outcome") == "RolledBack"
            return (
                status.get("phase") == phase
                and status.get("observedGeneration") == body["metadata"]["generation"]
                and (at == revision if phase == "Succeeded" else rolled or phase != "RolledBack")
            )

        done = wait_for(
            lambda: self.rollouts.deployment(self.name),
            reached,
            timeout=timeout,
            what=f"edgedeployment/{self.name} {phase} at revision {revision}",
        )
        found: dict[str, Any] = done["status"]
        return found

    def artifact_of(self, revision: int) -> Artifact:
        record = next(r for r in self.status()["history"] if r["revision"] == revision)
        return self.published[record["sha256"]]

    def assignments(self) -> AssignmentLog:
        return AssignmentLog(self.rollouts.fleet.api, self.rollouts.namespace)

    def watch(self) -> LinkWatch:
        dirs = [self.rollouts.fleet.root / d["metadata"]["name"] / "data" for d in self.devices()]
        return LinkWatch(dirs, self.published.keys(), slot=self.slot)


def make_deployment(rollouts: Rollouts, name: str, **spec: Any) -> Deployment:
    """Create the deployment on a first artifact and wait until every device runs it."""
    deployment = Deployment(rollouts, name)
    first = deployment.publish("base", shift=0.0)
    rollouts.deploy(name, "", **{"model": deployment.model(first), "strategy": STRATEGY, **spec})
    deployment.settle("Succeeded", 1)
    return deployment


def healthy_on(deployment: Deployment, artifact: Artifact, devices: int) -> list[dict[str, Any]]:
    """Until `devices` devices report the slot Healthy on the artifact (and return all)."""

    def check() -> dict[str, Any]:
        items = deployment.devices()
        healthy = [
            d
            for d in items
            if slot_of(d, deployment.slot).get("phase") == "Healthy"
            and slot_of(d, deployment.slot).get("activeSha256") == artifact.sha256
        ]
        return {"items": items if len(healthy) >= devices else None}

    found: list[dict[str, Any]] = wait_for(
        check, lambda r: r["items"] is not None, what=f"{devices} devices on {artifact.sha256[:8]}"
    )["items"]
    return found


def assert_loadable(deployment: Deployment) -> None:
    """Every device's `current` model of the slot opens in ONNX Runtime."""
    import onnxruntime as ort

    fleet = deployment.rollouts.fleet
    for device in deployment.devices():
        link = fleet.current(device["metadata"]["name"], deployment.slot)
        ort.InferenceSession(str(link), providers=["CPUExecutionProvider"])


def assignment_waves(deployment: Deployment, revision: int) -> list[int]:
    """Cumulative device counts per burst of assignments of `revision`: the waves as they
    happened. One wave's patches land within a second; waves are at least BAKE seconds apart
    (timestamps have second precision, so such a gap stays at least BAKE - 1 apart)."""
    slot = deployment.slot
    moments = sorted(
        parse_time(assignment_of(d, slot)["assignedAt"])
        for d in deployment.devices()
        if assignment_of(d, slot).get("revision") == revision
    )
    counts = [
        index
        for index in range(1, len(moments))
        if (moments[index] - moments[index - 1]).total_seconds() >= BAKE - 1
    ]
    return [*counts, len(moments)]


def no_double_assignment(log: AssignmentLog, deployment: Deployment) -> None:
    assert log.rewrites(deployment.slot) == [], "an assignment was written twice for a revision"


def summary(status: dict[str, Any]) -> str:
    """The status in one line for the matrix: phase, revisions and the Progressing message."""
    progressing = next(
        (c for c in status.get("conditions", []) if c["type"] == "Progressing"), None
    )
    said = f": {progressing['reason']}: {progressing['message']}" if progressing else ""
    return (
        f"{status.get('phase')} current {status.get('currentRevision')} "
        f"stable {status.get('stableRevision')}{said}"
    )[:300]
