"""The tolerance proposal and the report on hand-made study rows (pure, no Paddle)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from zoo.faults import FAULTS, swap_channels
from zoo.report import render
from zoo.tolerance import nice_ceil, nice_floor, propose_format


def _row(arch: str, artifact: str, norm: float, rel_l2: float, cosine: float) -> dict[str, Any]:
    return {
        "arch": arch, "artifact": artifact, "format": "onnx", "output": "y", "max_abs": norm,
        "max_ref": 1.0, "norm_max_abs": norm, "max_rel": norm, "cosine": cosine, "l2": rel_l2,
        "rel_l2": rel_l2, "mismatched_fraction": 0.0, "passes_today": True, "note": "",
    }  # fmt: skip


def test_nice_floor() -> None:
    assert nice_floor(3e-4) == 2e-4
    assert nice_floor(7.0) == 5.0
    assert math.isclose(nice_floor(1.5e-2), 1e-2)
    assert nice_ceil(3e-4) == 5e-4 and nice_ceil(6.0) == 10.0 and nice_ceil(2e-3) == 2e-3


def test_threshold_separates_faithful_from_faults() -> None:
    rows = [
        _row("a", "onnx", 1e-6, 1e-6, 1.0),
        _row("b", "onnx", 4e-6, 2e-6, 1.0),
        _row("a", "fault: weight (w[0] += 1)", 1e-2, 5e-3, 0.99999),
        _row("b", "fault: drop (Relu bypassed)", 1e-1, 1e-1, 0.99),
        _row("a", "onnx-fp16", 1.0, 1.0, 0.5),  # another format: ignored for onnx
    ]
    proposal = propose_format(rows, "onnx")
    assert proposal is not None and proposal.faithful_count == 2
    norm = proposal.metrics[0]
    assert norm.worst_faithful == 4e-6 and norm.mildest_fault == 1e-2
    assert 4e-6 < norm.threshold < 1e-2
    assert norm.faithful_margin > 1 and norm.fault_margin > 1
    assert "MISSED" not in proposal.caught.values()


def test_an_inseparable_fault_is_reported_missed() -> None:
    rows = [_row("a", "onnx", 1e-3, 1e-3, 0.9999), _row("a", "fault: tiny (x)", 1e-4, 1e-4, 1.0)]
    proposal = propose_format(rows, "onnx")
    assert proposal is not None
    assert proposal.caught == {"a: tiny": "MISSED"}
    assert "misses a: tiny" in proposal.summary()


def _conv_relu() -> onnx.ModelProto:
    w = np.arange(2 * 3 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 2, 2])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_faults_change_the_graph_and_keep_it_valid() -> None:
    model = _conv_relu()
    for name, inject in FAULTS.items():
        broken, what = inject(model)
        onnx.checker.check_model(broken)
        assert broken.SerializeToString() != model.SerializeToString(), name
        assert what
    swapped, _ = swap_channels(model)
    w = numpy_helper.to_array(swapped.graph.node[0].attribute[0].t)
    assert w[0, 0, 0, 0] == 3.0 and w[1, 0, 0, 0] == 0.0


def test_render_names_every_section() -> None:
    results = {
        "builds": {"resnet50": {"outcome": "exit 0", "seconds": 1.0}},
        "cases": [{
            "arch": "resnet50", "format": "onnx", "converted": False,
            "convert_outcome": "signal SIGSEGV", "convert_seconds": 1.0, "verdict": "not run",
            "reason": "signal SIGSEGV: (no output)", "validate_outcome": None,
            "validate_seconds": None, "traceback": False, "max_abs": None, "cosine": None,
            "l2": None, "failures": [],
        }],
        "studies": {"resnet50": {"rows": [_row("resnet50", "onnx", 1e-6, 1e-6, 1.0)]}},
    }  # fmt: skip
    doc = render(results)
    assert "**crash** (signal SIGSEGV)" in doc
    assert "## Tolerance study" in doc and "## Proposed default tolerances" in doc
