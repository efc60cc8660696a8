"""The operator killed (SIGKILL) at each point of a conversion, then restarted: the real job
runner and Paddle worker keep going, as a Job's Pod would while its controller is down.

Each case converts the same MLP to another opset (another artifact digest: a real Job each).
The first case kills the operator at three points of one conversion (a Paddle worker run is
the dearest thing in the matrix); the others at one point each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.artifacts import ArtifactKeys
from modelfleet.dev.samples import SampleModel
from modelfleet.storage import Storage
from support.faults import GatedJobRunner, freeze, poll
from support.operator import OperatorHandle, make_conversion_body, wait_for
from support.recorders import JobLog

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.paddle]
PLURAL = "modelconversions"


@dataclass
class Conversion:
    """One case's ModelConversion and the handles on the world around it."""

    name: str
    namespace: str
    api: client.ApiClient
    operator: OperatorHandle
    storage: Storage
    body: dict[str, Any]

    def create(self) -> None:
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.body
        )

    def read(self) -> dict[str, Any]:
        found: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        return found

    def job(self) -> Any:
        jobs = client.BatchV1Api(self.api).list_namespaced_job(
            self.namespace, label_selector=f"modelfleet.io/conversion={self.name}"
        )
        return jobs.items[0] if jobs.items else None

    def running_job(self) -> Any:
        job = self.job()
        return job if job and job.status and job.status.active else None

    def finished_job(self) -> Any:
        job = self.job()
        conditions = (job.status.conditions or []) if job and job.status else []
        return job if any(c.type == "Complete" and c.status == "True" for c in conditions) else None

    def report_key(self, job: Any) -> str:
        request = json.loads(job.spec.template.spec.containers[0].args[1])
        return ArtifactKeys.for_target(request["digest"], "onnx").report

    def succeeded(self, generation: int = 1) -> dict[str, Any]:
        return wait_for(
            self.read,
            lambda o: (
                (o.get("status") or {}).get("phase") == "Succeeded"
                and o["status"].get("observedGeneration") == generation
            ),
            timeout=240,
            what=f"{self.name} Succeeded at generation {generation}",
        )


def _report_written(case: Conversion) -> str:
    """Frozen while the Job runs, killed once the worker wrote its report: it never saw it."""
    case.create()
    job = poll("the Job running", case.running_job)
    freeze(case.operator.process)
    key = case.report_key(job)
    poll("the report in MinIO", lambda: case.storage.exists(key), timeout=180)
    return (case.read().get("status") or {}).get("phase", "")


def _status_pending(case: Conversion) -> str:
    """Frozen while the Job runs, killed once the Job completed: the status update that the
    completion calls for was never written."""
    case.create()
    poll("the Job running", case.running_job)
    freeze(case.operator.process)
    poll("the Job complete", case.finished_job, timeout=180)
    phase: str = (case.read().get("status") or {}).get("phase", "")
    assert phase in ("Converting", "Validating"), phase
    return phase


def _onnx(opset: int) -> list[dict[str, Any]]:
    """The target of a case: each opset is another artifact digest, so another real Job."""
    return [{"format": "onnx", "opset": opset}]


@dataclass(frozen=True)
class Point:
    id: str
    fault: str
    hit: Callable[[Conversion], str]
    opset: int


POINTS = [
    Point(
        "report-written",
        "SIGSTOP while the Job runs; SIGKILL once report.json is stored",
        _report_written,
        14,
    ),
    Point(
        "status-pending",
        "SIGSTOP while the Job runs; SIGKILL once it completed, its status not written",
        _status_pending,
        15,
    ),
]


def test_operator_killed_three_times_in_one_conversion(
    faults_namespace: str,
    kube_client: client.ApiClient,
    job_runner: GatedJobRunner,
    operator: OperatorHandle,
    storage: Storage,
    mlp: SampleModel,
    mlp_uri: str,
    record_property: Callable[[str, object], None],
) -> None:
    """Killed as the ModelConversion is created (never saw it), again once its Job exists (not
    started), and again while the Job runs: restarted, the operator finishes the conversion
    with the one Job it created first, and Ready=True saying it is approved."""
    record_property(
        "fault",
        "operator SIGSTOP+SIGKILL as the ModelConversion is created; SIGKILL once its Job is "
        "created, before it runs; SIGKILL while the Job runs",
    )
    body = make_conversion_body("kill-three-times", mlp, mlp_uri, targets=_onnx(11))
    case = Conversion("kill-three-times", faults_namespace, kube_client, operator, storage, body)
    with JobLog(kube_client, faults_namespace) as jobs:
        job_runner.hold.set()
        try:
            freeze(operator.process)
            case.create()
            operator.process.kill()
            seen = [(case.read().get("status") or {}).get("phase", "no status")]
            operator.restart()
            poll("the Job", case.job)
            operator.process.kill()
            seen.append(f"Job {case.job().metadata.name} created")
            operator.restart()
        finally:
            job_runner.hold.clear()
        poll("the Job running", case.running_job)
        operator.process.kill()
        seen.append("Job active")
        operator.restart()
        done = case.succeeded()
    _assert_finished(case, done, jobs, "; ".join(seen), record_property)


def _assert_finished(
    case: Conversion,
    done: dict[str, Any],
    jobs: JobLog,
    seen: str,
    record_property: Callable[[str, object], None],
) -> None:
    """One convert-validate Job ever created, named in status; the artifact stored; approved."""
    status = done["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    record_property(
        "status",
        f"at the kill: {seen}; after: {status['phase']}, Ready {ready['status']} "
        f"{ready['reason']}: {ready['message']}; jobs {sorted(status['jobs'].values())}",
    )
    created = jobs.names(f"{case.name}-")
    assert len(created) == 1 and "-cvl-" in created[0], f"Jobs created: {created}"
    assert status["jobs"] == {"convert-validate-onnx": created[0]}, status["jobs"]
    assert ready["status"] == "True" and ready["reason"] == "Approved", ready
    artifact = status["artifacts"][0]
    assert case.storage.exists(artifact["uri"].split("/", 3)[3]), artifact
    assert status["validation"][0]["passed"] is True


@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
def test_operator_killed_mid_conversion(
    point: Point,
    faults_namespace: str,
    kube_client: client.ApiClient,
    operator: OperatorHandle,
    storage: Storage,
    mlp: SampleModel,
    mlp_uri: str,
    record_property: Callable[[str, object], None],
) -> None:
    """Restarted, the operator finishes the conversion with the one Job it created (none
    created twice), the stored artifact in status, and Ready=True saying it is approved."""
    record_property("fault", f"operator {point.fault}")
    name = f"kill-{point.id}"
    body = make_conversion_body(name, mlp, mlp_uri, targets=_onnx(point.opset))
    case = Conversion(name, faults_namespace, kube_client, operator, storage, body)
    with JobLog(kube_client, faults_namespace) as jobs:
        seen = point.hit(case)
        operator.process.kill()
        operator.restart()
        done = case.succeeded()
    _assert_finished(case, done, jobs, seen, record_property)


def test_operator_killed_when_a_new_generation_is_pending(
    faults_namespace: str,
    kube_client: client.ApiClient,
    job_runner: GatedJobRunner,
    operator: OperatorHandle,
    storage: Storage,
    mlp: SampleModel,
    mlp_uri: str,
    record_property: Callable[[str, object], None],
) -> None:
    """New validation settings on a Succeeded conversion: killed once the operator observed the
    new generation (Ready=False, its validate Job created but held), the restarted operator
    runs exactly one validate Job and reports the new generation Succeeded."""
    record_property(
        "fault",
        "operator SIGKILL once generation 2 is observed (Ready=False), its validate Job held",
    )
    name = "kill-generation-pending"
    body = make_conversion_body(name, mlp, mlp_uri, targets=_onnx(15))
    case = Conversion(name, faults_namespace, kube_client, operator, storage, body)
    case.create()
    case.succeeded()
    with JobLog(kube_client, faults_namespace) as jobs:
        job_runner.hold.set()
        try:
            patch = {"spec": {"validation": {"samples": 5}}}
            client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
                GROUP, VERSION, faults_namespace, PLURAL, case.name, patch
            )
            pending = poll(
                "generation 2 observed",
                lambda: (s := case.read().get("status") or {}).get("observedGeneration") == 2 and s,
            )
            operator.process.kill()
        finally:
            job_runner.hold.clear()
        operator.restart()
        done = case.succeeded(generation=2)
    status = done["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert isinstance(pending, dict)
    seen_ready = next(c for c in pending["conditions"] if c["type"] == "Ready")
    record_property(
        "status",
        f"at the kill: {pending['phase']}, Ready {seen_ready['status']} {seen_ready['reason']}; "
        f"after: {status['phase']}, Ready {ready['status']} {ready['reason']}",
    )
    assert seen_ready["status"] == "False", seen_ready
    validate = [n for n in jobs.names(f"{case.name}-") if "-vl-" in n]
    assert len(validate) == 1, jobs.names(f"{case.name}-")
    assert not [n for n in jobs.names(f"{case.name}-") if "-cvl-" in n]
    assert ready["status"] == "True" and ready["observedGeneration"] == 2, ready
