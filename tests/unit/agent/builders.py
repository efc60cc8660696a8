"""Small ONNX models and their probes for agent tests, without Paddle.

`y = x @ weight + bias` with x of shape (1, 4) and y of shape (1, 3). `make_model_file` can pad
the file (a doc string) to make downloads slow enough to interrupt; `make_probe_file` writes
a probe.npz with the workers' own writer, from the weights given (which may differ from the
model's, to make a probe fail).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.reports import write_probe

WEIGHT = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
BIAS = np.array([0.5, -0.25, 1.0], dtype=np.float32)
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5, "elementwise": True}


def make_model_bytes(
    weight: Any = WEIGHT, bias: Any = BIAS, *, padding: int = 0, renamed: bool = False
) -> bytes:
    """`renamed`: y is an Identity of the sum, as paddle2onnx names outputs (`fetch_name_0`):
    an engine that folds it sees two names for one tensor."""
    from onnx import TensorProto, helper, numpy_helper

    tail = [helper.make_node("Identity", ["s"], ["y"])] if renamed else []
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["t"]),
            helper.make_node("Add", ["t", "b"], ["s" if renamed else "y"]),
            *tail,
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[
            numpy_helper.from_array(np.asarray(weight, dtype=np.float32), "w"),
            numpy_helper.from_array(np.asarray(bias, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if padding:
        model.doc_string = "p" * padding
    return bytes(model.SerializeToString())


def make_model_file(
    path: Path,
    weight: Any = WEIGHT,
    bias: Any = BIAS,
    *,
    padding: int = 0,
    renamed: bool = False,
) -> str:
    """Write the model; return its sha256."""
    data = make_model_bytes(weight, bias, padding=padding, renamed=renamed)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def make_probe_file(
    path: Path,
    weight: Any = WEIGHT,
    bias: Any = BIAS,
    *,
    samples: int = 4,
    fmt: str = "onnx",
    tolerance: dict[str, Any] | None = TOLERANCE,
    candidate_shift: float = 0.0,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    inputs = [{"x": rng.uniform(-1, 1, (1, 4)).astype(np.float32)} for _ in range(samples)]
    references = [[s["x"] @ np.asarray(weight, np.float32) + bias] for s in inputs]
    candidates = [[r[0] + np.float32(candidate_shift)] for r in references]
    meta: dict[str, Any] = {"format": fmt, "samples": samples, "inputs": ["x"], "outputs": ["y"]}
    if tolerance is not None:
        meta["tolerance"] = tolerance
    write_probe(
        path,
        inputs=inputs,
        references=references,
        candidates=candidates,
        output_names=["y"],
        meta=meta,
    )
    return path
