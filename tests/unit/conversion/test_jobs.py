"""Job manifests: deterministic names, credentials only by reference, fail-fast policy."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from modelfleet.api.conversion import (
    InputSpec,
    ModelConversion,
    ModelConversionSpec,
    Source,
    Target,
    TargetFormat,
)
from modelfleet.dev.joboutcomes import attempt_outcome
from modelfleet.operator.conversion.jobs import (
    PERMANENT_EXIT_CODES,
    STEP_LABEL,
    VALIDATION_KEY_ANNOTATION,
    JobRequest,
    build_job,
    job_name,
)
from modelfleet.operator.conversion.observations import (
    exit_code_from_message,
    job_view,
    source_fingerprint,
)
from modelfleet.operator.settings import JobDefaults, OperatorSettings
from modelfleet.reasons import EXIT_CODES

SETTINGS = OperatorSettings(s3_endpoint="http://127.0.0.1:9000", bucket="modelfleet")


def make_conversion() -> ModelConversion:
    return ModelConversion(
        metadata={"name": "a" * 60, "namespace": "ns", "uid": "u-1"},
        spec=ModelConversionSpec(
            source=Source(uri="s3://modelfleet/m/"),
            inputs=[InputSpec(name="x", shape=[1, 4])],
            targets=[Target(format="onnx-int8")],
        ),
    )


def test_job_names_are_deterministic_short_and_keyed_by_work() -> None:
    first = job_name("a" * 60, "validate", "onnx-int8", "digest-1")
    assert first == job_name("a" * 60, "validate", "onnx-int8", "digest-1")
    assert first != job_name("a" * 60, "validate", "onnx-int8", "digest-2")
    assert first != job_name("a" * 60, "validate", "onnx-fp16", "digest-1")
    combined = job_name("a" * 60, "convert-validate", "onnx-int8", "digest-1")
    assert combined != first
    assert "-cvl-int8-" in combined and "-vl-int8-" in first
    assert max(len(first), len(combined)) <= 63


@pytest.mark.parametrize("fmt", get_args(TargetFormat))
def test_every_format_fits_a_job_name(fmt: str) -> None:
    name = job_name("a" * 60, "convert-validate", fmt, "digest-1")
    assert len(name) <= 63
    assert name != job_name("a" * 60, "convert-validate", "onnx-int8", "digest-1") or (
        fmt == "onnx-int8"
    )


@pytest.mark.parametrize(
    ("fmt", "image"),
    [
        ("onnx", "registry.local/worker:1"),
        ("onnx-int8", "registry.local/worker:1"),
        ("tf-savedmodel", "registry.local/worker-tf:1"),
        ("tflite", "registry.local/worker-tf:1"),
        ("tflite-dynamic-range", "registry.local/worker-tf:1"),
    ],
)
def test_tensorflow_targets_run_in_the_tf_worker_image(fmt: TargetFormat, image: str) -> None:
    settings = OperatorSettings.from_env(
        {
            "MODELFLEET_WORKER_IMAGE": "registry.local/worker:1",
            "MODELFLEET_WORKER_TF_IMAGE": "registry.local/worker-tf:1",
        }
    )
    job = build_job(
        make_conversion(), JobRequest("validate", Target(format=fmt), {}, "k"), settings
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_convert_validate_job_runs_that_command_and_names_its_validation_settings() -> None:
    request = JobRequest(
        "convert-validate", Target(format="onnx-int8"), {"digest": "d"}, "d", validation_key="v1"
    )
    job = build_job(make_conversion(), request, SETTINGS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "convert-validate"
    assert job["metadata"]["labels"][STEP_LABEL] == "convert-validate"
    assert job["metadata"]["annotations"] == {VALIDATION_KEY_ANNOTATION: "v1"}
    plain = build_job(
        make_conversion(), JobRequest("validate", Target(format="onnx"), {}, "k"), SETTINGS
    )
    assert "annotations" not in plain["metadata"]


@pytest.mark.parametrize(
    ("annotations", "expected", "current"),
    [
        ({VALIDATION_KEY_ANNOTATION: "v1"}, "v1", True),
        ({VALIDATION_KEY_ANNOTATION: "v1"}, "v2", False),
        ({}, "v2", False),
        ({}, None, True),
    ],
    ids=["same settings", "older settings", "unannotated", "not a convert-validate Job"],
)
def test_job_view_tells_whether_a_job_validated_the_current_settings(
    annotations: dict[str, str], expected: str | None, current: bool
) -> None:
    job = {
        "metadata": {"name": "j", "annotations": annotations},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    view = job_view(job, validation_key=expected)
    assert (view.state, view.settings_current) == ("Succeeded", current)


def test_credentials_reach_the_job_only_through_secret_key_refs() -> None:
    request = JobRequest("convert-validate", Target(format="onnx-int8"), {"digest": "d"}, "d")
    job = build_job(make_conversion(), request, SETTINGS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    for secret_var in ("MODELFLEET_S3_ACCESS_KEY", "MODELFLEET_S3_SECRET_KEY"):
        assert "value" not in by_name[secret_var]
        assert by_name[secret_var]["valueFrom"]["secretKeyRef"]["name"] == "modelfleet-storage"
    assert "secret" not in json.dumps(container["args"]).lower()
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_permanent_worker_failures_fail_the_job_without_retry() -> None:
    request = JobRequest("validate", Target(format="onnx-int8"), {}, "k")
    policy = build_job(make_conversion(), request, SETTINGS)["spec"]["podFailurePolicy"]
    assert EXIT_CODES["ToleranceExceeded"] in PERMANENT_EXIT_CODES
    assert EXIT_CODES["StorageError"] not in PERMANENT_EXIT_CODES
    outcome = attempt_outcome(
        exit_code=EXIT_CODES["ToleranceExceeded"],
        failed_so_far=0,
        backoff_limit=3,
        pod_failure_policy=policy,
        container="worker",
        pod_name="ns/p",
    )
    assert (outcome.verdict, outcome.reason) == ("Failed", "PodFailurePolicy")
    assert exit_code_from_message(outcome.message) == EXIT_CODES["ToleranceExceeded"]


def test_retryable_failures_count_against_the_backoff_limit() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [10]}}]}
    common = {
        "exit_code": 14,
        "backoff_limit": 1,
        "pod_failure_policy": policy,
        "container": "worker",
        "pod_name": "p",
    }
    assert attempt_outcome(failed_so_far=0, **common).verdict == "Retry"  # type: ignore[arg-type]
    final = attempt_outcome(failed_so_far=1, **common)  # type: ignore[arg-type]
    assert (final.verdict, final.reason) == ("Failed", "BackoffLimitExceeded")


def test_ignore_rules_do_not_count() -> None:
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}}]}
    outcome = attempt_outcome(
        exit_code=137,
        failed_so_far=5,
        backoff_limit=0,
        pod_failure_policy=policy,
        container="worker",
        pod_name="p",
    )
    assert outcome.verdict == "Retry" and not outcome.counts_as_failure


def test_success_completes() -> None:
    outcome = attempt_outcome(
        exit_code=0,
        failed_so_far=0,
        backoff_limit=0,
        pod_failure_policy=None,
        container="worker",
        pod_name="p",
    )
    assert outcome.verdict == "Complete"


def test_source_fingerprint_changes_with_content_and_ignores_order() -> None:
    listing = {"model.json": (10, "e1"), "model.pdiparams": (99, "e2")}
    same = dict(reversed(list(listing.items())))
    changed = {**listing, "model.pdiparams": (99, "e3")}
    assert source_fingerprint(listing) == source_fingerprint(same)
    assert source_fingerprint(listing) != source_fingerprint(changed)


def test_operator_job_defaults_fill_what_the_job_template_leaves_unset() -> None:
    defaults = JobDefaults.from_json(
        '{"resources": {"limits": {"cpu": "2"}}, "nodeSelector": {"pool": "convert"}}'
    )
    settings = OperatorSettings(s3_endpoint="http://s3:9000", bucket="b", job_defaults=defaults)
    request = JobRequest("convert-validate", Target(format="onnx-int8"), {}, "d")
    pod = build_job(make_conversion(), request, settings)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"cpu": "2"}}
    assert pod["nodeSelector"] == {"pool": "convert"}
    own = make_conversion()
    own.spec.job_template.node_selector = {"pool": "gpu"}
    assert build_job(own, request, settings)["spec"]["template"]["spec"]["nodeSelector"] == {
        "pool": "gpu"
    }


def test_malformed_job_defaults_name_the_variable() -> None:
    with pytest.raises(ValueError, match="MODELFLEET_JOB_DEFAULTS: unknown keys"):
        JobDefaults.from_json('{"image": "x"}')
