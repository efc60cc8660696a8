"""The on-device check: which comparison decides, and ONNX Runtime on a real tiny model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from unit.agent.builders import WEIGHT, make_model_file, make_probe_file

from modelfleet.agent.errors import LoadFailed, ProbeFailed
from modelfleet.agent.probe import (
    check_plan,
    judge,
    load_session,
    read_probe,
    run_probe,
    with_tolerance,
)
from modelfleet.api.conversion import Tolerance

INT8_RULE = {
    "atol": 0.1,
    "rtol": 0.1,
    "minCosine": 0.99,
    "topKAgreement": 0.99,
    "topK": 1,
    "elementwise": False,
}
FP16_RULE = {"atol": 1e-2, "rtol": 1e-2, "minCosine": 0.999, "elementwise": True}

PLANS = [
    # id, meta, format, has candidate, against, atol, aggregate gates kept
    ("no tolerance", {}, "onnx", True, "reference", 1e-3, False),
    ("fp32", {"tolerance": {"atol": 1e-5, "rtol": 1e-5}}, "onnx", True, "reference", 1e-5, False),
    ("fp16 drops cosine", {"tolerance": FP16_RULE}, "onnx-fp16", True, "reference", 1e-2, False),
    ("int8", {"tolerance": INT8_RULE, "format": "onnx-int8"}, "onnx-int8", True, "candidate", 0.1,
     False),
    ("int8 by rule only", {"tolerance": INT8_RULE}, "onnx", True, "candidate", 0.1, False),
    ("int8 without candidate", {"tolerance": INT8_RULE}, "onnx-int8", False, "reference", 0.1,
     True),
    ("snake case keys", {"tolerance": {"atol": 2e-5, "rtol": 2e-5, "min_cosine": 0.5}}, "onnx",
     True, "reference", 2e-5, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("meta", "fmt", "has_candidate", "against", "atol", "gates"),
    [p[1:] for p in PLANS],
    ids=[p[0] for p in PLANS],
)
def test_check_plan(
    meta: dict[str, Any], fmt: str, has_candidate: bool, against: str, atol: float, gates: bool
) -> None:
    plan = check_plan(meta, fmt, has_candidate)
    assert plan.against == against and plan.rule.atol == atol
    assert (plan.rule.min_cosine is not None) == gates
    assert plan.rule.elementwise == (not gates)


def arrays(reference: Any, candidate: Any | None = None) -> dict[str, Any]:
    out = {"input:x": np.zeros((len(reference), 1, 4), np.float32), "output:y": reference}
    if candidate is not None:
        out["candidate:y"] = candidate
    return out


REF = np.array([[[1.0, 2.0, 3.0]], [[0.0, -1.0, 4.0]]], dtype=np.float32)
FP32 = {"tolerance": {"atol": 1e-5, "rtol": 1e-5}}

JUDGED = [
    # id, device output, probe arrays, meta, format, passes
    ("identical", REF, arrays(REF), FP32, "onnx", True),
    ("within atol", REF + 5e-6, arrays(REF), FP32, "onnx", True),
    ("beyond both", REF + 1e-3, arrays(REF), FP32, "onnx", False),
    ("nan always fails", np.where(REF == 4, np.nan, REF), arrays(REF), {}, "onnx", False),
    ("default 1e-3 passes small drift", REF + 5e-4, arrays(REF), {}, "onnx", True),
    ("wrong shape", REF[:1], arrays(REF), FP32, "onnx", False),
    ("int8 judged against its own candidate", REF + 0.05, arrays(REF + 0.3, REF + 0.05),
     {"tolerance": INT8_RULE}, "onnx-int8", True),
    ("int8 far from its candidate", REF + 0.5, arrays(REF + 0.5 - 1.0, REF),
     {"tolerance": INT8_RULE}, "onnx-int8", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("device", "probe", "meta", "fmt", "passes"),
    [j[1:] for j in JUDGED],
    ids=[j[0] for j in JUDGED],
)
def test_judge(
    device: Any, probe: dict[str, Any], meta: dict[str, Any], fmt: str, passes: bool
) -> None:
    verdict = judge({"y": device}, probe, meta, fmt)
    assert bool(verdict) == passes, verdict.summary()


def test_judge_reports_max_abs_of_the_deciding_comparison() -> None:
    verdict = judge(
        {"y": REF + 0.25}, arrays(REF, REF + 0.25), {"tolerance": INT8_RULE}, "onnx-int8"
    )
    assert verdict.against == "candidate" and verdict.max_abs == 0.0


def test_a_variant_tolerance_replaces_the_validated_one() -> None:
    drifted = {"y": REF + 5e-4}
    assert not judge(drifted, arrays(REF), FP32, "onnx")
    loose = with_tolerance(FP32, "onnx", Tolerance(atol=1e-3, rtol=1e-3))
    assert judge(drifted, arrays(REF), loose, "onnx")
    assert with_tolerance(FP32, "onnx", None) == FP32


def test_a_missing_output_fails() -> None:
    verdict = judge({"z": REF}, arrays(REF), FP32, "onnx")
    assert not verdict and "did not produce y" in verdict.summary()
    assert math.isinf(verdict.max_abs)


def test_run_probe_on_onnx_runtime(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    probe_arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    verdict = run_probe(load_session(tmp_path / "m.onnx"), probe_arrays, meta, "onnx")
    assert verdict and verdict.samples == 4 and verdict.max_abs < 1e-5
    assert verdict.latency_ms > 0


def test_a_model_that_computes_something_else_fails_its_probe(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx", WEIGHT + 0.01)
    probe_arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    verdict = run_probe(load_session(tmp_path / "m.onnx"), probe_arrays, meta, "onnx")
    assert not verdict and "exceed atol=1e-05" in verdict.summary()


def test_a_probe_for_other_inputs_fails(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    probe_arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    probe_arrays["input:image"] = probe_arrays.pop("input:x")
    with pytest.raises(ProbeFailed, match="no input 'x'"):
        run_probe(load_session(tmp_path / "m.onnx"), probe_arrays, meta, "onnx")


def test_a_probe_naming_outputs_the_model_lacks_fails(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    probe_arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    probe_arrays["output:logits"] = probe_arrays["output:y"]
    with pytest.raises(ProbeFailed, match="no output 'logits'"):
        run_probe(load_session(tmp_path / "m.onnx"), probe_arrays, meta, "onnx")


def test_garbage_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(LoadFailed, match="ONNX Runtime cannot load"):
        load_session(tmp_path / "m.onnx")


def test_garbage_is_not_a_probe(tmp_path: Path) -> None:
    (tmp_path / "p.npz").write_bytes(b"not a zip")
    with pytest.raises(ProbeFailed, match="not a readable probe"):
        read_probe(tmp_path / "p.npz")
