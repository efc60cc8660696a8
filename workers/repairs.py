"""What a remedy's settings change in a produced file (`modelfleet.remedies.Settings`).

- `repair_norm_epsilon`: paddle2onnx 2.1.0 declares the epsilon of its group_norm and
  instance_norm mappers as `float` but PIR stores it as a float64 attribute, which its
  `GetAttr(float*)` does not read: every export writes whatever the uninitialised float held
  (measured: 4e-45, -1e26, 2e25, -7e-5 for the same model), so InstanceNormalization computes
  NaN, near-zero or almost right outputs at random. This copies the program's epsilon into
  each InstanceNormalization node. Legacy `.pdmodel` programs store a float and export right.
- `produce`: the repairs, then the transform of `modelfleet.workers.quantize` with the
  settings' nodes and op types kept in float32.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from modelfleet.api.conversion import TargetFormat
from modelfleet.remedies import REPAIR_NORM_EPSILON, GraphFacts, Settings
from modelfleet.workers import quantize
from modelfleet.workers.datasets import Feeds
from modelfleet.workers.errors import InvalidModel

NORM_OPS = ("group_norm", "instance_norm")
Quantization = Literal["static", "dynamic"]
_OUTPUT_NAME = "p2o.pd_op.{op}.{n}.0"


def produce(
    fp32: Path,
    fmt: TargetFormat,
    settings: Settings,
    out: Path,
    *,
    program: Path | None,
    work_dir: Path,
    quantization: Quantization = "static",
    calibration: Sequence[Feeds] = (),
) -> list[str]:
    """Write `out` for `fmt` from a paddle2onnx export at `settings.opset` (`fp32`, repaired in
    place when the settings ask and `program` is the Paddle program); the nodes kept in float.

    The remedy's `attempt` is: `convert_model` to `onnx` at the settings' opset, this, then
    `inspect_onnx` and the validation of `out`.
    """
    import shutil

    if REPAIR_NORM_EPSILON in settings.repairs and program is not None:
        repair_norm_epsilon(fp32, program)
    if fmt == "onnx":
        shutil.copyfile(fp32, out)
        return []
    keep = {"float_nodes": settings.float_nodes, "float_op_types": settings.float_op_types}
    if fmt == "onnx-fp16":
        return quantize.to_fp16(fp32, out, **keep)
    if quantization == "dynamic":
        return quantize.quantize_dynamic_int8(fp32, out, **keep)
    if not calibration:
        raise InvalidModel("static int8 quantization needs calibration samples")
    return quantize.quantize_static_qdq(fp32, out, calibration, work_dir, **keep)


def graph_facts(path: Path) -> GraphFacts:
    """Op types and node count of an ONNX file (what the remedy policy reads)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return GraphFacts(frozenset(n.op_type for n in graph.node), len(graph.node))


def program_norm_epsilons(program: Path) -> list[tuple[str, int, float]]:
    """(op, n-th of that op, epsilon) of each PIR group_norm/instance_norm, in program order;
    empty for a legacy `.pdmodel` program (its float epsilon exports right)."""
    if program.suffix != ".json":
        return []
    found: list[tuple[str, int, float]] = []
    counts: dict[str, int] = {}
    for op in _pir_ops(json.loads(program.read_text())):
        name = str(op.get("#", "")).split(".", 1)[-1]
        if name in NORM_OPS:
            attrs = {a.get("N"): a.get("AT", {}).get("D") for a in op.get("A", [])}
            n = counts.get(name, 0)
            counts[name] = n + 1
            found.append((name, n, float(attrs.get("epsilon", 1e-5))))
    return found


def _pir_ops(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every op of a PIR program, depth first in program order."""
    if isinstance(node, Mapping):
        for region in node.get("regions", ()) if "regions" in node else ():
            for block in region.get("blocks", ()):
                for op in block.get("ops", ()):
                    yield op
                    yield from _pir_ops(op)
        if "program" in node:
            yield from _pir_ops(node["program"])


def repair_norm_epsilon(onnx_path: Path, program: Path) -> list[str]:
    """Set each InstanceNormalization epsilon to its Paddle op's; rewrite the file when one
    changed. Returns `node: old -> new` for each node changed."""
    import numpy as np
    import onnx

    epsilons = program_norm_epsilons(program)
    if not epsilons:
        return []
    model = onnx.load(str(onnx_path))
    graph = model.graph
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    mapping = _map_norms(graph, norms, epsilons)
    changes = []
    for node, epsilon in mapping:
        attr = next((a for a in node.attribute if a.name == "epsilon"), None)
        if attr is None:
            attr = node.attribute.add(name="epsilon", type=onnx.AttributeProto.FLOAT)
        if np.float32(attr.f) != np.float32(epsilon):
            changes.append(f"{node.name}: epsilon {attr.f:.4g} -> {epsilon:g}")
            attr.f = epsilon
    if changes:
        onnx.save(model, str(onnx_path))
    return changes


def _map_norms(
    graph: Any, norms: list[Any], epsilons: list[tuple[str, int, float]]
) -> list[tuple[Any, float]]:
    """Each InstanceNormalization with its Paddle op's epsilon: through the op's named output
    (`p2o.pd_op.group_norm.<n>.0`, walking up to the norm), else in order when the counts
    match (paddle2onnx emits nodes in program order)."""
    producer = {out: node for node in graph.node for out in node.output}
    mapped = []
    for op, n, epsilon in epsilons:
        norm = _norm_above(producer, _OUTPUT_NAME.format(op=op, n=n))
        if norm is None:
            break
        mapped.append((norm, epsilon))
    else:
        return mapped
    if len(norms) == len(epsilons):
        return [(node, eps) for node, (_, _, eps) in zip(norms, epsilons, strict=True)]
    raise InvalidModel(
        f"cannot match {len(epsilons)} Paddle norm op(s) to {len(norms)} InstanceNormalization "
        "node(s) to repair their epsilon"
    )


def _norm_above(producer: Mapping[str, Any], output: str, depth: int = 8) -> Any | None:
    frontier = [producer[output]] if output in producer else []
    for _ in range(depth):
        for node in frontier:
            if node.op_type == "InstanceNormalization":
                return node
        frontier = [producer[i] for node in frontier for i in node.input if i in producer]
    return None
