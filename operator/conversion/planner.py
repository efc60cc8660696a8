"""The ModelConversion planner: observations in, desired status and Jobs to create out.

Pure: no client, no clock. Durable evidence decides every step, so a restart at any moment
loses nothing: an artifact is converted iff its manifest exists in storage; a target is
validated iff a report for the current validation settings exists; a running or failed step is
its Job. Status is only a memory for the one thing evidence cannot show after Jobs are garbage
collected: that this generation already failed (it is not retried until the spec changes).

Per target: source missing → Failed(SourceNotFound); no artifact → one convert-validate Job
(both steps in one worker process: half the fixed cost of two Jobs); artifact but no matching
report → validate Job (cache hit, or new validation settings); report → Validated or
Failed(ToleranceExceeded). Then approval: `auto`, or `manual` until `modelfleet approve` sets
APPROVED_GENERATION_ANNOTATION to the current generation. A validated artifact whose stored
bytes no longer match its manifest (`corruption`, operator/integrity.py) makes the phase
ArtifactCorrupted until they match again.

A convert-validate Job reads as the step it is in, from evidence alone:

    Job             manifest   matching report   → verdict
    (none)          no         -                   create it; Converting
    Active          no         -                   Converting
    Active          yes        no                  Validating
    Failed          no         -                   Failed: conversion reason (report, exit code)
    Failed          yes        no                  Failed: validation reason (exit code)
    Succeeded       yes        no                  validate Job (as after a validate Job that
                                                   left no evidence)
    any             yes        yes                 Validated / Failed(ToleranceExceeded)

Its name is keyed by the artifact, not the validation settings, so new settings never start a
second conversion; a finished one that validated with older settings (`settings_current` is
False) says nothing about the current settings and is followed by a validate Job.

Condition types and reasons are constants in conditions.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelfleet.api.annotations import APPROVED_GENERATION_ANNOTATION
from modelfleet.api.base import Condition
from modelfleet.api.conversion import (
    ArtifactStatus,
    ConversionPhase,
    ModelConversionSpec,
    ModelConversionStatus,
    Target,
    TargetValidation,
)
from modelfleet.conditions import first_pass_not_ready, set_condition
from modelfleet.operator.conversion.conditions import (
    APPROVED,
    ARTIFACT_MISSING,
    AUTO_APPROVED,
    AWAITING_APPROVAL,
    CONVERTED,
    CONVERTING,
    JOB_FAILED,
    MANUALLY_APPROVED,
    NOT_CONVERTED,
    NOT_VALIDATED,
    READY,
    SLOWER_THAN_FLOAT,
    SOURCE_NOT_FOUND,
    TOLERANCE_EXCEEDED,
    VALIDATED,
    VALIDATING,
)
from modelfleet.operator.conversion.jobs import Step
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED, corrupted_status

JobState = Literal["Active", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobView:
    name: str
    state: JobState
    reason: str = ""
    message: str = ""
    duration_s: float | None = None
    settings_current: bool = True
    """False when a convert-validate Job ran with validation settings the spec no longer has."""


@dataclass(frozen=True)
class ValidationEvidence:
    """A report whose settings match the current spec: the verdict and its numbers."""

    result: TargetValidation
    failure_reason: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class TargetObservation:
    target: Target
    artifact: ArtifactStatus | None = None
    validation: ValidationEvidence | None = None
    validate_job: JobView | None = None
    convert_validate_job: JobView | None = None
    conversion_failure: tuple[str, str] | None = None
    corruption: str = ""
    """How the stored artifact differs from its manifest (operator/integrity.py); "" if not."""


@dataclass(frozen=True)
class SourceObservation:
    found: bool
    message: str = ""


@dataclass(frozen=True)
class ConversionPlan:
    status: ModelConversionStatus
    create_jobs: tuple[tuple[Step, str], ...] = ()
    """(step, target format) pairs whose Job should exist now."""
    requeue_after: float | None = None


@dataclass
class _TargetVerdict:
    state: Literal["Converting", "Validating", "Validated", "Failed"]
    reason: str = ""
    message: str = ""
    create: tuple[Step, str] | None = None
    jobs: dict[str, str] = field(default_factory=dict)


def _failed_job(step: Step, job: JobView, fallback: tuple[str, str] | None) -> _TargetVerdict:
    if fallback:
        return _TargetVerdict("Failed", *fallback)
    reason = job.reason or JOB_FAILED
    return _TargetVerdict("Failed", reason, f"{step} Job {job.name} failed: {job.message}".strip())


def _job_names(target: TargetObservation) -> dict[str, str]:
    """status.jobs: `<step>-<format>` → Job name, for the Jobs of the current work."""
    fmt = target.target.format
    steps: tuple[tuple[Step, JobView | None], ...] = (
        ("validate", target.validate_job),
        ("convert-validate", target.convert_validate_job),
    )
    return {f"{step}-{fmt}": job.name for step, job in steps if job is not None}


def _judge_conversion(target: TargetObservation) -> _TargetVerdict:
    """No artifact yet: the convert-validate Job."""
    fmt = target.target.format
    job = target.convert_validate_job
    if job is None:
        return _TargetVerdict("Converting", CONVERTING, "", create=("convert-validate", fmt))
    if job.state == "Active":
        return _TargetVerdict("Converting", CONVERTING, f"{fmt}: Job {job.name} running")
    if job.state == "Failed":
        return _failed_job("convert-validate", job, target.conversion_failure)
    return _TargetVerdict(
        "Failed", ARTIFACT_MISSING, f"{fmt}: Job {job.name} succeeded without a manifest"
    )


def _judge_validation(target: TargetObservation) -> _TargetVerdict:
    """An artifact without a report for the current settings: a Job validating it, or a new
    validate Job."""
    fmt = target.target.format
    validate, combined = target.validate_job, target.convert_validate_job
    step: Step
    if validate is not None and validate.state != "Succeeded":
        job, step = validate, "validate"
    elif validate is None and combined is not None and combined.state != "Succeeded":
        job, step = combined, "convert-validate"
    else:  # nothing validated, or a Job succeeded without leaving matching evidence
        return _TargetVerdict("Validating", VALIDATING, "", create=("validate", fmt))
    if job.state == "Active":
        return _TargetVerdict("Validating", VALIDATING, f"{fmt}: Job {job.name} running")
    if not job.settings_current:  # it failed validating settings the spec no longer has
        return _TargetVerdict("Validating", VALIDATING, "", create=("validate", fmt))
    return _failed_job(step, job, None)


def _judge_target(source: SourceObservation, target: TargetObservation) -> _TargetVerdict:
    fmt = target.target.format
    if not source.found:
        return _TargetVerdict("Failed", SOURCE_NOT_FOUND, source.message)
    if target.artifact is None:
        verdict = _judge_conversion(target)
    elif target.validation is not None:
        evidence = target.validation
        if evidence.result.passed:
            verdict = _TargetVerdict("Validated", VALIDATED, f"{fmt}: within tolerance")
        else:
            verdict = _TargetVerdict(
                "Failed",
                evidence.failure_reason or TOLERANCE_EXCEEDED,
                evidence.failure_message or f"{fmt}: outside tolerance",
            )
    else:
        verdict = _judge_validation(target)
    verdict.jobs = _job_names(target)
    return verdict


def slower_than_float(validations: Sequence[TargetValidation]) -> str | None:
    """Which reduced-precision artifacts are slower than the fp32 one, as a message; pure.

    fp16 and int8 exist to be faster (or smaller) on the device: one whose median latency on
    the validation machine is above the fp32 artifact's (measured by the same worker image)
    is worth a human look before it ships. Needs an `onnx` target in the same conversion.
    Message shape: 'onnx-int8 median 3.000 ms > onnx (fp32) median 2.000 ms'.
    """
    fp32 = next((v for v in validations if v.format == "onnx" and v.target_latency), None)
    if fp32 is None or fp32.target_latency is None:
        return None
    slower = [
        f"{v.format} median {v.target_latency.p50_ms:.3f} ms > onnx (fp32) median "
        f"{fp32.target_latency.p50_ms:.3f} ms"
        for v in validations
        if v.format in ("onnx-fp16", "onnx-int8")
        and v.target_latency is not None
        and v.target_latency.p50_ms > fp32.target_latency.p50_ms
    ]
    return "; ".join(slower) or None


def _first(verdicts: Sequence[_TargetVerdict], state: str) -> _TargetVerdict | None:
    return next((v for v in verdicts if v.state == state), None)


def _phase_and_conditions(
    previous: Sequence[Condition],
    verdicts: Sequence[_TargetVerdict],
    *,
    formats: str,
    all_converted: bool,
    approval: str | None,
    slower: str | None,
    generation: int,
    now: datetime,
) -> tuple[ConversionPhase, list[Condition]]:
    """Phase and the four conditions (and SlowerThanFloat when it applies); `approval` is None
    while approval is still missing, and `auto` does not approve a slower reduced precision."""
    failed = _first(verdicts, "Failed")
    converting = _first(verdicts, "Converting")
    validating = _first(verdicts, "Validating")
    conditions = [c for c in previous if slower is not None or c.type != SLOWER_THAN_FLOAT]

    def condition(kind: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type=kind,
            status="True" if ok else "False",
            reason=reason,
            message=message,
            now=now,
            observed_generation=generation,
        )

    phase: ConversionPhase
    if failed:
        phase = "Failed"
        if all_converted:
            condition(CONVERTED, True, CONVERTED, f"artifacts stored for {formats}")
        else:
            condition(CONVERTED, False, failed.reason, failed.message)
        condition(VALIDATED, False, failed.reason, failed.message)
        condition(APPROVED, False, NOT_VALIDATED, "only validated artifacts can be approved")
        condition(READY, False, failed.reason, failed.message)
    elif converting:
        phase = "Converting"
        condition(CONVERTED, False, CONVERTING, converting.message or f"converting {formats}")
        condition(VALIDATED, False, NOT_CONVERTED, "waiting for conversion")
        condition(APPROVED, False, NOT_VALIDATED, "waiting for validation")
        condition(READY, False, CONVERTING, "waiting for conversion")
    elif validating:
        phase = "Validating"
        condition(CONVERTED, True, CONVERTED, f"artifacts stored for {formats}")
        condition(VALIDATED, False, VALIDATING, validating.message or f"validating {formats}")
        condition(APPROVED, False, NOT_VALIDATED, "waiting for validation")
        condition(READY, False, VALIDATING, "waiting for validation")
    else:
        condition(CONVERTED, True, CONVERTED, f"artifacts stored for {formats}")
        condition(VALIDATED, True, VALIDATED, f"every target within tolerance: {formats}")
        if slower is not None:
            condition(SLOWER_THAN_FLOAT, True, SLOWER_THAN_FLOAT, slower)
        if approval == "auto" and slower is not None:
            phase = "AwaitingApproval"
            message = f"{slower}: run `modelfleet approve` to approve generation {generation}"
            condition(APPROVED, False, SLOWER_THAN_FLOAT, message)
            condition(READY, False, SLOWER_THAN_FLOAT, message)
        elif approval is not None:
            phase = "Succeeded"
            how = AUTO_APPROVED if approval == "auto" else MANUALLY_APPROVED
            condition(APPROVED, True, how, f"generation {generation} approved")
            condition(READY, True, APPROVED, "validated artifacts approved for deployment")
        else:
            phase = "AwaitingApproval"
            message = f"run `modelfleet approve` to approve generation {generation}"
            condition(APPROVED, False, AWAITING_APPROVAL, message)
            condition(READY, False, AWAITING_APPROVAL, message)

    return phase, conditions


def plan_conversion(
    *,
    generation: int,
    spec: ModelConversionSpec,
    status: ModelConversionStatus | None,
    annotations: dict[str, str],
    source: SourceObservation,
    targets: Sequence[TargetObservation],
    now: datetime,
) -> ConversionPlan:
    previous = status or ModelConversionStatus()
    if previous.phase == "Failed" and previous.observed_generation == generation:
        return ConversionPlan(status=previous)

    verdicts = [_judge_target(source, t) for t in targets]
    failed = _first(verdicts, "Failed")
    approved = spec.approval == "auto" or annotations.get(APPROVED_GENERATION_ANNOTATION) == str(
        generation
    )

    validations = [t.validation.result for t in targets if t.validation is not None]
    manually_approved = annotations.get(APPROVED_GENERATION_ANNOTATION) == str(generation)
    phase, conditions = _phase_and_conditions(
        previous.conditions,
        verdicts,
        formats=", ".join(t.target.format for t in targets),
        all_converted=all(t.artifact is not None for t in targets),
        approval="manual" if manually_approved else spec.approval if approved else None,
        slower=slower_than_float(validations),
        generation=generation,
        now=now,
    )
    corrupted = [t.corruption for t in targets if t.corruption]
    if corrupted and phase in ("Succeeded", "AwaitingApproval"):
        phase = ARTIFACT_CORRUPTED
        conditions = corrupted_status(conditions, corrupted, generation=generation, now=now)
    held = first_pass_not_ready(
        conditions, observed_generation=previous.observed_generation, generation=generation, now=now
    )
    if held is not None:
        phase, conditions = "Pending", held
    jobs: dict[str, str] = {}
    for verdict in verdicts:
        jobs.update(verdict.jobs)
    creates = tuple(v.create for v in verdicts if v.create is not None and not failed)
    return ConversionPlan(
        status=ModelConversionStatus(
            phase=phase,
            observed_generation=generation,
            conditions=conditions,
            artifacts=[t.artifact for t in targets if t.artifact is not None],
            validation=validations,
            jobs=jobs,
            formats=",".join(t.target.format for t in targets),
        ),
        create_jobs=creates,
        requeue_after=None
        if phase in ("Succeeded", "Failed", "AwaitingApproval", ARTIFACT_CORRUPTED)
        else 5.0,
    )
