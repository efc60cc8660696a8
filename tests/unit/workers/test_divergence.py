"""Naming the diverging layer on small ONNX graphs built with onnx.helper (ONNX Runtime, CPU).

Faults are injected the way a broken export looks: a weight nudged by 5% of its tensor's
range, two output channels swapped, a node that computes NaN. fp16 and int8 candidates are
made by the product's own transforms (`quantize.to_fp16`, `quantize.quantize_static_qdq`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelfleet.comparison import Rule, compare_output, effective_rule
from modelfleet.reports import DivergenceInfo, ValidationSection
from modelfleet.workers import divergence, nodewise, paddle_program, quantize
from modelfleet.workers.divergence import Budget, localize_onnx, locate_against_onnx
from modelfleet.workers.nodewise import GraphIndex

FP32 = effective_rule("onnx", None)
FP16 = effective_rule("onnx-fp16", None)
INT8 = effective_rule("onnx-int8", None)


def mlp(seed: int = 0) -> onnx.ModelProto:
    """x [2, 8] → mm1 → relu1 → mm2 (+ bias, Constant weight) → relu2 → mm3 → y [2, 4]."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.4).astype(np.float32), name)

    w2 = weight("w2", 16, 16)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Constant", [], ["w2"], name="const_w2", value=w2),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "b2"], ["h2b"], name="add2"),
        helper.make_node("Relu", ["h2b"], ["a2"], name="relu2"),
        helper.make_node("MatMul", ["a2", "w3"], ["y"], name="mm3"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[weight("w1", 8, 16), weight("b2", 16), weight("w3", 16, 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def samples(count: int = 2, scale: float = 1.0) -> list[dict[str, np.ndarray[Any, Any]]]:
    rng = np.random.default_rng(7)
    return [{"x": (rng.uniform(-1, 1, (2, 8)) * scale).astype(np.float32)} for _ in range(count)]


def edit_weight(model: onnx.ModelProto, name: str, how: str) -> onnx.ModelProto:
    """A copy with weight `name` (initializer or Constant) nudged or two columns swapped."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    tensors = [t for t in copy.graph.initializer if t.name == name]
    tensors += [n.attribute[0].t for n in copy.graph.node if n.output[:1] == [name]]
    tensor = tensors[0]
    array = numpy_helper.to_array(tensor).copy()
    if how == "nudge":
        array.flat[0] += 0.05 * float(array.max() - array.min())
    else:
        array[..., [0, 1]] = array[..., [1, 0]]
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    return copy


def test_identical_models_name_no_node() -> None:
    result = localize_onnx(mlp(), mlp(), samples(), FP32)
    assert result.divergence is None
    assert result.reason is not None and "within the per-node criterion" in result.reason
    assert result.compared == 6  # h1, a1, h2, h2b, a2, y: every compute output


@pytest.mark.parametrize(
    ("weight", "how", "node", "op_type"),
    [
        ("w1", "nudge", "mm1", "MatMul"),
        ("w2", "nudge", "mm2", "MatMul"),  # a Constant node's weight, as paddle2onnx writes
        ("w2", "swap", "mm2", "MatMul"),
        ("b2", "nudge", "add2", "Add"),
        ("w3", "swap", "mm3", "MatMul"),
    ],
)
def test_injected_fault_names_its_node(weight: str, how: str, node: str, op_type: str) -> None:
    result = localize_onnx(edit_weight(mlp(), weight, how), mlp(), samples(), FP32)
    found = result.divergence
    assert found is not None, result.reason
    assert (found.node, found.op_type) == (node, op_type)
    assert found.span == (node,)
    assert found.max_abs > 0 and found.cosine < 1.0
    assert result.ranking[0].node == node  # the node that adds the error ranks first


def test_nan_is_named_where_it_appears() -> None:
    broken = mlp()
    relu = next(n for n in broken.graph.node if n.name == "relu2")
    relu.op_type = "Log"  # log of negative pre-activations: NaN from here on
    found = localize_onnx(broken, mlp(), samples(), FP32).divergence
    assert found is not None
    assert (found.node, found.op_type, found.output) == ("relu2", "Log", "a2")
    assert math.isnan(found.cosine)


def test_fp16_names_are_kept_and_a_faithful_copy_passes(tmp_path: Path) -> None:
    onnx.save(mlp(), tmp_path / "fp32.onnx")
    quantize.to_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    fp16 = onnx.load(tmp_path / "fp16.onnx")
    pairs = nodewise.onnx_pairs(GraphIndex(fp16.graph), GraphIndex(mlp().graph))
    assert [p.output for p in pairs] == ["h1", "a1", "h2", "h2b", "a2", "y"]  # y behind a Cast
    result = localize_onnx(fp16, mlp(), samples(), FP16)
    assert result.divergence is None, result.describe()
    assert result.compared == 6


def test_fp16_fault_is_named(tmp_path: Path) -> None:
    onnx.save(edit_weight(mlp(), "w2", "swap"), tmp_path / "fp32.onnx")
    quantize.to_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    found = localize_onnx(onnx.load(tmp_path / "fp16.onnx"), mlp(), samples(), FP16).divergence
    assert found is not None and found.node == "mm2"


def qdq(tmp_path: Path, calibration_scale: float) -> onnx.ModelProto:
    onnx.save(mlp(), tmp_path / "fp32.onnx")
    calibration = samples(8, calibration_scale)
    quantize.quantize_static_qdq(
        tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration, tmp_path
    )
    return onnx.load(tmp_path / "int8.onnx")


def test_int8_compares_what_consumers_read(tmp_path: Path) -> None:
    int8 = qdq(tmp_path, 1.0)
    pairs = nodewise.onnx_pairs(GraphIndex(int8.graph), GraphIndex(mlp().graph))
    by_output = {p.output: p for p in pairs}
    assert by_output["y"].tensor == "y"  # the graph output, after its Q/DQ pair
    quantized = [p for p in pairs if p.tensor.endswith("_DequantizeLinear_Output")]
    assert quantized, [p.tensor for p in pairs]
    result = localize_onnx(int8, mlp(), samples(), INT8)
    assert result.divergence is None, result.describe()
    assert result.ranking and all(e.error < 0.1 for e in result.ranking)


def test_int8_calibrated_on_a_narrow_range_diverges_at_the_first_node(tmp_path: Path) -> None:
    int8 = qdq(tmp_path, 0.02)  # activations saturate on real inputs
    result = localize_onnx(int8, mlp(), samples(), INT8)
    found = result.divergence
    assert found is not None
    assert found.node == "mm1"
    assert result.ranking[0].node == "mm1"
    assert result.ranking[0].delta > 0.1


@pytest.mark.parametrize(
    ("rule", "bound", "cosine"),
    [
        (FP32, 5e-5, None),
        (FP16, 1e-2, 0.99999),
        (INT8, 0.2, 0.995),
        (Rule(atol=1e-5, rtol=1e-5), nodewise.FLOAT32_FLOOR, None),
        (Rule(atol=0.1, rtol=0.1, top_k_agreement=0.9, elementwise=False), None, 0.99),
        (Rule(atol=1e-3, rtol=1e-4), 1e-3, None),
    ],
)
def test_node_rule(rule: Rule, bound: float | None, cosine: float | None) -> None:
    criterion = nodewise.node_rule(rule)
    assert criterion.max_relative_l2 == bound
    assert criterion.min_cosine == cosine


def test_check_is_scale_free_and_flattens_same_size_shapes() -> None:
    pair = nodewise.Pair("n", "Op", "t", "t", "t")
    ref = np.linspace(-1e4, 1e4, 1000)
    near = ref + 1e-3  # float noise: the elements near zero fail atol = rtol = 1e-5
    assert not compare_output("t", ref, near, Rule(atol=1e-5, rtol=1e-5)).passed
    assert nodewise.check(pair, ref, near, FP32).passed  # relative L2 1.7e-7
    assert not nodewise.check(pair, ref, ref * 1.01, FP32).passed
    assert nodewise.check(pair, np.array([3.0]), np.array(3.0), FP32).passed


def test_budget_caps_the_tensors_compared() -> None:
    result = localize_onnx(mlp(), mlp(), samples(), FP32, budget=Budget(tensors=2))
    assert result.compared == 2
    assert any("first 2 of 6" in note for note in result.notes)


def test_child_process_round_trip(tmp_path: Path) -> None:
    onnx.save(mlp(), tmp_path / "fp32.onnx")
    onnx.save(edit_weight(mlp(), "w2", "nudge"), tmp_path / "candidate.onnx")
    result = locate_against_onnx(
        tmp_path / "candidate.onnx", tmp_path / "fp32.onnx", samples=samples(), rule=FP32
    )
    assert result.divergence is not None, result.reason
    assert result.divergence.node == "mm2"
    assert result.describe().startswith("first diverging node mm2 (MatMul) output h2")
    assert result.ranking[0].node == "mm2"


def test_failures_become_a_reason_not_an_exception(tmp_path: Path) -> None:
    onnx.save(mlp(), tmp_path / "fp32.onnx")
    missing = locate_against_onnx(
        tmp_path / "absent.onnx", tmp_path / "fp32.onnx", samples=samples(), rule=FP32
    )
    assert missing.divergence is None
    assert missing.reason is not None and missing.reason.startswith("localization failed")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    garbage = locate_against_onnx(
        tmp_path / "garbage.onnx", tmp_path / "fp32.onnx", samples=samples(), rule=FP32
    )
    assert garbage.divergence is None and garbage.reason
    no_samples = locate_against_onnx(
        tmp_path / "fp32.onnx", tmp_path / "fp32.onnx", samples=[], rule=FP32
    )
    assert no_samples.divergence is None and no_samples.reason


def test_a_child_past_its_time_is_killed_and_named(tmp_path: Path) -> None:
    onnx.save(mlp(), tmp_path / "fp32.onnx")
    late = locate_against_onnx(
        tmp_path / "fp32.onnx",
        tmp_path / "fp32.onnx",
        samples=samples(),
        rule=FP32,
        budget=Budget(seconds=0.05),
    )
    assert late.divergence is None
    assert late.reason == "localization ran past 0.05s"


def test_describe_names_the_layer_as_exported() -> None:
    found = divergence.Divergence("Add.2", "Add", "p2o.pd_op.group_norm.0.0", math.nan, math.nan,
                                  "pd_op.group_norm #0",
                                  ("Reshape.1", "InstanceNormalization.0", "Add.2"))  # fmt: skip
    assert found.describe() == (
        "first diverging node Add.2 (Add from pd_op.group_norm #0) output "
        "p2o.pd_op.group_norm.0.0: max abs nan, cosine nan "
        "(layer: Reshape.1, InstanceNormalization.0, Add.2)"
    )


@pytest.mark.parametrize(
    ("key", "source"),
    [
        ("p2o.pd_op.group_norm.0.0", "pd_op.group_norm #0"),
        ("p2o.pd_op.batch_norm_.12.0", "pd_op.batch_norm_ #12"),
        ("fetch:0", None),
        ("Add.1", None),
    ],
)
def test_paddle2onnx_names_map_to_program_ops(key: str, source: str | None) -> None:
    assert paddle_program.source_of(key) == source


def test_report_carries_divergence_in_camel_case() -> None:
    found = divergence.Divergence("Add.2", "Add", "p2o.pd_op.group_norm.0.0", math.nan, math.nan,
                                  "pd_op.group_norm #0", ("Reshape.1", "Add.2"))  # fmt: skip
    info = found.info()
    dumped = json.loads(info.to_json())
    assert dumped["opType"] == "Add" and dumped["maxAbs"] == "NaN"
    assert dumped["sourceOp"] == "pd_op.group_norm #0"
    assert DivergenceInfo.model_validate(dumped).span == ["Reshape.1", "Add.2"]
    assert "divergence" in ValidationSection.model_fields
    assert ValidationSection.model_fields["divergence"].default is None
