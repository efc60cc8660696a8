"""The ModelConversion controller: one level-triggered pass per call, safe to call any time.

Called by kopf event handlers (the conversion or one of its Jobs changed) and by the periodic
resync; a per-object lock keeps two passes for the same object from interleaving.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion, ModelConversionStatus
from modelfleet.errors import describe
from modelfleet.jobrequests import ConvertValidateRequest, ValidateRequest, WorkerRequest
from modelfleet.kube import OPERATOR_FIELD_MANAGER, read_live
from modelfleet.logs import get_logger
from modelfleet.operator import metrics
from modelfleet.operator.conversion.conditions import READY
from modelfleet.operator.conversion.jobs import (
    CONTAINER,
    CONVERSION_LABEL,
    JobRequest,
    Step,
    build_job,
    job_name,
)
from modelfleet.operator.conversion.observations import (
    job_view,
    observe_source,
    observe_target,
    target_digest,
    validation_key,
)
from modelfleet.operator.conversion.planner import (
    ConversionPlan,
    JobView,
    TargetObservation,
    plan_conversion,
)
from modelfleet.operator.conversion.pods import worker_failure
from modelfleet.operator.events import EventRecorder
from modelfleet.operator.integrity import IntegrityChecker
from modelfleet.operator.settings import OperatorSettings
from modelfleet.storage import Storage, StorageError

log = get_logger(__name__)
PLURAL = ModelConversion.PLURAL
_REQUESTS: dict[Step, type[WorkerRequest]] = {
    "validate": ValidateRequest,
    "convert-validate": ConvertValidateRequest,
}


@dataclass
class ConversionController:
    settings: OperatorSettings
    storage: Storage
    api: client.ApiClient
    integrity: IntegrityChecker | None = None
    """Shared with the deployment controller (one hash cache); None: a checker of its own."""
    _locks: defaultdict[tuple[str, str], threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )
    _timed_jobs: set[str] = field(default_factory=set)
    """Jobs whose duration was observed: each is counted once per operator process."""
    _events: EventRecorder = field(init=False)

    def __post_init__(self) -> None:
        self._events = EventRecorder(self.api)
        if self.integrity is None:
            self.integrity = IntegrityChecker(self.storage, self.settings.integrity_check_seconds)

    def reconcile(self, namespace: str, name: str) -> ConversionPlan | None:
        with self._locks[(namespace, name)]:
            return self._reconcile(namespace, name)

    def _reconcile(self, namespace: str, name: str) -> ConversionPlan | None:
        raw = read_live(self.api, PLURAL, namespace, name)
        if raw is None:
            return None
        conversion = ModelConversion.model_validate(raw)
        spec, generation = conversion.spec, raw["metadata"]["generation"]
        try:
            source, fingerprint = observe_source(self.storage, spec)
            digests = {
                t.format: target_digest(fingerprint, t, self.settings.image_for(t.format))
                for t in spec.targets
            }
            targets = [
                observe_target(self.storage, spec, t, digests[t.format])
                if source.found
                else TargetObservation(target=t)
                for t in spec.targets
            ]
            corruptions = {t.target.format: self._corruption(t) for t in targets}
        except StorageError as err:
            log.warning("storage unavailable", namespace=namespace, name=name, error=describe(err))
            return None
        steps: tuple[Step, ...] = ("convert-validate", "validate")
        requests: dict[tuple[Step, str], JobRequest] = {
            (step, t.format): self._job_request(conversion, step, t.format, digests[t.format])
            for t in spec.targets
            for step in steps
            if source.found
        }
        jobs = self._jobs(namespace, name, conversion, requests)
        targets = [
            TargetObservation(
                target=t.target,
                artifact=t.artifact,
                validation=t.validation,
                conversion_failure=t.conversion_failure,
                corruption=corruptions[t.target.format],
                validate_job=jobs.get(("validate", t.target.format)),
                convert_validate_job=jobs.get(("convert-validate", t.target.format)),
            )
            for t in targets
        ]
        plan = plan_conversion(
            generation=generation,
            spec=spec,
            status=conversion.status,
            annotations=raw["metadata"].get("annotations") or {},
            source=source,
            targets=targets,
            now=dt.datetime.now(dt.UTC),
        )
        for step, fmt in plan.create_jobs:
            self._create_job(conversion, requests[(step, fmt)])
        self._write_status(namespace, name, conversion.status, plan.status)
        before = conversion.status.to_wire() if conversion.status else None
        self._events.record(raw, before, plan.status.to_wire())
        self._record(namespace, name, conversion.status, plan, jobs)
        return plan

    def _corruption(self, target: TargetObservation) -> str:
        """How a validated artifact's stored bytes differ from its manifest; "" if they don't
        (or there is nothing validated to check yet)."""
        artifact = target.artifact
        if artifact is None or target.validation is None or self.integrity is None:
            return ""
        found = self.integrity.check(
            artifact.uri, sha256=artifact.sha256, size=artifact.size_bytes, label=artifact.format
        )
        return found or ""

    def _record(
        self,
        namespace: str,
        name: str,
        before: ModelConversionStatus | None,
        plan: ConversionPlan,
        jobs: dict[tuple[Step, str], JobView],
    ) -> None:
        phase = plan.status.phase
        metrics.record_conversion(namespace, name, phase)
        ended = phase in ("Succeeded", "Failed")
        changed = (
            before is None
            or before.phase != phase
            or (before.observed_generation != plan.status.observed_generation)
        )
        if ended and changed:
            ready = next((c for c in plan.status.conditions if c.type == READY), None)
            metrics.CONVERSION_OUTCOMES.labels(phase, ready.reason if ready else "").inc()
        for (step, fmt), job in jobs.items():
            if job.duration_s is not None and job.name not in self._timed_jobs:
                self._timed_jobs.add(job.name)
                metrics.JOB_DURATION.labels(step, fmt, job.state).observe(job.duration_s)

    def _job_request(
        self, conversion: ModelConversion, step: Step, fmt: str, digest: str
    ) -> JobRequest:
        """The Job for one step of one target. Convert and convert-validate Jobs are named by
        the artifact only (new validation settings never convert again; the convert-validate
        Job carries its settings' key instead), validate Jobs by artifact and settings."""
        spec = conversion.spec
        target = next(t for t in spec.targets if t.format == fmt)
        model = _REQUESTS[step]
        request = model(
            source=spec.source,
            inputs=spec.inputs,
            target=target,
            validation=spec.validation,
            bucket=self.settings.bucket,
            digest=digest,
        )
        settings = validation_key(spec, target)
        return JobRequest(
            step=step,
            target=target,
            request=request.to_wire(),
            work_key=f"{digest}/{settings}" if step == "validate" else digest,
            validation_key=settings if step == "convert-validate" else None,
        )

    def _jobs(
        self,
        namespace: str,
        name: str,
        conversion: ModelConversion,
        requests: dict[tuple[Step, str], JobRequest],
    ) -> dict[tuple[Step, str], JobView]:
        """The Jobs of the current work only: Jobs of older generations are left to their TTL."""
        listed = client.BatchV1Api(self.api).list_namespaced_job(
            namespace, label_selector=f"{CONVERSION_LABEL}={name[:63]}"
        )
        by_name = {j.metadata.name: self.api.sanitize_for_serialization(j) for j in listed.items}
        views = {}
        for key, request in requests.items():
            expected = job_name(name, request.step, request.format, request.work_key)
            if expected in by_name:
                views[key] = job_view(by_name[expected], validation_key=request.validation_key)
        if any(view.state == "Failed" for view in views.values()):
            views = self._with_worker_failures(namespace, name, views)
        return views

    def _with_worker_failures(
        self, namespace: str, name: str, views: dict[tuple[Step, str], JobView]
    ) -> dict[tuple[Step, str], JobView]:
        """Failed Jobs take the worker's own reason and message from their Pod (pods.py)."""
        listed = client.CoreV1Api(self.api).list_namespaced_pod(
            namespace, label_selector=f"{CONVERSION_LABEL}={name[:63]}"
        )
        pods = [self.api.sanitize_for_serialization(p) for p in listed.items]
        for key, view in views.items():
            failure = worker_failure(pods, view.name, CONTAINER) if view.state == "Failed" else None
            if failure is not None:
                views[key] = replace(view, reason=failure[0], message=failure[1])
        return views

    def _create_job(self, conversion: ModelConversion, request: JobRequest) -> None:
        body = build_job(conversion, request, self.settings)
        try:
            client.BatchV1Api(self.api).create_namespaced_job(
                body["metadata"]["namespace"], body, field_manager=OPERATOR_FIELD_MANAGER
            )
            log.info(
                "job created",
                job=body["metadata"]["name"],
                step=request.step,
                format=request.format,
            )
        except ApiException as err:
            if err.status != 409:
                raise

    def _write_status(
        self,
        namespace: str,
        name: str,
        current: ModelConversionStatus | None,
        desired: ModelConversionStatus,
    ) -> None:
        before: dict[str, Any] = current.to_wire() if current else {}
        if before == desired.to_wire():
            return
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": desired.to_merge_patch()},
            field_manager=OPERATOR_FIELD_MANAGER,
        )
        log.info("status updated", namespace=namespace, name=name, phase=desired.phase)
