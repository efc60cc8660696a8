"""The comparison rule, table-driven with the nasty cases (Polygraphy's semantics)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfleet.api.conversion import Tolerance
from modelfleet.comparison import (
    OutputResult,
    Rule,
    compare_output,
    compare_outputs,
    cosine_similarity,
    effective_rule,
    element_errors,
    top_k_agreement,
)

STRICT = Rule(atol=1e-5, rtol=1e-5)
NAN, INF = math.nan, math.inf


def f32(*values: float) -> np.ndarray[Any, Any]:
    return np.array(values, dtype=np.float32)


CASES = [
    # id, reference, candidate, rule, passes
    ("identical", f32(1, 2, 3), f32(1, 2, 3), STRICT, True),
    ("within atol", f32(1, 2, 3), f32(1, 2, 3 + 5e-6), STRICT, True),
    ("beyond atol within rtol", f32(1000.0), f32(1000.001), Rule(1e-5, 1e-5), True),
    ("beyond both", f32(1.0), f32(1.1), STRICT, False),
    ("nan in candidate", f32(1, 2), f32(1, NAN), STRICT, False),
    ("nan in reference", f32(NAN, 2), f32(NAN, 2), STRICT, False),
    ("nan even with huge tolerance", f32(1.0), f32(NAN), Rule(1e9, 1e9), False),
    ("same infinities", f32(INF, -INF, 1), f32(INF, -INF, 1), STRICT, True),
    ("inf vs finite", f32(INF), f32(1e30), STRICT, False),
    ("opposite infinities", f32(INF), f32(-INF), Rule(1e9, 1e9), False),
    ("zero reference, zero candidate", f32(0, 0), f32(0, 0), STRICT, True),
    ("zero reference, tiny candidate within atol", f32(0.0), f32(1e-6), STRICT, True),
    ("zero reference, candidate beyond atol", f32(0.0), f32(1e-3), STRICT, False),
    ("bool equal", np.array([True, False]), np.array([True, False]), STRICT, True),
    ("bool differs", np.array([True, False]), np.array([True, True]), STRICT, False),
    ("int64 equal", np.array([3, 7], np.int64), np.array([3, 7], np.int64), STRICT, True),
    ("int64 off by one", np.array([3, 7], np.int64), np.array([3, 8], np.int64), STRICT, False),
    ("int64 off by one, loose", np.array([100], np.int64), np.array([101], np.int64),
     Rule(atol=0.0, rtol=0.02), True),
    ("shape mismatch", f32(1, 2), f32(1, 2, 3), STRICT, False),
    ("cosine gate fails", f32(1, 0), f32(0, 1), Rule(1e9, 1e9, min_cosine=0.5), False),
    ("cosine gate passes", f32(1, 2), f32(1.01, 2), Rule(1e9, 1e9, min_cosine=0.99), True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "candidate", "rule", "passes"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule_table(
    reference: np.ndarray[Any, Any], candidate: np.ndarray[Any, Any], rule: Rule, passes: bool
) -> None:
    result = compare_output("out", reference, candidate, rule)
    assert bool(result) is passes, result.failures
    assert result.passed is passes
    if not passes:
        assert result.failures


def test_metrics_values() -> None:
    result = compare_output("out", f32(1, 2, 4), f32(1, 2.5, 3), STRICT)
    assert result.max_abs == pytest.approx(1.0)
    assert result.max_rel == pytest.approx(0.25)
    assert result.l2 == pytest.approx(math.sqrt(0.25 + 1.0))
    assert result.mismatched == 2 and result.total == 3
    assert result.cosine == pytest.approx(
        np.dot([1, 2, 4], [1, 2.5, 3]) / (np.linalg.norm([1, 2, 4]) * np.linalg.norm([1, 2.5, 3]))
    )


def test_relative_error_with_zero_reference() -> None:
    abs_diff, rel_diff = element_errors(f32(0, 0, 2), f32(0, 1, 2))
    assert list(abs_diff) == [0, 1, 0]
    assert rel_diff[0] == 0 and math.isinf(rel_diff[1]) and rel_diff[2] == 0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (f32(0, 0), f32(0, 0), 1.0),
        (f32(0, 0), f32(1, 0), 0.0),
        (f32(1, 0), f32(-1, 0), -1.0),
        (f32(1, NAN), f32(1, 1), NAN),
        (f32(INF, 1), f32(INF, 1), 1.0),
    ],
)
def test_cosine_edge_cases(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], expected: float
) -> None:
    value = cosine_similarity(a, b)
    if math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == pytest.approx(expected)


def test_top_k_agreement() -> None:
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    cand = np.array([[0.1, 0.9, 0.0], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5]])
    assert top_k_agreement(ref, cand, 1) == pytest.approx(2 / 3)
    assert top_k_agreement(ref, cand, 2) == pytest.approx(1.0)


def test_quantized_gate_uses_top_k_not_elements() -> None:
    rule = effective_rule("onnx-int8", Tolerance(top_k_agreement=0.99))
    assert rule.elementwise is False
    ref = np.array([[[1.0, 5.0, 0.0]], [[4.0, 0.0, 1.0]]], dtype=np.float32)
    close = ref + 0.3  # far beyond atol=1e-5, same classes
    assert compare_outputs(["p"], [ref], [close], rule, quantized=True)
    flipped = ref[:, :, ::-1].copy()
    result = compare_outputs(["p"], [ref], [flipped], rule, quantized=True)
    assert not result
    assert result.outputs[0].top1_agreement == pytest.approx(0.5)  # row 2 flips class 0 → 2


def test_format_defaults_are_scale_free() -> None:
    fp32 = effective_rule("onnx", None)
    assert (fp32.max_normalized_error, fp32.max_relative_l2, fp32.elementwise) == (
        5e-5,
        5e-5,
        False,
    )
    fp16 = effective_rule("onnx-fp16", None)
    assert (fp16.max_normalized_error, fp16.max_relative_l2, fp16.min_cosine) == (
        1e-2,
        1e-2,
        0.99999,
    )
    int8 = effective_rule("onnx-int8", None)
    assert int8.top_k_agreement is None and not int8.elementwise and int8.min_cosine == 0.995


@pytest.mark.parametrize(
    ("reference", "candidate", "passed"),
    [
        # ResNet-50 shaped: logits up to 360, float noise 4e-4 (1.1e-6 of the scale) passes
        (np.linspace(-360, 360, 1000), np.linspace(-360, 360, 1000) + 4e-4, True),
        # the same logits with one class 1% off: 3.6 / 360 = 1e-2 fails
        (np.linspace(-360, 360, 1000), np.r_[np.linspace(-360, 360, 1000)[:-1], 363.6], False),
        # tiny outputs (MobileNetV3 logits ~0.01): scale-free, 1e-8 noise passes
        (np.full(10, 0.01), np.full(10, 0.01) + 1e-8, True),
        (np.zeros(4), np.zeros(4), True),  # all-zero reference, exact candidate
        (np.zeros(4), np.array([0, 0, 0, 1e-9]), False),  # any error on a zero scale
        (np.array([1.0, np.nan]), np.array([1.0, np.nan]), False),  # NaN always fails
    ],
    ids=["deep logits", "one logit off", "tiny outputs", "zeros", "zero scale", "nan"],
)
def test_fp32_default_judges_relative_to_the_reference_scale(
    reference: npt.NDArray[Any], candidate: npt.NDArray[Any], passed: bool
) -> None:
    result = compare_output("y", reference, candidate, effective_rule("onnx", None))
    assert result.passed is passed, result.failures


def test_a_scaled_bound_in_a_users_tolerance_makes_the_element_rule_informational() -> None:
    scaled = effective_rule("onnx", Tolerance(max_relative_l2=1e-3))
    assert not scaled.elementwise and scaled.max_relative_l2 == 1e-3
    assert effective_rule("onnx", Tolerance(atol=1e-3)).elementwise


def test_rollup_reports_worst_case() -> None:
    result = compare_outputs(["a", "b"], [f32(1, 2), f32(3)], [f32(1, 2), f32(3.5)], STRICT)
    assert not result
    assert result.stats()["max_abs"] == pytest.approx(0.5)
    assert result.failures() and result.failures()[0].startswith("b:")


# One output of a report.json written before OutputResult became the report's entry type.
STORED_OUTPUT = {
    "name": "out", "referenceName": "fetch_0", "passed": False, "dtype": "float32",
    "maxAbs": "Infinity", "maxRel": 0.5, "meanAbs": 0.25, "l2": 1.5, "cosine": "NaN",
    "mismatched": 2, "total": 3, "top1Agreement": None, "topKAgreement": None, "topK": None,
    "failures": ["2/3 elements exceed atol=1e-05 and rtol=1e-05"],
}  # fmt: skip


def test_stored_report_output_reads_back_and_writes_the_same_fields() -> None:
    result = OutputResult.model_validate(STORED_OUTPUT)
    assert not result and math.isinf(result.max_abs) and math.isnan(result.cosine)
    assert result.reference_name == "fetch_0" and result.failures == tuple(
        STORED_OUTPUT["failures"]
    )
    written = json.loads(result.to_json())
    added = {"normalizedError", "relativeL2"}  # evidence added since; absent reads as None
    assert {key: value for key, value in written.items() if key not in added} == STORED_OUTPUT
    assert [key for key in written if key not in added] == list(STORED_OUTPUT)


def test_comparison_is_written_as_computed_with_its_reference_names() -> None:
    result = compare_outputs(["a"], [f32(1, 2)], [f32(1, 2)], STRICT, reference_names=["x"])
    written = json.loads(result.outputs[0].to_json())
    assert written["name"] == "a" and written["referenceName"] == "x" and written["passed"]
    assert compare_outputs(["a"], [f32(1)], [f32(1)], STRICT).outputs[0].reference_name is None
