"""The two runtimes validation compares: Paddle Inference (reference) and ONNX Runtime CPU.

Both expose the same small surface (`Runner`): input/output signatures and `run(feeds)` that
returns outputs in model order. `inspect_onnx` is the "never trust the converter" gate: the
file must exist, pass `onnx.checker` and load in ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from modelfleet.artifacts import TensorSignature
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import InvalidModel, ReferenceFailed
from modelfleet.workers.references import tensor_from_wire, tensor_to_wire
from modelfleet.workers.sources import SourceModel

Array = npt.NDArray[Any]

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class Runner(Protocol):
    name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: Mapping[str, Array]) -> list[Array]: ...


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class OnnxInfo:
    opset: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def signature(self) -> tuple[list[TensorSignature], list[TensorSignature]]:
        def sig(t: TensorInfo, i: int) -> TensorSignature:
            shape: list[int | str] = [
                d if d is not None else f"{t.name}_dim{n}" for n, d in enumerate(t.shape or ())
            ]
            return TensorSignature(name=t.name, dtype=t.dtype, shape=shape)

        return (
            [sig(t, i) for i, t in enumerate(self.inputs)],
            [sig(t, i) for i, t in enumerate(self.outputs)],
        )

    def to_wire(self) -> dict[str, Any]:
        """JSON, for the stage child that inspects a model (`modelfleet.workers.convert`)."""
        return {
            "opset": self.opset,
            "inputs": [tensor_to_wire(t) for t in self.inputs],
            "outputs": [tensor_to_wire(t) for t in self.outputs],
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> OnnxInfo:
        return cls(
            opset=int(raw["opset"]),
            inputs=[tensor_from_wire(t) for t in raw["inputs"]],
            outputs=[tensor_from_wire(t) for t in raw["outputs"]],
        )


def preload_onnx() -> None:
    """Import onnx, its checker and ONNX Runtime now (the conversion overlaps this with the
    paddle2onnx child's start); a failure is left to the first real use to report."""
    try:
        import onnx.checker  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:  # reported, and classified, where they are used
        return


def inspect_onnx(path: Path, *, what: str = "converted model") -> OnnxInfo:
    """Load, check and open an ONNX file; InvalidModel naming the file on any failure."""
    import onnx

    if not path.is_file() or path.stat().st_size == 0:
        raise InvalidModel(f"{what} {path.name} was not written (missing or empty)", path=str(path))
    try:
        model = onnx.load(str(path))
    except Exception as err:
        raise InvalidModel(f"{what} {path.name} is not a readable ONNX file: {err}") from err
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        raise InvalidModel(
            f"{what} {path.name} fails onnx.checker: {_first_line(err)}", path=str(path)
        ) from err
    runner = OrtRunner(path, threads=1, what=what)
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0)
    return OnnxInfo(opset=int(opset), inputs=runner.inputs, outputs=runner.outputs)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return " ".join(lines[:3])[:500] if lines else type(err).__name__


class OrtRunner:
    """ONNX Runtime on CPU."""

    def __init__(self, path: Path, *, threads: int | None = None, what: str = "ONNX model"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:
            raise InvalidModel(
                f"{what} {path.name} does not load in ONNX Runtime: {_first_line(err)}",
                path=str(path),
            ) from err
        self.name = f"onnxruntime {ort.__version__} (CPU)"
        self.inputs = [_ort_info(t) for t in self._session.get_inputs()]
        self.outputs = [_ort_info(t) for t in self._session.get_outputs()]

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        results = self._session.run(None, dict(feeds))
        return [np.asarray(r) for r in results]


def _ort_info(node: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in (node.shape or []))
    return TensorInfo(node.name, _ORT_TYPES.get(node.type, str(node.type)), shape)


def describe_config(mkldnn: bool, ir_optim: bool) -> str:
    """`oneDNN on, IR optimisation off`: a Paddle Inference configuration, for messages."""
    return f"oneDNN {'on' if mkldnn else 'off'}, IR optimisation {'on' if ir_optim else 'off'}"


class PaddleRunner:
    """Paddle Inference predictor on CPU, the reference runtime.

    `mkldnn=False` / `ir_optim=False` turn oneDNN / IR optimisation off (both are on by
    default); `config` says what the predictor actually runs with. A failure of a run is
    ReferenceFailed: Paddle Inference itself could not compute the reference."""

    def __init__(
        self,
        source: SourceModel,
        *,
        threads: int | None = None,
        mkldnn: bool = True,
        ir_optim: bool = True,
    ):
        from paddle import inference

        if source.params_file is None:
            raise InvalidModel(f"{source.model_file.name} has no parameters file")
        config = inference.Config(str(source.model_file), str(source.params_file))
        config.disable_gpu()
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(threads or default_threads())
        if not mkldnn:
            config.disable_mkldnn()
        if not ir_optim:
            config.switch_ir_optim(False)
        self.config = {"mkldnn": bool(config.mkldnn_enabled()), "irOptim": bool(config.ir_optim())}
        try:
            self._predictor = inference.create_predictor(config)
        except Exception as err:
            raise InvalidModel(
                f"Paddle Inference cannot load {source.model_file.name} + "
                f"{source.params_file.name}: {_first_line(err)}",
                path=str(source.model_file),
            ) from err
        self.name = f"paddle.inference {metadata.version('paddlepaddle')} (CPU)"
        self.inputs = [
            self._info(name, self._predictor.get_input_handle(name))
            for name in self._predictor.get_input_names()
        ]
        self._output_names = list(self._predictor.get_output_names())
        self.outputs = [
            self._info(name, self._predictor.get_output_handle(name)) for name in self._output_names
        ]

    @staticmethod
    def _info(name: str, handle: Any) -> TensorInfo:
        dtype = str(handle.type()).rsplit(".", 1)[-1].lower()
        dtype = {"float32": "float32", "int64": "int64", "int32": "int32"}.get(dtype, dtype)
        dims = list(handle.shape())
        if not dims or any(d == 0 for d in dims):
            return TensorInfo(name, dtype, None)  # dynamic: Paddle reports [0] until it runs
        return TensorInfo(name, dtype, tuple(d if d > 0 else None for d in dims))

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        for name, value in feeds.items():
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value))
        try:
            self._predictor.run()
        except Exception as err:
            settings = describe_config(self.config["mkldnn"], self.config["irOptim"])
            raise ReferenceFailed(
                f"Paddle Inference failed to run the source model ({settings}): "
                f"{type(err).__name__}: {_first_line(err)}"
            ) from err
        return [
            np.asarray(self._predictor.get_output_handle(name).copy_to_cpu())
            for name in self._output_names
        ]


def reference_runner(source: SourceModel, *, threads: int | None = None) -> Runner:
    """Paddle Inference for a Paddle source; ONNX Runtime for an ONNX (pass-through) source."""
    if source.format == "paddle":
        return PaddleRunner(source, threads=threads)
    return OrtRunner(source.model_file, threads=threads, what="source model")
