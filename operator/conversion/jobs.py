"""Job manifests for conversion and validation: pure builders, no API calls.

Names are deterministic (conversion, step, target and a hash of what the step works on), so an
unchanged spec never creates a second Job, also across operator restarts: a repeated create
answers 409 and the existing Job is observed instead.

Steps: `convert-validate` (both in one worker process; the Job for a target with nothing
stored yet) and `validate` (an artifact is stored: cache hit or new validation settings).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from modelfleet.api.base import API_VERSION
from modelfleet.api.conversion import JobTemplate, ModelConversion, Target
from modelfleet.operator.settings import OperatorSettings
from modelfleet.reasons import EXIT_CODES, RETRYABLE_REASONS
from modelfleet.storage import ENV_ACCESS_KEY, ENV_BUCKET, ENV_ENDPOINT, ENV_REGION, ENV_SECRET_KEY

Step = Literal["validate", "convert-validate"]
CONTAINER = "worker"
MANAGED_BY = "app.kubernetes.io/managed-by"
CONVERSION_LABEL = "modelfleet.io/conversion"
STEP_LABEL = "modelfleet.io/step"
FORMAT_LABEL = "modelfleet.io/format"
VALIDATION_KEY_ANNOTATION = "modelfleet.io/validation-key"
"""On a convert-validate Job: the validation settings it runs with (its name is keyed by the
artifact only, so that new validation settings never start a second conversion)."""
_SHORT_STEPS: dict[Step, str] = {"validate": "vl", "convert-validate": "cvl"}
# At most 8 characters: a 40-character conversion name still gives a 63-character Job name.
_SHORT_FORMATS = {
    "onnx": "fp32",
    "tf-savedmodel": "tfsaved",
    "tflite": "tflite",
    "tflite-fp16": "tflite16",
    "tflite-dynamic-range": "tflitedr",
}
OPERATOR_NAME = "modelfleet-operator"
# Classified failures that no retry can fix end the Job at once (podFailurePolicy FailJob).
PERMANENT_EXIT_CODES = sorted(
    code for reason, code in EXIT_CODES.items() if reason not in RETRYABLE_REASONS
)


@dataclass(frozen=True)
class JobRequest:
    """One Job the conversion planner wants: which step, for which target, on what input."""

    step: Step
    target: Target
    request: dict[str, Any]
    work_key: str
    validation_key: str | None = None

    @property
    def format(self) -> str:
        return self.target.format


def job_name(conversion: str, step: Step, target_format: str, work_key: str) -> str:
    suffix = hashlib.sha256(f"{step}/{target_format}/{work_key}".encode()).hexdigest()[:8]
    fmt = _SHORT_FORMATS.get(target_format) or target_format.removeprefix("onnx").strip("-")
    return f"{conversion[:40].rstrip('-')}-{_SHORT_STEPS[step]}-{fmt}-{suffix}"


def _env(settings: OperatorSettings, secret: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": ENV_ENDPOINT, "value": settings.s3_endpoint},
        {"name": ENV_BUCKET, "value": settings.bucket},
        {
            "name": ENV_ACCESS_KEY,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "accessKey"}},
        },
        {
            "name": ENV_SECRET_KEY,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "secretKey"}},
        },
        {"name": "POLYGRAPHY_AUTOINSTALL_DEPS", "value": "0"},
    ]
    if settings.s3_region:
        env.append({"name": ENV_REGION, "value": settings.s3_region})
    return env


def build_job(
    conversion: ModelConversion, job: JobRequest, settings: OperatorSettings
) -> dict[str, Any]:
    meta = conversion.metadata
    name = job_name(meta["name"], job.step, job.format, job.work_key)
    template: JobTemplate = conversion.spec.job_template
    secret = (
        conversion.spec.source.credentials_secret.name
        if conversion.spec.source.credentials_secret
        else settings.storage_secret
    )
    labels = {
        MANAGED_BY: OPERATOR_NAME,
        CONVERSION_LABEL: meta["name"][:63],
        STEP_LABEL: job.step,
        FORMAT_LABEL: job.format,
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": template.image or settings.image_for(job.format),
        "command": [*settings.worker_command, job.step],
        "args": ["--request", json.dumps(job.request, separators=(",", ":"))],
        "env": _env(settings, secret),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    defaults = settings.job_defaults
    if template.resources or defaults.resources:
        container["resources"] = template.resources or defaults.resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
    }
    if template.node_selector or defaults.node_selector:
        pod_spec["nodeSelector"] = template.node_selector or defaults.node_selector
    if template.tolerations or defaults.tolerations:
        pod_spec["tolerations"] = template.tolerations or defaults.tolerations
    annotations = {VALIDATION_KEY_ANNOTATION: job.validation_key} if job.validation_key else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            **({"annotations": annotations} if annotations else {}),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": ModelConversion.KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": template.backoff_limit,
            "activeDeadlineSeconds": template.active_deadline_seconds,
            "ttlSecondsAfterFinished": template.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": PERMANENT_EXIT_CODES,
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
