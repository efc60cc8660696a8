"""The norm-epsilon repair and the float sets on hand-built graphs (no Paddle needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelfleet.remedies import Settings
from modelfleet.workers.errors import InvalidModel
from modelfleet.workers.quantize import float_node_names
from modelfleet.workers.repairs import (
    produce,
    program_norm_epsilons,
    repair_norm_epsilon,
)

GARBAGE = -1.0212997428897924e26  # what one paddle2onnx 2.1.0 export wrote


def _program(path: Path, *epsilons: float) -> Path:
    ops = [{"#": "1.conv2d", "A": []}]
    for eps in epsilons:
        ops.append(
            {
                "#": "1.group_norm",
                "A": [
                    {"AT": {"#": "0.a_f64", "D": eps}, "N": "epsilon"},
                    {"AT": {"#": "0.a_i32", "D": 8}, "N": "groups"},
                ],
            }
        )
    program = {"program": {"regions": [{"blocks": [{"ops": ops}]}]}}
    path.write_text(json.dumps(program))
    return path


def _graph(path: Path, norms: int, *, named: bool = True) -> Path:
    """x → (Reshape → InstanceNormalization → Reshape → Mul → Add) `norms` times, as paddle2onnx
    lays out a group_norm; the Add's output carries the Paddle op's name when `named`."""
    nodes: list[onnx.NodeProto] = []
    current = "x"
    for k in range(norms):
        out = f"p2o.pd_op.group_norm.{k}.0" if named else f"Add.{k}"
        nodes += [
            helper.make_node("Reshape", [current, "shape"], [f"r{k}"], name=f"Reshape.{k}"),
            helper.make_node(
                "InstanceNormalization", [f"r{k}", "s", "b"], [f"n{k}"],
                name=f"InstanceNormalization.{k}", epsilon=GARBAGE,
            ),
            helper.make_node("Reshape", [f"n{k}", "back"], [f"u{k}"], name=f"Reshape.b{k}"),
            helper.make_node("Mul", [f"u{k}", "w"], [f"m{k}"], name=f"Mul.{k}"),
            helper.make_node("Add", [f"m{k}", "w"], [out], name=f"Add.{k}"),
        ]  # fmt: skip
        current = out
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, 2, -1]),
        helper.make_tensor("back", TensorProto.INT64, [4], [1, 4, 2, 2]),
        helper.make_tensor("s", TensorProto.FLOAT, [2], [1.0, 1.0]),
        helper.make_tensor("b", TensorProto.FLOAT, [2], [0.0, 0.0]),
        helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, 4, 2, 2])],
        inits,
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def _epsilons(path: Path) -> list[float]:
    graph = onnx.load(str(path)).graph
    return [a.f for n in graph.node if n.op_type == "InstanceNormalization" for a in n.attribute]


def test_program_epsilons_are_read_in_program_order(tmp_path: Path) -> None:
    program = _program(tmp_path / "inference.json", 1e-5, 1e-6)
    assert program_norm_epsilons(program) == [("group_norm", 0, 1e-5), ("group_norm", 1, 1e-6)]
    assert program_norm_epsilons(tmp_path / "inference.pdmodel") == []  # legacy exports right


@pytest.mark.parametrize("named", [True, False])
def test_repair_copies_each_ops_epsilon(tmp_path: Path, named: bool) -> None:
    model = _graph(tmp_path / "model.onnx", 2, named=named)
    program = _program(tmp_path / "inference.json", 1e-5, 1e-3)
    changes = repair_norm_epsilon(model, program)
    assert len(changes) == 2 and "InstanceNormalization.0: epsilon -1.021e+26 -> 1e-05" in changes
    assert _epsilons(model) == pytest.approx([1e-5, 1e-3])
    assert repair_norm_epsilon(model, program) == []  # already right: the file is left alone


def test_repair_refuses_a_graph_it_cannot_match(tmp_path: Path) -> None:
    model = _graph(tmp_path / "model.onnx", 1, named=False)
    with pytest.raises(InvalidModel, match="cannot match 2 Paddle norm op"):
        repair_norm_epsilon(model, _program(tmp_path / "inference.json", 1e-5, 1e-5))


def test_float_sets_name_nodes_fused_ones_and_op_types(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="Relu.0"),
            helper.make_node("Gemm", ["a", "w"], ["b"], name="MatMul.0/MatMulAddFusion"),
            helper.make_node("Resize", ["b"], ["y"], name="Resize.0"),
        ],
        "g",
        [],
        [],
    )
    model = helper.make_model(graph)
    settings = Settings(17, (), ("MatMul.0", "Gone.7"), ("Resize",))
    kept = float_node_names(model, settings.float_nodes, settings.float_op_types)
    assert kept == ["MatMul.0/MatMulAddFusion", "Resize.0"]


def _matmuls(path: Path) -> Path:
    """x → MatMul.0 → Relu → MatMul.1 → y with 16x16 float weights."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(16, 16)).astype(np.float32), f"w{k}")
        for k in range(2)
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["a"], name="MatMul.0"),
            helper.make_node("Relu", ["a"], ["b"], name="Relu.0"),
            helper.make_node("MatMul", ["b", "w1"], ["y"], name="MatMul.1"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("fmt", ["onnx-fp16", "onnx-int8"])
def test_produce_keeps_the_named_nodes_in_float(tmp_path: Path, fmt: str) -> None:
    fp32 = _matmuls(tmp_path / "fp32.onnx")
    out = tmp_path / "out.onnx"
    settings = Settings(17, (), ("MatMul.1",))
    kept = produce(fp32, fmt, settings, out, program=None, work_dir=tmp_path,
                   quantization="dynamic")  # type: ignore[arg-type]  # fmt: skip
    assert kept == ["MatMul.1"]
    graph = onnx.load(str(out)).graph
    by_name = {n.name: n for n in graph.node}
    assert by_name["MatMul.1"].op_type == "MatMul" and "w1" in by_name["MatMul.1"].input
    weights = {t.name: t.data_type for t in graph.initializer}
    assert weights["w1"] == TensorProto.FLOAT  # kept: float32 weights
    assert weights.get("w0") != TensorProto.FLOAT  # MatMul.0 was transformed
    y = onnxruntime.InferenceSession(str(out)).run(None, {"x": np.ones((1, 16), np.float32)})
    assert y[0].shape == (1, 16)
