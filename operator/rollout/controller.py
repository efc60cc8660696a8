"""The EdgeDeployment controller: gathers what the rollout planner needs, applies its plan.

Per pass: read the deployment, resolve `spec.model` to an approved artifact, take the devices
and leases from the operator's fleet cache (list-and-watches: operator/rollout/fleet_cache.py;
a restart rebuilds it), find slot claims of other deployments, plan, write the status once if
it changed, then apply the actions: presigned, time-limited URLs go into
`EdgeDevice.spec.models[slot]`. Nothing else is written; the next event or timer continues.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import GROUP, VERSION, LabelSelector
from modelfleet.api.conversion import ModelConversion
from modelfleet.api.deployment import EdgeDeployment, EdgeDeploymentSpec
from modelfleet.api.device import EdgeDevice, SlotAssignment
from modelfleet.artifacts import MODEL_FILE, ArtifactKeys
from modelfleet.conditions import format_time
from modelfleet.kube import read_live
from modelfleet.logs import get_logger
from modelfleet.operator import metrics
from modelfleet.operator.conversion.conditions import READY as CONVERSION_READY
from modelfleet.operator.events import EventRecorder
from modelfleet.operator.rollout.expectations import Expectations
from modelfleet.operator.rollout.ordering import selector_matches
from modelfleet.operator.rollout.planner import (
    Action,
    ArtifactRef,
    DeviceView,
    Plan,
    RefreshUrl,
    ReleaseSlot,
    ResolvedArtifact,
    RollBack,
    plan_rollout,
)
from modelfleet.storage import Storage, parse_s3_uri

log = get_logger(__name__)
URL_TTL = dt.timedelta(hours=6)


@dataclass(frozen=True)
class DeploymentClaim:
    """What another deployment claims: its slot and selector (from the fleet cache)."""

    name: str
    slot: str
    selector: LabelSelector


def other_claims(
    name: str, slot: str, devices: Iterable[DeviceView], claims: Iterable[DeploymentClaim]
) -> dict[str, list[str]]:
    """device → other deployments whose selector also picks it for the same slot."""
    rivals = [c for c in claims if c.name != name and c.slot == slot]
    found: dict[str, list[str]] = {}
    for device in devices:
        names = [c.name for c in rivals if selector_matches(c.selector, device.labels)]
        if names:
            found[device.name] = sorted(names)
    return found


def resolve_artifact(
    api: client.ApiClient, storage: Storage, namespace: str, spec: EdgeDeploymentSpec
) -> tuple[ResolvedArtifact | None, str]:
    """The approved artifact `spec.model` names right now, or None and why not."""
    model = spec.model
    if model.uri and model.sha256:
        bucket, key = parse_s3_uri(model.uri)
        listing = storage.stat_prefix(key, bucket=bucket)
        if key not in listing:
            return None, f"pinned artifact {model.uri} not found"
        probe = _layout_probe(storage, bucket, key)
        size = listing[key][0]
        return ResolvedArtifact(model.sha256, model.format, model.uri, size, probe_uri=probe), ""
    assert model.conversion is not None
    try:
        raw = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, ModelConversion.PLURAL, model.conversion
        )
    except ApiException as err:
        if err.status == 404:
            return None, f"ModelConversion {model.conversion} not found"
        raise
    status = raw.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == CONVERSION_READY), None)
    current = status.get("observedGeneration") == raw["metadata"]["generation"]
    if not ready or ready["status"] != "True" or not current:
        phase = status.get("phase", "Pending")
        reason = f": {ready['reason']}" if ready else ""
        return None, f"ModelConversion {model.conversion} is {phase}{reason}, not approved"
    artifact = next((a for a in status.get("artifacts", []) if a["format"] == model.format), None)
    if artifact is None:
        return None, f"ModelConversion {model.conversion} has no {model.format} artifact"
    return (
        ResolvedArtifact(
            sha256=artifact["sha256"],
            format=model.format,
            uri=artifact["uri"],
            size_bytes=artifact["sizeBytes"],
            conversion=model.conversion,
            conversion_generation=raw["metadata"]["generation"],
            probe_uri=artifact.get("probeUri"),
        ),
        "",
    )


def _layout_probe(storage: Storage, bucket: str, key: str) -> str | None:
    """A pinned artifact stored in the content-addressed layout still has its probe."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "artifacts" or parts[3] != MODEL_FILE:
        return None
    probe = ArtifactKeys.for_target(parts[1], parts[2]).probe  # type: ignore[arg-type]
    return storage.uri(probe, bucket=bucket) if storage.exists(probe, bucket=bucket) else None


@dataclass
class DeploymentController:
    storage: Storage
    api: client.ApiClient
    writers: int = 8
    """Device patches in flight at once: a wave of hundreds of assignments at one PATCH after
    the other was capped at 20-50/s by apiserver latency (bench/FINDINGS.md). Stays below the
    kubernetes client's connection pool (10)."""
    expectations: Expectations = field(default_factory=Expectations)
    _pool: ThreadPoolExecutor = field(init=False)
    _events: EventRecorder = field(init=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="device-writer")
        self._events = EventRecorder(self.api)

    def reconcile(
        self,
        namespace: str,
        name: str,
        *,
        devices: list[DeviceView],
        claims: list[DeploymentClaim],
        now: dt.datetime,
    ) -> float | None:
        """One pass; returns seconds until the planner wants to look again."""
        raw = read_live(self.api, EdgeDeployment.PLURAL, namespace, name)
        if raw is None:
            return None
        deployment = EdgeDeployment.model_validate(raw)
        slot = deployment.spec.slot or name
        artifact, why = resolve_artifact(self.api, self.storage, namespace, deployment.spec)
        devices = self.expectations.overlay(namespace, devices, now=time.monotonic())
        plan = plan_rollout(
            deployment_name=name,
            deployment_uid=raw["metadata"]["uid"],
            generation=raw["metadata"]["generation"],
            spec=deployment.spec,
            status=deployment.status,
            annotations=raw["metadata"].get("annotations") or {},
            artifact=artifact,
            devices=devices,
            other_claims=other_claims(name, slot, devices, claims),
            now=now,
            unresolved_message=why,
        )
        self._write_status(namespace, name, raw.get("status") or {}, plan)
        self._events.record(raw, raw.get("status"), plan.status.to_wire())
        counts = plan.status.counts.to_wire()
        metrics.record_deployment(namespace, name, plan.status.phase, counts)
        views = {d.name: d for d in devices}
        applied = self._pool.map(
            lambda action: self._apply(namespace, name, action, now, views.get(action.device)),
            plan.actions,
        )
        for _ in applied:  # re-raises the first failed write once all have been tried
            pass
        return plan.requeue_after

    def _write_status(self, namespace: str, name: str, current: dict[str, Any], plan: Plan) -> None:
        if {k: v for k, v in current.items() if k != "kopf"} == plan.status.to_wire():
            return
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            EdgeDeployment.PLURAL,
            name,
            {"status": plan.status.to_merge_patch()},
        )

    def _presign(self, uri: str | None) -> str | None:
        if not uri:
            return None
        bucket, key = parse_s3_uri(uri)
        return self.storage.presigned_get_url(key, bucket=bucket, expires=URL_TTL)

    def _apply(
        self,
        namespace: str,
        deployment: str,
        action: Action,
        now: dt.datetime,
        view: DeviceView | None,
    ) -> None:
        assignment: SlotAssignment | None = None
        if not isinstance(action, ReleaseSlot):
            assigned_at = format_time(now)
            held = view.models.get(action.slot) if view else None
            if isinstance(action, RefreshUrl) and held and held.assigned_at:
                assigned_at = held.assigned_at
            assignment = self._assignment(deployment, action, now, assigned_at)
        wire = assignment.to_wire() if assignment else None
        patch = {"spec": {"models": {action.slot: wire}}}
        try:
            client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, EdgeDevice.PLURAL, action.device, patch
            )
        except ApiException as err:
            if err.status != 404:
                raise
            log.info("device vanished", device=action.device)
            return
        self.expectations.expect(
            (namespace, action.device), action.slot, assignment, now=time.monotonic()
        )

    def _assignment(
        self,
        deployment: str,
        action: Action,
        now: dt.datetime,
        assigned_at: str,
    ) -> SlotAssignment:
        """A SlotAssignment with freshly presigned URLs; a refresh keeps the assignment time."""
        assert not isinstance(action, ReleaseSlot)
        revision = action.to_revision if isinstance(action, RollBack) else action.revision
        artifact: ArtifactRef = action.artifact
        url = self._presign(artifact.uri)
        assert url is not None
        return SlotAssignment(
            deployment=deployment,
            revision=revision,
            format=artifact.format,
            url=url,
            url_expires_at=format_time(now + URL_TTL),
            sha256=artifact.sha256,
            size_bytes=artifact.size_bytes or 0,
            probe_url=self._presign(artifact.probe_uri),
            assigned_at=assigned_at,
        )
