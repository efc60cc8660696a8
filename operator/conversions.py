"""The ModelConversion planner: observations in, desired status and Jobs to create out.

Pure: no client, no clock. Durable evidence decides every step, so a restart at any moment
loses nothing: an artifact is converted iff its manifest exists in storage; a target is
validated iff a report for the current validation settings exists; a running or failed step is
its Job. Status is only a memory for the one thing evidence cannot show after Jobs are garbage
collected: that this generation already failed (it is not retried until the spec changes).

Per target: source missing → Failed(SourceNotFound); no artifact → convert Job; artifact but
no matching report → validate Job; report → Validated or Failed(ToleranceExceeded). Then
approval: `auto`, or `manual` until `modelfleet approve` sets APPROVED_GENERATION_ANNOTATION
to the current generation.
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
from modelfleet.conditions import set_condition
from modelfleet.operator.jobs import Step

CONVERTED, VALIDATED, APPROVED, READY = "Converted", "Validated", "Approved", "Ready"
JobState = Literal["Active", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobView:
    name: str
    state: JobState
    reason: str = ""
    message: str = ""
    duration_s: float | None = None


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
    convert_job: JobView | None = None
    validate_job: JobView | None = None
    conversion_failure: tuple[str, str] | None = None


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
    reason = job.reason or "JobFailed"
    return _TargetVerdict("Failed", reason, f"{step} Job {job.name} failed: {job.message}".strip())


def _judge_target(source: SourceObservation, target: TargetObservation) -> _TargetVerdict:
    fmt = target.target.format
    if not source.found:
        return _TargetVerdict("Failed", "SourceNotFound", source.message)
    jobs = {
        f"{step}-{fmt}": job.name
        for step, job in (("convert", target.convert_job), ("validate", target.validate_job))
        if job is not None
    }
    if target.artifact is None:
        job = target.convert_job
        if job is None:
            verdict = _TargetVerdict("Converting", "Converting", "", create=("convert", fmt))
        elif job.state == "Active":
            verdict = _TargetVerdict("Converting", "Converting", f"{fmt}: Job {job.name} running")
        elif job.state == "Failed":
            verdict = _failed_job("convert", job, target.conversion_failure)
        else:
            verdict = _TargetVerdict(
                "Failed", "ArtifactMissing", f"{fmt}: Job {job.name} succeeded without a manifest"
            )
    elif target.validation is not None:
        evidence = target.validation
        if evidence.result.passed:
            verdict = _TargetVerdict("Validated", "Validated", f"{fmt}: within tolerance")
        else:
            verdict = _TargetVerdict(
                "Failed",
                evidence.failure_reason or "ToleranceExceeded",
                evidence.failure_message or f"{fmt}: outside tolerance",
            )
    else:
        job = target.validate_job
        if job is None or job.state == "Succeeded":
            verdict = _TargetVerdict("Validating", "Validating", "", create=("validate", fmt))
        elif job.state == "Active":
            verdict = _TargetVerdict("Validating", "Validating", f"{fmt}: Job {job.name} running")
        else:
            verdict = _failed_job("validate", job, None)
    verdict.jobs = jobs
    return verdict


def _first(verdicts: Sequence[_TargetVerdict], state: str) -> _TargetVerdict | None:
    return next((v for v in verdicts if v.state == state), None)


def _phase_and_conditions(
    previous: Sequence[Condition],
    verdicts: Sequence[_TargetVerdict],
    *,
    formats: str,
    all_converted: bool,
    approval: str | None,
    generation: int,
    now: datetime,
) -> tuple[ConversionPhase, list[Condition]]:
    """Phase and the four conditions; `approval` is None while approval is still missing."""
    failed = _first(verdicts, "Failed")
    converting = _first(verdicts, "Converting")
    validating = _first(verdicts, "Validating")
    conditions: list[Condition] = list(previous)

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
            condition(CONVERTED, True, "Converted", f"artifacts stored for {formats}")
        else:
            condition(CONVERTED, False, failed.reason, failed.message)
        condition(VALIDATED, False, failed.reason, failed.message)
        condition(APPROVED, False, "NotValidated", "only validated artifacts can be approved")
        condition(READY, False, failed.reason, failed.message)
    elif converting:
        phase = "Converting"
        condition(CONVERTED, False, "Converting", converting.message or f"converting {formats}")
        condition(VALIDATED, False, "NotConverted", "waiting for conversion")
        condition(APPROVED, False, "NotValidated", "waiting for validation")
        condition(READY, False, "Converting", "waiting for conversion")
    elif validating:
        phase = "Validating"
        condition(CONVERTED, True, "Converted", f"artifacts stored for {formats}")
        condition(VALIDATED, False, "Validating", validating.message or f"validating {formats}")
        condition(APPROVED, False, "NotValidated", "waiting for validation")
        condition(READY, False, "Validating", "waiting for validation")
    else:
        condition(CONVERTED, True, "Converted", f"artifacts stored for {formats}")
        condition(VALIDATED, True, "Validated", f"every target within tolerance: {formats}")
        if approval is not None:
            phase = "Succeeded"
            how = "AutoApproved" if approval == "auto" else "ManuallyApproved"
            condition(APPROVED, True, how, f"generation {generation} approved")
            condition(READY, True, "Approved", "validated artifacts approved for deployment")
        else:
            phase = "AwaitingApproval"
            message = f"run `modelfleet approve` to approve generation {generation}"
            condition(APPROVED, False, "AwaitingApproval", message)
            condition(READY, False, "AwaitingApproval", message)

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

    phase, conditions = _phase_and_conditions(
        previous.conditions,
        verdicts,
        formats=", ".join(t.target.format for t in targets),
        all_converted=all(t.artifact is not None for t in targets),
        approval=spec.approval if approved else None,
        generation=generation,
        now=now,
    )
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
            validation=[t.validation.result for t in targets if t.validation is not None],
            jobs=jobs,
        ),
        create_jobs=creates,
        requeue_after=None if phase in ("Succeeded", "Failed", "AwaitingApproval") else 5.0,
    )
