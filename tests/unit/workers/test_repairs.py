"""The norm-epsilon repair and the float sets on hand-built graphs (no Paddle needed)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from modelfleet.remedies import Settings
from modelfleet.workers.errors import InvalidModel
from modelfleet.workers.repairs import (
    float_node_names,
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
    assert float_node_names(model, settings) == ["MatMul.0/MatMulAddFusion", "Resize.0"]
