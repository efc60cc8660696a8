"""Conversion: a located source model → one target ONNX file, checked before it is trusted.

Called by the Job pipeline (`modelfleet.workers.jobs`) and the `modelfleet convert` command.
paddle2onnx runs in a child process (`paddle2onnx_child`); its result must exist, pass
`onnx.checker` and load in ONNX Runtime, else the conversion fails with the reason. In a
convert-validate Job the same child then records the Paddle Inference reference for the
validation (`references`), so the worker process itself never imports Paddle. Nothing is
pip-installed at run time: the child never reaches paddle2onnx's Polygraphy optimizer, and
its environment has POLYGRAPHY_AUTOINSTALL_DEPS=0 and PIP_NO_INDEX=1 besides.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelfleet.api.conversion import InputSpec, Target
from modelfleet.artifacts import QuantizationInfo
from modelfleet.workers import quantize
from modelfleet.workers.datasets import Feeds, check_inputs
from modelfleet.workers.errors import InvalidModel, UnsupportedOperator
from modelfleet.workers.paddle2onnx_child import SUPPORTED_OPERATORS, PaddleChild
from modelfleet.workers.references import ReferencePlan, note_child_exit
from modelfleet.workers.runtimes import OnnxInfo, inspect_onnx, preload_onnx
from modelfleet.workers.sources import SourceModel, check_source

CHILD_TIMEOUT_S = 1800

# PIR op names paddle2onnx maps onto its (legacy-named) converters; read from its exporter.
_PIR_ALIASES = {
    "matmul": "matmul_v2", "batch_norm_": "batch_norm", "topk": "top_k_v2",
    "expand": "expand_v2", "flatten": "flatten_contiguous_range", "unsqueeze": "unsqueeze2",
    "arange": "range", "argmax": "arg_max", "argmin": "arg_min",
    "floor_divide": "elementwise_floordiv", "subtract": "elementwise_sub",
    "multiply": "elementwise_mul", "divide": "elementwise_div", "remainder": "elementwise_mod",
    "minimum": "elementwise_min", "maximum": "elementwise_max", "min": "reduce_min",
    "max": "reduce_max", "mean": "reduce_mean", "sum": "reduce_sum", "prod": "reduce_prod",
    "any": "reduce_any", "all": "reduce_all", "numel": "size", "hardswish": "hard_swish",
    "hardsigmoid": "hard_sigmoid", "add": "elementwise_add", "add_n": "sum",
    "grid_sample": "grid_sampler", "nonzero": "where_index",
}  # fmt: skip
_ALWAYS_HANDLED = {"data", "feed", "fetch", "print", "if", "while"}
_PIR_OP = re.compile(r'= "pd_op\.([A-Za-z0-9_]+)"')


@dataclass(frozen=True)
class ConversionResult:
    model_path: Path
    info: OnnxInfo
    quantization: QuantizationInfo | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Calibration:
    """Calibration samples for static int8 and where they came from."""

    samples: Sequence[Feeds]
    origin: str  # "dataset" | "synthetic"
    uri: str | None = None


def convert_model(
    source: SourceModel,
    target: Target,
    out_dir: Path,
    *,
    specs: Sequence[InputSpec],
    calibration: Calibration | None = None,
    reference: ReferencePlan | None = None,
    child: PaddleChild | None = None,
) -> ConversionResult:
    """Write `out_dir/model.onnx` for `target`; raise a classified WorkerError on failure.

    A convert-validate Job passes the paddle2onnx `child` it started early and, for a Paddle
    source, a `reference` plan: the child then also records the Paddle Inference reference
    for the validation (`modelfleet.workers.references`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".work"
    work.mkdir(exist_ok=True)
    try:
        check_source(source)
        fp32 = work / "fp32.onnx"
        if source.format == "paddle":
            paddle_to_onnx(
                source,
                fp32,
                opset=target.opset,
                log_path=work / "paddle2onnx.log",
                reference=reference,
                child=child,
            )
        else:
            shutil.copyfile(source.model_file, fp32)
        what = "paddle2onnx output" if source.format == "paddle" else "source model"
        fp32_info = inspect_onnx(fp32, what=what)
        check_inputs(specs, fp32_info.inputs)
        warnings: list[str] = []
        if source.format == "onnx" and fp32_info.opset != target.opset:
            warnings.append(
                f"ONNX source keeps its opset {fp32_info.opset} (target asked {target.opset})"
            )
        final = out_dir / "model.onnx"
        quantization: QuantizationInfo | None = None
        if target.format == "onnx":
            shutil.copyfile(fp32, final)
        elif target.format == "onnx-fp16":
            _transform("fp16 conversion", lambda: quantize.to_fp16(fp32, final))
        elif (target.quantization or "static") == "dynamic":
            _transform("dynamic quantization", lambda: quantize.quantize_dynamic_int8(fp32, final))
            quantization = QuantizationInfo(mode="dynamic", calibration="none")
        else:
            if calibration is None or not calibration.samples:
                raise InvalidModel("static int8 quantization needs calibration samples")
            _transform(
                "static quantization",
                lambda: quantize.quantize_static_qdq(fp32, final, calibration.samples, work),
            )
            quantization = QuantizationInfo(
                mode="static",
                calibration="dataset" if calibration.origin == "dataset" else "synthetic",
                calibration_uri=calibration.uri,
                samples=len(calibration.samples),
            )
            if calibration.origin != "dataset":
                warnings.append(
                    "int8 calibrated on synthetic seeded samples, not on real data: accuracy "
                    "on real inputs is unproven"
                )
        if target.format == "onnx":  # a byte copy of what passed the checks above
            info = fp32_info
        else:
            info = inspect_onnx(final, what=f"{target.format} model")
        return ConversionResult(final, info, quantization, warnings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _transform(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except (InvalidModel, UnsupportedOperator):
        raise
    except Exception as err:
        raise InvalidModel(f"{what} failed: {type(err).__name__}: {err}") from err


def paddle_to_onnx(
    source: SourceModel,
    out: Path,
    *,
    opset: int,
    log_path: Path,
    reference: ReferencePlan | None = None,
    child: PaddleChild | None = None,
) -> None:
    """paddle2onnx in a child process; classify what went wrong from its exit and log.

    `child`: one started earlier (it has imported Paddle meanwhile), else one starts here,
    logging to `log_path`. The child writes `out` only once the export succeeded; with a
    `reference` plan it goes on to record the Paddle reference, and whatever happens to it
    then is the validate step's concern (`references.load_reference`), not the conversion's.
    While the child imports Paddle, this process loads what it needs next (onnx, its checker,
    ONNX Runtime); once the child has its command, this process only waits, so the child's
    Paddle latency benchmark runs alone.
    """
    assert source.params_file is not None
    out.unlink(missing_ok=True)
    out.with_name(SUPPORTED_OPERATORS).unlink(missing_ok=True)
    if child is None:
        child = PaddleChild(log_path)
    try:
        preload_onnx()  # while the child imports Paddle: never while it times Paddle Inference
        child.send(
            model=source.model_file,
            params=source.params_file,
            out=out,
            opset=opset,
            reference=None if reference is None else reference.directory,
        )
        returncode = child.wait(CHILD_TIMEOUT_S)
    finally:
        child.close()
    exported = out.is_file() and out.stat().st_size > 0
    if returncode is None and not exported:
        raise InvalidModel(f"paddle2onnx did not finish in {CHILD_TIMEOUT_S}s")
    text = child.log_path.read_text(errors="replace")
    how = _how(returncode)
    if exported:
        if reference is not None:
            note_child_exit(reference.directory, f"{how}: {_error_lines(text)}")
        return
    assert returncode is not None
    supported = _supported_by_child(out.with_name(SUPPORTED_OPERATORS))
    if "unsupported operator" in text.lower():
        raise UnsupportedOperator(unsupported_operators(text, supported))
    if "requires opset_version" in text:
        raise UnsupportedOperator(
            unsupported_operators(text, supported),
            message=f"opset {opset} is too old for this model: {_error_lines(text)}",
        )
    raise InvalidModel(
        f"paddle2onnx {how} converting {source.model_file.name}: {_error_lines(text)}",
        path=str(source.model_file),
    )


def _supported_by_child(path: Path) -> set[str] | None:
    """The operator list the child wrote before its export (None: ask paddle2onnx here)."""
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _how(returncode: int | None) -> str:
    if returncode is None:
        return f"did not finish in {CHILD_TIMEOUT_S}s"
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited {returncode}"


def _error_lines(text: str) -> str:
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if "error" in ln.lower() or "modelfleet:" in ln or "raised" in ln
    ]
    return " | ".join(lines[-3:])[:600] or "no error message"


def unsupported_operators(log_text: str, supported: set[str] | None = None) -> list[str]:
    """Paddle ops in the program paddle2onnx printed that it has no converter for."""
    if supported is None:
        supported = supported_operators()
    found = []
    for name in dict.fromkeys(_PIR_OP.findall(log_text)):
        if name in _ALWAYS_HANDLED:
            continue
        candidates = {name, name.rstrip("_"), _PIR_ALIASES.get(name, name)}
        candidates.add(_PIR_ALIASES.get(name.rstrip("_"), name))
        if not candidates & supported:
            found.append(name)
    return found


def supported_operators() -> set[str]:
    from paddle2onnx.utils import get_all_supported_operators_pir

    return set(get_all_supported_operators_pir())
