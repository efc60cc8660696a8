"""The conversion planner, case by case: observations in, phase, conditions and Jobs out."""

from __future__ import annotations

import datetime as dt

import pytest

from modelfleet.api.annotations import APPROVED_GENERATION_ANNOTATION
from modelfleet.api.conversion import (
    ArtifactStatus,
    InputSpec,
    LatencyStats,
    ModelConversionSpec,
    ModelConversionStatus,
    Source,
    Target,
    TargetValidation,
)
from modelfleet.conditions import get_condition
from modelfleet.operator.conversion.planner import (
    ConversionPlan,
    JobView,
    SourceObservation,
    TargetObservation,
    ValidationEvidence,
    plan_conversion,
)
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
ONNX = Target(format="onnx")
ARTIFACT = ArtifactStatus(
    format="onnx",
    uri="s3://modelfleet/artifacts/d/onnx/model.onnx",
    sha256="a" * 64,
    size_bytes=10,
    manifest_uri="s3://modelfleet/artifacts/d/onnx/manifest.json",
)
FOUND = SourceObservation(True)


def make_spec(approval: str = "auto") -> ModelConversionSpec:
    return ModelConversionSpec(
        source=Source(uri="s3://modelfleet/models/m/"),
        inputs=[InputSpec(name="x", shape=[-1, 4])],
        targets=[ONNX],
        approval=approval,  # type: ignore[arg-type]
    )


def make_evidence(passed: bool) -> ValidationEvidence:
    return ValidationEvidence(
        result=TargetValidation(format="onnx", passed=passed, max_abs=0.5 if not passed else 1e-7),
        failure_reason="" if passed else "ToleranceExceeded",
        failure_message="" if passed else "output y: max abs 0.5 > atol",
    )


def plan(
    target: TargetObservation,
    *,
    source: SourceObservation = FOUND,
    approval: str = "auto",
    annotations: dict[str, str] | None = None,
    status: ModelConversionStatus | None = None,
    generation: int = 1,
    now: dt.datetime = NOW,
) -> ConversionPlan:
    return plan_conversion(
        generation=generation,
        spec=make_spec(approval),
        status=status,
        annotations=annotations or {},
        source=source,
        targets=[target],
        now=now,
    )


def condition(result: ConversionPlan, kind: str) -> tuple[str, str]:
    found = get_condition(result.status.conditions, kind)
    assert found is not None, kind
    return found.status, found.reason


def test_missing_source_fails_without_jobs() -> None:
    result = plan(TargetObservation(ONNX), source=SourceObservation(False, "s3://x/: no objects"))
    assert result.status.phase == "Failed"
    assert condition(result, "Ready") == ("False", "SourceNotFound")
    assert result.create_jobs == ()


def test_fresh_conversion_creates_one_convert_validate_job() -> None:
    result = plan(TargetObservation(ONNX))
    assert result.status.phase == "Converting"
    assert result.create_jobs == (("convert-validate", "onnx"),)
    assert result.status.observed_generation == 1


def test_running_convert_validate_job_converts_until_the_manifest_exists() -> None:
    result = plan(TargetObservation(ONNX, convert_validate_job=JobView("j", "Active")))
    assert result.status.phase == "Converting"
    assert condition(result, "Converted") == ("False", "Converting")
    assert result.create_jobs == ()
    assert result.status.jobs == {"convert-validate-onnx": "j"}


def test_running_convert_validate_job_validates_once_the_manifest_exists() -> None:
    job = JobView("j", "Active")
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT, convert_validate_job=job))
    assert result.status.phase == "Validating"
    assert condition(result, "Converted") == ("True", "Converted")
    assert condition(result, "Validated") == ("False", "Validating")
    assert result.create_jobs == ()
    assert result.status.artifacts == [ARTIFACT]


@pytest.mark.parametrize(
    ("job", "report_failure", "reason"),
    [
        (JobView("j", "Failed", "SourceNotFound", "exit 10"), None, "SourceNotFound"),
        (JobView("j", "Failed", "DeadlineExceeded", "too slow"), None, "DeadlineExceeded"),
        (
            JobView("j", "Failed", "BackoffLimitExceeded", ""),
            ("UnsupportedOperator", "paddle2onnx cannot convert cumprod"),
            "UnsupportedOperator",
        ),
    ],
)
def test_failed_convert_validate_job_without_artifact_is_a_conversion_failure(
    job: JobView, report_failure: tuple[str, str] | None, reason: str
) -> None:
    observed = TargetObservation(ONNX, convert_validate_job=job, conversion_failure=report_failure)
    result = plan(observed)
    assert result.status.phase == "Failed"
    assert condition(result, "Converted") == ("False", reason)
    assert condition(result, "Ready") == ("False", reason)
    assert result.create_jobs == ()


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (JobView("j", "Failed", "InvalidModel", "exit 11"), "InvalidModel"),
        (JobView("j", "Failed", "DeadlineExceeded", "too slow"), "DeadlineExceeded"),
    ],
)
def test_failed_convert_validate_job_with_artifact_is_a_validation_failure(
    job: JobView, reason: str
) -> None:
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT, convert_validate_job=job))
    assert result.status.phase == "Failed"
    assert condition(result, "Converted") == ("True", "Converted")
    assert condition(result, "Validated") == ("False", reason)
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and "convert-validate Job j failed" in ready.message
    assert result.create_jobs == ()


@pytest.mark.parametrize(
    "job",
    [
        JobView("j", "Succeeded"),
        JobView("j", "Succeeded", settings_current=False),
        JobView("j", "Failed", "InvalidModel", settings_current=False),
    ],
    ids=["succeeded without matching evidence", "validated older settings", "failed on them"],
)
def test_convert_validate_job_without_current_evidence_is_followed_by_a_validate_job(
    job: JobView,
) -> None:
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT, convert_validate_job=job))
    assert result.status.phase == "Validating"
    assert result.create_jobs == (("validate", "onnx"),)
    assert result.status.jobs == {"convert-validate-onnx": "j"}


def test_convert_validate_job_with_older_settings_is_waited_for_while_it_runs() -> None:
    job = JobView("j", "Active", settings_current=False)
    converting = plan(TargetObservation(ONNX, convert_validate_job=job))
    assert (converting.status.phase, converting.create_jobs) == ("Converting", ())
    validating = plan(TargetObservation(ONNX, artifact=ARTIFACT, convert_validate_job=job))
    assert (validating.status.phase, validating.create_jobs) == ("Validating", ())


def test_convert_validate_job_that_succeeded_without_a_manifest_fails() -> None:
    result = plan(TargetObservation(ONNX, convert_validate_job=JobView("j", "Succeeded")))
    assert result.status.phase == "Failed"
    assert condition(result, "Converted") == ("False", "ArtifactMissing")


def test_validate_job_decides_once_it_exists_beside_a_convert_validate_job() -> None:
    observed = TargetObservation(
        ONNX,
        artifact=ARTIFACT,
        convert_validate_job=JobView("cvl", "Succeeded", settings_current=False),
        validate_job=JobView("vl", "Failed", "StorageError", "exit 14"),
    )
    result = plan(observed)
    assert result.status.phase == "Failed"
    assert condition(result, "Validated") == ("False", "StorageError")
    assert result.status.jobs == {"convert-validate-onnx": "cvl", "validate-onnx": "vl"}


def test_stored_artifact_needs_no_convert_job_and_starts_validation() -> None:
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT))
    assert result.create_jobs == (("validate", "onnx"),)
    assert result.status.phase == "Validating"
    assert condition(result, "Converted") == ("True", "Converted")
    assert result.status.artifacts == [ARTIFACT]


def test_passed_validation_with_auto_approval_is_ready() -> None:
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(True)))
    assert result.status.phase == "Succeeded"
    assert condition(result, "Approved") == ("True", "AutoApproved")
    assert condition(result, "Ready") == ("True", "Approved")
    assert result.create_jobs == ()
    assert result.requeue_after is None
    assert result.status.formats == "onnx"


def test_tolerance_exceeded_fails_with_the_reports_words() -> None:
    result = plan(TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(False)))
    assert result.status.phase == "Failed"
    assert condition(result, "Validated") == ("False", "ToleranceExceeded")
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and "max abs 0.5" in ready.message


@pytest.mark.parametrize(
    ("annotations", "phase", "approved"),
    [
        ({}, "AwaitingApproval", ("False", "AwaitingApproval")),
        ({APPROVED_GENERATION_ANNOTATION: "1"}, "AwaitingApproval", ("False", "AwaitingApproval")),
        ({APPROVED_GENERATION_ANNOTATION: "2"}, "Succeeded", ("True", "ManuallyApproved")),
    ],
    ids=["not approved", "approved an older generation", "approved this generation"],
)
def test_manual_approval_is_per_generation(
    annotations: dict[str, str], phase: str, approved: tuple[str, str]
) -> None:
    observed = TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(True))
    result = plan(observed, approval="manual", annotations=annotations, generation=2)
    assert result.status.phase == phase
    assert condition(result, "Approved") == approved


def test_failure_of_this_generation_is_final_even_after_jobs_are_gone() -> None:
    failed = plan(
        TargetObservation(ONNX, convert_validate_job=JobView("j", "Failed", "InvalidModel"))
    )
    again = plan(TargetObservation(ONNX), status=failed.status)
    assert again.create_jobs == ()
    assert again.status == failed.status


def test_a_new_generation_retries_after_a_failure() -> None:
    failed = plan(
        TargetObservation(ONNX, convert_validate_job=JobView("j", "Failed", "InvalidModel"))
    )
    retried = plan(TargetObservation(ONNX), status=failed.status, generation=2)
    assert retried.create_jobs == (("convert-validate", "onnx"),)
    assert retried.status.observed_generation == 2


def test_a_new_generation_is_not_ready_in_the_pass_that_first_observes_it() -> None:
    observed = TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(True))
    ready = plan(observed)
    first = plan(observed, status=ready.status, generation=2)
    assert first.status.phase == "Pending"
    assert condition(first, "Ready") == ("False", "Reconciling")
    found = get_condition(first.status.conditions, "Ready")
    assert found is not None and found.observed_generation == 2
    second = plan(observed, status=first.status, generation=2)
    assert second.status.phase == "Succeeded"
    assert condition(second, "Ready") == ("True", "Approved")


def test_a_new_generation_that_is_not_ready_keeps_its_own_reason() -> None:
    observed = TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(True))
    ready = plan(observed)
    validating = plan(TargetObservation(ONNX, artifact=ARTIFACT), status=ready.status, generation=2)
    assert condition(validating, "Ready") == ("False", "Validating")


def test_transition_time_is_kept_while_a_condition_holds() -> None:
    first = plan(TargetObservation(ONNX))
    later = plan(
        TargetObservation(ONNX, convert_validate_job=JobView("j", "Active")),
        status=first.status,
        now=NOW + dt.timedelta(minutes=5),
    )
    before = get_condition(first.status.conditions, "Ready")
    after = get_condition(later.status.conditions, "Ready")
    assert before is not None and after is not None
    assert after.last_transition_time == before.last_transition_time


def _timed(fmt: str, p50_ms: float) -> TargetObservation:
    latency = LatencyStats(p50_ms=p50_ms, p90_ms=p50_ms, p99_ms=p50_ms)
    result = TargetValidation(format=fmt, passed=True, target_latency=latency)  # type: ignore[arg-type]
    artifact = ARTIFACT.model_copy(update={"format": fmt})
    return TargetObservation(
        Target(format=fmt),  # type: ignore[arg-type]
        artifact=artifact,
        validation=ValidationEvidence(result=result, failure_reason="", failure_message=""),
    )


def _plan_all(
    targets: list[TargetObservation], annotations: dict[str, str] | None = None
) -> ConversionPlan:
    return plan_conversion(
        generation=3,
        spec=make_spec().model_copy(update={"targets": [t.target for t in targets]}),
        status=None,
        annotations=annotations or {},
        source=FOUND,
        targets=targets,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("int8_ms", "fp16_ms", "slower"),
    [
        (1.0, 1.5, None),
        (2.5, 1.5, "onnx-int8 median 2.500 ms > onnx (fp32) median 2.000 ms"),
        (2.5, 2.1, "onnx-int8 median 2.500 ms > onnx (fp32) median 2.000 ms; "
                   "onnx-fp16 median 2.100 ms > onnx (fp32) median 2.000 ms"),
    ],
    ids=["faster", "int8 slower", "both slower"],
)  # fmt: skip
def test_reduced_precision_slower_than_fp32_is_flagged_and_not_auto_approved(
    int8_ms: float, fp16_ms: float, slower: str | None
) -> None:
    targets = [_timed("onnx", 2.0), _timed("onnx-int8", int8_ms), _timed("onnx-fp16", fp16_ms)]
    result = _plan_all(targets)
    found = get_condition(result.status.conditions, "SlowerThanFloat")
    if slower is None:
        assert found is None
        assert result.status.phase == "Succeeded"
        return
    assert found is not None and found.message == slower
    assert result.status.phase == "AwaitingApproval"
    assert condition(result, "Ready") == ("False", "SlowerThanFloat")
    approved = _plan_all(targets, {APPROVED_GENERATION_ANNOTATION: "3"})
    assert approved.status.phase == "Succeeded"
    assert condition(approved, "Approved") == ("True", "ManuallyApproved")
    assert get_condition(approved.status.conditions, "SlowerThanFloat") is not None


def test_slower_than_float_needs_an_fp32_target_to_compare_with() -> None:
    result = _plan_all([_timed("onnx-int8", 9.0)])
    assert get_condition(result.status.conditions, "SlowerThanFloat") is None
    assert result.status.phase == "Succeeded"


def test_a_corrupted_approved_artifact_makes_the_conversion_artifact_corrupted() -> None:
    intact = TargetObservation(ONNX, artifact=ARTIFACT, validation=make_evidence(True))
    ready = plan(intact)
    corruption = f"onnx: {ARTIFACT.uri}: expected 10 bytes, sha256 {'a' * 64}, found 12 bytes"
    corrupted = plan(
        TargetObservation(
            ONNX, artifact=ARTIFACT, validation=make_evidence(True), corruption=corruption
        ),
        status=ready.status,
    )
    assert corrupted.status.phase == ARTIFACT_CORRUPTED
    found = get_condition(corrupted.status.conditions, "Ready")
    assert found is not None and (found.status, found.reason) == ("False", ARTIFACT_CORRUPTED)
    assert corruption in found.message
    approved = get_condition(corrupted.status.conditions, "Approved")
    assert approved is not None and approved.status == "True"
    assert corrupted.create_jobs == ()
    restored = plan(intact, status=corrupted.status)
    assert restored.status.phase == "Succeeded"
