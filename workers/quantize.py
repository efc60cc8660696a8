"""fp16 and int8 transforms of an fp32 ONNX model (called by `modelfleet.workers.convert`).

- fp16: every float32 tensor inside the graph becomes float16; inputs and outputs stay float32
  (`keep_io_types`), so callers feed and read the same types as the fp32 model.
- int8 static (default): QDQ format, int8 weights per channel, int8 activations calibrated with
  MinMax on calibration samples (a dataset from storage, or seeded synthetic samples, which
  the manifest and report say). On CPU this is the variant that is smaller AND faster.
- int8 dynamic (only when the target asks `quantization: dynamic`): int8 weights, activations
  quantized at run time; it suits MatMul-heavy models and can be much slower on CNNs.

Each takes the nodes and op types to keep in float32 (`float_nodes`, `float_op_types`: the
spec's `keepFloat`, or what an automatic remedy chose, `modelfleet.workers.repairs.produce`)
and returns the nodes it kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modelfleet.workers.datasets import Feeds


def float_node_names(
    model: Any, float_nodes: Sequence[str] = (), float_op_types: Sequence[str] = ()
) -> list[str]:
    """The nodes of `model` kept in float, in graph order: those named, those ORT's
    pre-processing fused from a named one (`MatMul.0/MatMulAddFusion`), and every node of a
    named op type."""
    named, types = set(float_nodes), set(float_op_types)
    return [
        n.name
        for n in model.graph.node
        if n.name in named or n.name.split("/", 1)[0] in named or n.op_type in types
    ]


def to_fp16(
    src: Path, dst: Path, *, float_nodes: Sequence[str] = (), float_op_types: Sequence[str] = ()
) -> list[str]:
    """fp16 with `keep_io_types`; the named nodes and op types (on top of the converter's
    default block list) stay float32. Returns the nodes kept."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    kept = float_node_names(model, float_nodes, float_op_types)
    converted = convert_float_to_float16(
        model,
        keep_io_types=True,
        disable_shape_infer=False,
        op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *float_op_types}),
        node_block_list=list(float_nodes),
    )
    topological_sort(converted.graph)
    onnx.save(converted, str(dst))
    return kept


def quantize_static_qdq(
    src: Path,
    dst: Path,
    calibration: Sequence[Feeds],
    work_dir: Path,
    *,
    float_nodes: Sequence[str] = (),
    float_op_types: Sequence[str] = (),
) -> list[str]:
    """Static QDQ int8, the named nodes and op types excluded. Returns the nodes kept in float
    (names after ORT's pre-processing; a named node it fused away is not among them)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._samples: Iterator[Feeds] = iter(calibration)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._samples, None)

    prepared = work_dir / "quant-preprocessed.onnx"
    with _Quiet():
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        kept = float_node_names(onnx.load(str(prepared)), float_nodes, float_op_types)
        quantize_static(
            str(prepared),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=work_dir / "calibration.cache",
        )
    return kept


def quantize_dynamic_int8(
    src: Path, dst: Path, *, float_nodes: Sequence[str] = (), float_op_types: Sequence[str] = ()
) -> list[str]:
    """Dynamic int8, the named nodes and op types excluded. Returns the nodes kept in float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept = float_node_names(onnx.load(str(src)), float_nodes, float_op_types)
    with _Quiet():
        quantize_dynamic(
            str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=kept
        )
    return kept


def topological_sort(graph: Any) -> None:
    """Reorder `graph.node` so producers precede consumers (onnx.checker requires it).

    `convert_float_to_float16(keep_io_types=True)` appends its input casts at the end of the
    node list. Names a node reads from inside its subgraphs count as its inputs too.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    produced_anywhere = {o for n in pending for o in n.output}
    while pending:
        waiting = []
        for node in pending:
            needs = (set(node.input) | _outer_names(node)) & (produced_anywhere | available)
            if needs <= available:
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("graph has a cycle; cannot sort it")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)


def _outer_names(node: Any) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        subgraphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for sub in subgraphs:
            local = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            for inner in sub.node:
                local.update(inner.output)
            for inner in sub.node:
                names.update(n for n in inner.input if n not in local)
                names.update(n for n in _outer_names(inner) if n not in local)
    return names


class _Quiet:
    """onnxruntime.quantization logs advice through the root logger; keep it off stderr."""

    def __enter__(self) -> None:
        self._level = logging.root.level
        logging.root.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        logging.root.setLevel(self._level)
