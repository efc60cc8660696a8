"""Reads the world a ModelConversion depends on: its source listing, artifacts, reports, Jobs.

The imperative half of the conversion controller: everything here does I/O and hands plain
observations to the pure planner (planner.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modelfleet.api.conversion import (
    ArtifactStatus,
    LatencyStats,
    ModelConversionSpec,
    Target,
    TargetValidation,
)
from modelfleet.artifacts import ArtifactKeys, Manifest, artifact_digest, converter_versions
from modelfleet.conditions import parse_time
from modelfleet.jobrequests import validation_settings_digest
from modelfleet.operator.conversion.conditions import JOB_FAILED, TOLERANCE_EXCEEDED
from modelfleet.operator.conversion.jobs import VALIDATION_KEY_ANNOTATION
from modelfleet.operator.conversion.planner import (
    JobView,
    SourceObservation,
    TargetObservation,
    ValidationEvidence,
)
from modelfleet.reasons import reason_for_exit_code
from modelfleet.reports import Latency, Report, ValidationSection
from modelfleet.storage import Storage, parse_s3_uri


def source_fingerprint(objects: Mapping[str, tuple[int, str]]) -> str:
    """Digest of a source from its listing {relative name: (size, etag)}: no download needed.

    The same bytes uploaded the same way give the same fingerprint, so a cache hit never needs
    the operator to read a model; an upload that changes the ETag only costs a cache miss.
    """
    lines = "".join(f"{name}\0{size}\0{etag}\n" for name, (size, etag) in sorted(objects.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def observe_source(storage: Storage, spec: ModelConversionSpec) -> tuple[SourceObservation, str]:
    bucket, key = parse_s3_uri(spec.source.uri)
    prefix = key if spec.source.format == "onnx" else (key.rstrip("/") + "/" if key else "")
    listing = storage.stat_prefix(prefix, bucket=bucket)
    objects = {name[len(prefix) :] or name: info for name, info in listing.items()}
    if not objects:
        return SourceObservation(False, f"{spec.source.uri}: no objects found"), ""
    return SourceObservation(True), source_fingerprint(objects)


def conversion_versions(worker_image: str) -> dict[str, str]:
    """The converter toolchain is whatever the worker image ships: the image names it."""
    return {**converter_versions(), "workerImage": worker_image}


def target_digest(fingerprint: str, target: Target, worker_image: str) -> str:
    return artifact_digest(fingerprint, target, conversion_versions(worker_image))


def validation_key(spec: ModelConversionSpec, target: Target) -> str:
    """What a validation depends on besides the artifact: a new key means a new validate Job,
    and only a report written under the same key counts as evidence (`_matches`)."""
    return validation_settings_digest(spec.inputs, spec.validation, target.format, target.tolerance)


def _read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    if not storage.exists(key):
        return None
    loaded: dict[str, Any] = json.loads(storage.get_bytes(key))
    return loaded


def _latency(latency: Latency) -> LatencyStats:
    return LatencyStats(
        p50_ms=latency.p50_ms,
        p90_ms=latency.p90_ms,
        p99_ms=latency.p99_ms,
        throughput_per_s=latency.throughput_per_s,
    )


def _matches(section: ValidationSection, spec: ModelConversionSpec, target: Target) -> bool:
    """A stored report is evidence only for the settings it was produced with (input specs,
    validation settings, effective tolerance); a report without the digest never matches."""
    return section.settings_digest == validation_key(spec, target)


def _evidence(
    report: Report, spec: ModelConversionSpec, target: Target
) -> ValidationEvidence | None:
    section = report.validation
    if section is None or not _matches(section, spec, target):
        return None
    bench = section.benchmark
    result = TargetValidation(
        format=target.format,
        passed=section.passed,
        reason="" if section.passed else TOLERANCE_EXCEEDED,
        max_abs=section.max_abs,
        max_rel=section.max_rel,
        l2=section.l2,
        cosine=section.cosine,
        top_k_agreement=min(
            (o.top_k_agreement for o in section.outputs if o.top_k_agreement is not None),
            default=None,
        ),
        source_latency=_latency(bench.source) if bench else None,
        target_latency=_latency(bench.target) if bench else None,
        speedup=bench.speedup if bench else None,
        remedies=report.remedies.status_lines()[:16] if report.remedies else [],
    )
    failure = report.failure
    return ValidationEvidence(
        result=result,
        failure_reason=failure.reason if failure else "",
        failure_message=failure.message if failure else "; ".join(section.failures)[:1000],
    )


def observe_target(
    storage: Storage, spec: ModelConversionSpec, target: Target, digest: str
) -> TargetObservation:
    keys = ArtifactKeys.for_target(digest, target.format)
    artifact = None
    manifest_doc = _read_json(storage, keys.manifest)
    if manifest_doc is not None:
        manifest = Manifest.model_validate(manifest_doc)
        artifact = ArtifactStatus(
            format=target.format,
            uri=storage.uri(keys.model),
            sha256=manifest.sha256,
            size_bytes=manifest.size_bytes,
            manifest_uri=storage.uri(keys.manifest),
            report_uri=storage.uri(keys.report),
            probe_uri=storage.uri(keys.probe),
        )
    report_doc = _read_json(storage, keys.settings_report(validation_key(spec, target)))
    shared = report_doc is None  # nothing judged under these settings yet
    if shared:
        report_doc = _read_json(storage, keys.report)
    evidence, conversion_failure = None, None
    if report_doc is not None:
        try:
            report = Report.model_validate(report_doc)
        except ValidationError:
            report = None
        if report is not None:
            evidence = _evidence(report, spec, target) if artifact else None
            # another spec's validation failure in the shared report is not this spec's
            converted = report.conversion is not None and report.conversion.ok
            if report.failure and report.validation is None and not (shared and converted):
                conversion_failure = (report.failure.reason, report.failure.message)
    return TargetObservation(
        target=target,
        artifact=artifact,
        validation=evidence,
        conversion_failure=conversion_failure,
    )


def exit_code_from_message(message: str) -> int | None:
    """The exit code in a PodFailurePolicy condition message, as the Job controller writes it:
    "Container worker for pod ns/p failed with exit code 13 matching FailJob rule at index 0"."""
    marker = "failed with exit code "
    if marker not in message:
        return None
    digits = message.split(marker, 1)[1].split(" ", 1)[0]
    return int(digits) if digits.isdigit() else None


def job_view(job: Mapping[str, Any], *, validation_key: str | None = None) -> JobView:
    """Succeeded/Failed from the Job's terminal conditions; a classified worker exit code
    (podFailurePolicy FailJob) becomes the worker's reason, e.g. SourceNotFound.

    `validation_key`, for a convert-validate Job: the current settings' key; a Job annotated
    with another key validated settings the spec no longer has (`settings_current` False)."""
    name = job["metadata"]["name"]
    annotations = job["metadata"].get("annotations") or {}
    current = validation_key is None or annotations.get(VALIDATION_KEY_ANNOTATION) == validation_key
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        duration = _seconds_between(status.get("startTime"), condition.get("lastTransitionTime"))
        if condition["type"] == "Complete":
            return JobView(name, "Succeeded", duration_s=duration, settings_current=current)
        if condition["type"] == "Failed":
            reason = condition.get("reason", JOB_FAILED)
            message = condition.get("message", "")
            code = exit_code_from_message(message)
            worker_reason = reason_for_exit_code(code) if code is not None else None
            return JobView(
                name, "Failed", worker_reason or reason, message, duration, settings_current=current
            )
    return JobView(name, "Active", settings_current=current)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_time(end) - parse_time(start)).total_seconds()
