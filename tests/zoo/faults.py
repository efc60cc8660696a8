"""Injected faults: a faithful fp32 ONNX conversion, broken in the ways a real exporter breaks.

The tolerance study (issue 11 step 7) needs artifacts that are known to be wrong by a known
amount. Each fault is a pure function of an `onnx.ModelProto` (returns a changed copy):

- `nudge_weight`: one element of the first Conv/MatMul/Gemm weight (the largest in magnitude)
  moved by 5% of that tensor's range;
- `swap_channels`: output channels 0 and 1 of the first Conv swapped (weight and bias); a
  net without Conv gets two output columns of its first MatMul weight swapped instead;
- `wrong_normalisation`: ImageNet mean/std applied to a float image input the model expects
  raw in [0, 1] (Sub + Div in front); an int64 token input gets its ids shifted by one (the
  text equivalent: a vocabulary off by one);
- `drop_activation`: the first activation node (Relu, HardSwish, Tanh, ...) becomes Identity.

paddle2onnx writes weights as `Constant` nodes, not initializers (FIELD-NOTES); `_weight`
reads and writes either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

NUDGE = 0.05
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ACTIVATIONS = ("Relu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Gelu", "LeakyRelu", "Elu")


def _weight(model: onnx.ModelProto, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], None]]:
    """The constant tensor `name` and a setter writing it back (initializer or Constant)."""
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init), lambda a, t=init: t.CopyFrom(
                numpy_helper.from_array(a, name)
            )
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            attr = next(a for a in node.attribute if a.name == "value")
            return numpy_helper.to_array(attr.t), lambda a, t=attr.t: t.CopyFrom(
                numpy_helper.from_array(a, name)
            )
    raise LookupError(f"{name} is not a constant of the graph")


def _is_constant(model: onnx.ModelProto, name: str) -> bool:
    try:
        _weight(model, name)
    except LookupError:
        return False
    return True


def _first(model: onnx.ModelProto, ops: tuple[str, ...], weighted: bool = True) -> Any:
    for node in model.graph.node:
        if node.op_type in ops and (
            not weighted or (len(node.input) > 1 and _is_constant(model, node.input[1]))
        ):
            return node
    raise LookupError(f"no {'/'.join(ops)} node with a constant weight")


def nudge_weight(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    out = _copy(model)
    node = _first(out, ("Conv", "MatMul", "Gemm"))
    w, put = _weight(out, node.input[1])
    index = np.unravel_index(int(np.argmax(np.abs(w))), w.shape)
    delta = NUDGE * float(w.max() - w.min())
    w = w.copy()
    w[index] += delta
    put(w)
    where = [int(i) for i in index]
    return out, f"{node.input[1]}{where} += {delta:.3g} (5% of its range)"


def swap_channels(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    out = _copy(model)
    try:
        node = _first(out, ("Conv",))
        axis = 0  # Conv weight [out, in, kh, kw]
    except LookupError:
        node = _first(out, ("MatMul",))
        axis = 1  # MatMul weight [in, out]
    w, put = _weight(out, node.input[1])
    w = np.moveaxis(w.copy(), axis, 0)
    w[[0, 1]] = w[[1, 0]]
    put(np.ascontiguousarray(np.moveaxis(w, 0, axis)))
    if len(node.input) > 2 and node.input[2] and _is_constant(out, node.input[2]):
        b, put_bias = _weight(out, node.input[2])
        put_bias(b[[1, 0, *range(2, b.shape[0])]])
    return out, f"{node.op_type} {node.input[1]}: output channels 0 and 1 swapped"


def wrong_normalisation(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    out = _copy(model)
    graph = out.graph
    graph_input = graph.input[0]
    name = graph_input.name
    elem = graph_input.type.tensor_type.elem_type
    fed = f"{name}.zoo_fault"
    if elem == onnx.TensorProto.INT64:
        nodes = [
            helper.make_node("Constant", [], [f"{fed}.one"],
                             value=numpy_helper.from_array(np.array(1, np.int64))),
            helper.make_node("Add", [name, f"{fed}.one"], [fed]),
        ]  # fmt: skip
        what = f"{name}: token ids shifted by one"
    else:
        shape = (1, 3, 1, 1)
        mean = np.array(IMAGENET_MEAN, np.float32).reshape(shape)
        std = np.array(IMAGENET_STD, np.float32).reshape(shape)
        nodes = [
            helper.make_node("Constant", [], [f"{fed}.mean"], value=numpy_helper.from_array(mean)),
            helper.make_node("Constant", [], [f"{fed}.std"], value=numpy_helper.from_array(std)),
            helper.make_node("Sub", [name, f"{fed}.mean"], [f"{fed}.centred"]),
            helper.make_node("Div", [f"{fed}.centred", f"{fed}.std"], [fed]),
        ]
        what = f"{name}: ImageNet mean/std applied to a [0, 1] input"
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = fed
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *old])
    return out, what


def drop_activation(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    out = _copy(model)
    node = _first(out, ACTIVATIONS, weighted=False)
    op = node.op_type
    node.op_type = "Identity"
    del node.input[1:]
    del node.attribute[:]
    node.domain = ""
    return out, f"{op} {node.name or node.output[0]} bypassed"


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


FAULTS: dict[str, Callable[[onnx.ModelProto], tuple[onnx.ModelProto, str]]] = {
    "weight +5% range": nudge_weight,
    "conv channels swapped": swap_channels,
    "wrong normalisation": wrong_normalisation,
    "activation dropped": drop_activation,
}
