"""The EdgeDeployment controller: gathers what the rollout planner needs, applies its plan.

Per pass: read the deployment, resolve `spec.model` to an approved artifact whose stored bytes
still match (operator/integrity.py), take the devices and leases from the operator's fleet
cache (list-and-watches: operator/rollout/fleet_cache.py; a restart rebuilds it), find slot
claims of other deployments, plan, write the status once if it changed, then apply the actions:
presigned, time-limited URLs go into `EdgeDevice.spec.models[slot]`. Events: phase transitions
(operator/events.py) and aggregated device failures (device_events.py). Nothing else is
written; the next event or timer continues.
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
from modelfleet.errors import describe
from modelfleet.kube import OPERATOR_FIELD_MANAGER, read_live
from modelfleet.logs import get_logger
from modelfleet.operator import metrics
from modelfleet.operator.events import NOTE_LIMIT, EventRecorder, PhaseEvent
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED, IntegrityChecker, intact_actions
from modelfleet.operator.rollout.conditions import WAITING_FOR_ARTIFACT
from modelfleet.operator.rollout.device_events import DeviceFailureEvents
from modelfleet.operator.rollout.expectations import Expectations
from modelfleet.operator.rollout.ordering import selector_matches
from modelfleet.operator.rollout.pacing import Pacing
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
from modelfleet.operator.rollout.resolution import (
    Resolution,
    conversion_artifact,
    waiting,
)
from modelfleet.operator.rollout.status_assembly import progress_only
from modelfleet.storage import Storage, StorageError, parse_s3_uri

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
) -> Resolution:
    """The approved artifacts `spec.model` and `spec.variants` name right now, or why not."""
    model = spec.model
    if model.uri and model.sha256:
        bucket, key = parse_s3_uri(model.uri)
        listing = storage.stat_prefix(key, bucket=bucket)
        if key not in listing:
            return waiting(f"pinned artifact {model.uri} not found")
        probe = _layout_probe(storage, bucket, key)
        size = listing[key][0]
        return Resolution(
            ResolvedArtifact(model.sha256, model.format, model.uri, size, probe_uri=probe)
        )
    assert model.conversion is not None
    try:
        raw = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, ModelConversion.PLURAL, model.conversion
        )
    except ApiException as err:
        if err.status == 404:
            return waiting(f"ModelConversion {model.conversion} not found")
        raise
    return conversion_artifact(raw, spec)


def _layout_probe(storage: Storage, bucket: str, key: str) -> str | None:
    """A pinned artifact stored in the content-addressed layout still has its probe."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "artifacts" or parts[3] != MODEL_FILE:
        return None
    probe = ArtifactKeys.for_target(parts[1], parts[2]).probe  # type: ignore[arg-type]
    return storage.uri(probe, bucket=bucket) if storage.exists(probe, bucket=bucket) else None


WRITERS = 32


@dataclass
class DeploymentController:
    storage: Storage
    api: client.ApiClient
    writers: int = WRITERS
    """Device patches in flight at once: a wave of hundreds of assignments at one PATCH after
    the other was capped at 20-50/s by apiserver latency, and 8 at once at about half of what
    a plain client got from the same apiserver (bench/FINDINGS.md §1.A). The client's
    connection pool must hold them (`api_client(connections=...)`)."""
    expectations: Expectations = field(default_factory=Expectations)
    integrity: IntegrityChecker | None = None
    """Shared with the conversion controller (one hash cache); None: a checker of its own."""
    _pool: ThreadPoolExecutor = field(init=False)
    _events: EventRecorder = field(init=False)
    _device_events: DeviceFailureEvents = field(init=False)
    _blocked: set[tuple[str, int]] = field(default_factory=set)
    """(deployment uid, revision) whose corrupted artifact an Event already reported."""
    pacing: Pacing = field(default_factory=Pacing)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.writers, thread_name_prefix="device-writer")
        self._events = EventRecorder(self.api)
        self._device_events = DeviceFailureEvents(self._events)
        if self.integrity is None:
            self.integrity = IntegrityChecker(self.storage)

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
        started = time.monotonic()
        raw = read_live(self.api, EdgeDeployment.PLURAL, namespace, name)
        if raw is None:
            self.pacing.forget((namespace, name))
            return None
        deployment = EdgeDeployment.model_validate(raw)
        slot = deployment.spec.slot or name
        resolution = self._verified(
            resolve_artifact(self.api, self.storage, namespace, deployment.spec)
        )
        devices = self.expectations.overlay(namespace, devices, now=time.monotonic())
        plan = plan_rollout(
            deployment_name=name,
            deployment_uid=raw["metadata"]["uid"],
            generation=raw["metadata"]["generation"],
            spec=deployment.spec,
            status=deployment.status,
            annotations=raw["metadata"].get("annotations") or {},
            artifact=resolution.artifact,
            devices=devices,
            other_claims=other_claims(name, slot, devices, claims),
            now=now,
            unresolved_message=resolution.message,
            unresolved_reason=resolution.reason or WAITING_FOR_ARTIFACT,
        )
        planning_s = time.monotonic() - started
        deferred = self._write_status(namespace, name, raw.get("status") or {}, plan)
        self._events.record(raw, raw.get("status"), plan.status.to_wire())
        self._device_events.record(raw, slot=slot, devices=devices)
        counts = plan.status.counts.to_wire()
        metrics.record_deployment(namespace, name, plan.status.phase, counts)
        views = {d.name: d for d in devices}
        actions = self._intact(raw, plan.actions, resolution.artifact)
        applied = self._pool.map(
            lambda action: self._apply(namespace, name, action, now, views.get(action.device)),
            actions,
        )
        try:
            for _ in applied:  # re-raises the first failed write once all have been tried
                pass
        finally:
            self.pacing.planned((namespace, name), planning_s=planning_s, now=time.monotonic())
        if deferred is None:
            return plan.requeue_after
        return deferred if plan.requeue_after is None else min(deferred, plan.requeue_after)

    def _verified(self, resolution: Resolution) -> Resolution:
        """The resolution only if the default artifact's stored bytes match
        (operator/integrity.py), checked on every pass and so before a revision's first
        assignment; a pinned artifact promises only its sha256. Variants' artifacts are checked
        per assignment (`_intact`)."""
        artifact = resolution.artifact
        if artifact is None or self.integrity is None:
            return resolution
        size = artifact.size_bytes if artifact.conversion else None
        try:
            found = self.integrity.check(artifact.uri, sha256=artifact.sha256, size=size)
        except StorageError as err:  # never checked and unreachable: agents verify sha256
            log.warning("artifact not verified", uri=artifact.uri, error=describe(err))
            found = None
        if found is None:
            return resolution
        origin = f"ModelConversion {artifact.conversion}" if artifact.conversion else "pinned"
        message = f"{origin} {artifact.format} artifact is corrupted: {found}"
        return Resolution(None, ARTIFACT_CORRUPTED, message)

    def _intact(
        self, raw: dict[str, Any], actions: tuple[Action, ...], verified: ResolvedArtifact | None
    ) -> list[Action]:
        """The plan's actions minus assignments of another corrupted artifact (integrity.py
        `intact_actions`), each blocked revision told once per process in a Warning Event."""
        kept, blocked = intact_actions(
            actions, verified=verified.sha256 if verified else None, check=self._check
        )
        meta = raw["metadata"]
        for revision, mismatch in blocked.items():
            if (meta["uid"], revision) in self._blocked:
                continue
            note = f"not assigning revision {revision}, its artifact is corrupted: {mismatch}"
            event = PhaseEvent("Warning", ARTIFACT_CORRUPTED, note[:NOTE_LIMIT], "Rollout")
            key = f"{ARTIFACT_CORRUPTED}/{revision}"
            if self._events.aggregate(raw, event, key=key, count=1):
                self._blocked.add((meta["uid"], revision))
        return kept

    def _check(self, artifact: ArtifactRef) -> str | None:
        assert self.integrity is not None
        try:
            return self.integrity.check(
                artifact.uri, sha256=artifact.sha256, size=artifact.size_bytes
            )
        except StorageError:  # unknown: agents verify sha256 on download anyway
            return None

    def _write_status(
        self, namespace: str, name: str, current: dict[str, Any], plan: Plan
    ) -> float | None:
        """Writes the plan's status unless it is current; a progress-only change waits for
        the pacing's status interval: returns the seconds until it may be written."""
        current = {k: v for k, v in current.items() if k != "kopf"}
        desired = plan.status.to_wire()
        if current == desired:
            return None
        key = (namespace, name)
        wait = self.pacing.status_wait(key, time.monotonic())
        if wait > 0 and progress_only(current, desired):
            return wait
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            EdgeDeployment.PLURAL,
            name,
            {"status": plan.status.to_merge_patch()},
            field_manager=OPERATOR_FIELD_MANAGER,
        )
        self.pacing.status_written(key, time.monotonic())
        return None

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
        # explicit nulls: a merge patch would otherwise keep a field the previous assignment had
        # and this one lacks (a variant's runtime or tolerance after the device left it)
        wire = assignment.to_merge_patch() if assignment else None
        patch = {"spec": {"models": {action.slot: wire}}}
        try:
            client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                EdgeDevice.PLURAL,
                action.device,
                patch,
                field_manager=OPERATOR_FIELD_MANAGER,
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
            runtime=artifact.runtime,
            variant=artifact.variant,
            tolerance=artifact.tolerance,
        )
