"""Conversion: a located source model → one target ONNX file, checked before it is trusted
(or, for the TensorFlow targets, a SavedModel or .tflite made from that ONNX: `tf_convert`).

Called by the Job pipeline (`modelfleet.workers.jobs`) and the `modelfleet convert` command.
Two child processes (`isolation`), so that no crash or hang of native code ends the worker:

1. paddle2onnx (`paddle2onnx_child`). In a convert-validate Job the same child then records
   the Paddle Inference reference for the validation (`references`), so the worker process
   itself never imports Paddle. Its failures are classified from its exit and log
   (`export_failures`): an operator or attribute it refuses is UnsupportedOperator naming the
   op, a signal or a hang ConverterCrashed, anything else InvalidModel.
2. The rest (`finish_in_child`): the fp32 model must pass `onnx.checker` and load in ONNX
   Runtime and fit the input specs; then the fp16 conversion or quantization; then the same
   checks on the result. A crash in any of these is ConverterCrashed naming that step; a
   result ONNX Runtime rejects at a named node is UnsupportedOperator naming its op.

Nothing is pip-installed at run time: the child never reaches paddle2onnx's Polygraphy
optimizer, and its environment has POLYGRAPHY_AUTOINSTALL_DEPS=0 and PIP_NO_INDEX=1 besides.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.api.conversion import TF_FORMATS, InputSpec, KeepFloat, Target
from modelfleet.artifacts import QuantizationInfo, model_file
from modelfleet.workers import quantize
from modelfleet.workers.datasets import Feeds, check_inputs
from modelfleet.workers.errors import InvalidModel, UnsupportedOperator, WorkerError
from modelfleet.workers.export_failures import export_failure
from modelfleet.workers.isolation import (
    STAGE_TIMEOUT_S,
    enter_stage,
    how_it_ended,
    output_tail,
    run_stage,
)
from modelfleet.workers.paddle2onnx_child import SUPPORTED_OPERATORS, PaddleChild
from modelfleet.workers.references import (
    ReferencePlan,
    note_child_exit,
    pack_samples,
    unpack_samples,
)
from modelfleet.workers.runtimes import OnnxInfo, inspect_onnx, preload_onnx
from modelfleet.workers.sources import SourceModel, check_source
from modelfleet.workers.tf_convert import Signature, convert_to_tf

FP16 = "fp16 conversion"
STATIC_INT8 = "static quantization"
DYNAMIC_INT8 = "dynamic quantization"
KEPT_FP32 = "fp32.onnx"  # beside an fp16/int8 model.onnx: what divergence and remedies compare to
_ORT_NODE = re.compile(r"Node \(([^)]*)\) Op \(([^)]*)\)")  # in ONNX Runtime's load errors


@dataclass(frozen=True)
class ConversionResult:
    model_path: Path
    info: OnnxInfo
    quantization: QuantizationInfo | None = None
    warnings: list[str] = field(default_factory=list)
    fp32_path: Path | None = None  # the fp32 ONNX an fp16/int8 model was made from
    signature: Signature | None = None  # a TensorFlow artifact's own (names, shapes, layouts)


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
        if target.format in TF_FORMATS:
            checked = work / "checked.onnx"
            fp32_info, _ = _finish(
                source, target, fp32, checked, specs=specs, kind=None, calibration=None, work=work
            )
            signature = convert_to_tf(checked, fp32_info, target, out_dir, work)
            final = out_dir / model_file(target.format)
            return ConversionResult(final, fp32_info, signature=signature)
        final = out_dir / "model.onnx"
        kind = _transform_of(target)
        if kind == STATIC_INT8 and (calibration is None or not calibration.samples):
            raise InvalidModel("static int8 quantization needs calibration samples")
        fp32_info, info = _finish(
            source, target, fp32, final, specs=specs, kind=kind, calibration=calibration, work=work
        )
        warnings: list[str] = []
        if source.format == "onnx" and fp32_info.opset != target.opset:
            warnings.append(
                f"ONNX source keeps its opset {fp32_info.opset} (target asked {target.opset})"
            )
        quantization: QuantizationInfo | None = None
        if kind == DYNAMIC_INT8:
            quantization = QuantizationInfo(mode="dynamic", calibration="none")
        elif kind == STATIC_INT8 and calibration is not None:
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
        kept = None
        if kind is not None:
            kept = out_dir / KEPT_FP32
            shutil.move(fp32, kept)
        return ConversionResult(final, info, quantization, warnings, kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _transform_of(target: Target) -> str | None:
    if target.format == "onnx":
        return None
    if target.format == "onnx-fp16":
        return FP16
    return DYNAMIC_INT8 if target.quantization == "dynamic" else STATIC_INT8


def _finish(
    source: SourceModel,
    target: Target,
    fp32: Path,
    final: Path,
    *,
    specs: Sequence[InputSpec],
    kind: str | None,
    calibration: Calibration | None,
    work: Path,
) -> tuple[OnnxInfo, OnnxInfo]:
    """`finish_in_child` in a stage child; the fp32 and the final model's signatures."""
    samples: list[Any] | None = None
    if kind == STATIC_INT8 and calibration is not None:
        path = work / "calibration.npz"
        with path.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **pack_samples(calibration.samples))
        samples = [str(path.resolve()), len(calibration.samples)]
    answer = run_stage(
        kind or "ONNX check",
        "modelfleet.workers.convert:finish_in_child",
        {
            "fp32": str(fp32.resolve()),  # the child runs in its own directory
            "final": str(final.resolve()),
            "fp32_what": "paddle2onnx output" if source.format == "paddle" else "source model",
            "final_what": f"{target.format} model",
            "specs": [spec.to_wire() for spec in specs],
            "kind": kind,
            "work": str(work.resolve()),
            "calibration": samples,
            "keep_float": target.keep_float.to_wire() if target.keep_float else None,
        },
        directory=work / "finish",
    )
    return OnnxInfo.from_wire(answer["fp32"]), OnnxInfo.from_wire(answer["final"])


def finish_in_child(
    *,
    fp32: str,
    final: str,
    fp32_what: str,
    final_what: str,
    specs: list[dict[str, Any]],
    kind: str | None,
    work: str,
    calibration: list[Any] | None,
    keep_float: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """In the stage child: check the fp32 model and the specs, transform it (`kind`: fp16,
    static or dynamic int8, None for a copy), check the result. Each step is announced, so a
    crash names it; a transform that raises is InvalidModel naming the transform, one whose
    result ONNX Runtime rejects at a named node UnsupportedOperator (`rejected_output`)."""
    fp32_path, final_path = Path(fp32), Path(final)
    fp32_info = _inspected(fp32_path, fp32_what)
    check_inputs([InputSpec.model_validate(raw) for raw in specs], fp32_info.inputs)
    if kind is None:
        shutil.copyfile(fp32_path, final_path)
        return {"fp32": fp32_info.to_wire(), "final": fp32_info.to_wire()}
    enter_stage(kind)
    keep = KeepFloat.model_validate(keep_float or {})  # the spec's keepFloat
    sets = {"float_nodes": keep.nodes, "float_op_types": keep.op_types}
    try:
        if kind == FP16:
            quantize.to_fp16(fp32_path, final_path, **sets)
        elif kind == DYNAMIC_INT8:
            quantize.quantize_dynamic_int8(fp32_path, final_path, **sets)
        else:
            assert calibration is not None
            with np.load(calibration[0], allow_pickle=False) as data:
                arrays = {key: np.asarray(data[key]) for key in data.files}
            samples = unpack_samples(arrays, int(calibration[1]))
            quantize.quantize_static_qdq(fp32_path, final_path, samples, Path(work), **sets)
    except WorkerError:
        raise
    except Exception as err:
        raise InvalidModel(f"{kind} failed: {type(err).__name__}: {err}") from err
    try:
        final_info = _inspected(final_path, final_what)
    except InvalidModel as err:
        raise rejected_output(kind, err) from err
    return {"fp32": fp32_info.to_wire(), "final": final_info.to_wire()}


def rejected_output(kind: str, err: InvalidModel) -> WorkerError:
    """The model a transform wrote does not load: when ONNX Runtime names the node it rejects,
    the transform cannot handle that operator (UnsupportedOperator naming it), the fp32 model
    it started from having passed the same check; else `err` as it is."""
    found = _ORT_NODE.search(err.message)
    if found is None:
        return err
    node, op = found.groups()
    return UnsupportedOperator(
        [op],
        message=f"the {kind} cannot handle operator {op}: ONNX Runtime rejects node {node} of "
        f"the model it wrote ({err.message}); the onnx (fp32) target does not go through it",
    )


def check_isolated(path: Path, *, what: str, directory: Path) -> OnnxInfo:
    """`inspect_onnx` in a stage child: a model that crashes ONNX Runtime's session creation
    is ConverterCrashed, not the end of this process (`modelfleet validate`'s candidate)."""
    answer = run_stage(
        f"ONNX Runtime session creation on the {what}",
        "modelfleet.workers.convert:inspect_in_child",
        {"path": str(path.resolve()), "what": what},  # the child runs in `directory`
        directory=directory,
    )
    return OnnxInfo.from_wire(answer)


def inspect_in_child(*, path: str, what: str) -> dict[str, Any]:
    return _inspected(Path(path), what).to_wire()


def _inspected(path: Path, what: str) -> OnnxInfo:
    enter_stage(f"ONNX Runtime session creation on the {what}")
    return inspect_onnx(path, what=what)


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
    While the child imports Paddle, this process loads what its validation will need (onnx,
    ONNX Runtime); once the child has its command, this process only waits, so the child's
    Paddle latency benchmark runs alone. What the child met when it wrote no model is
    `export_failure`.
    """
    assert source.params_file is not None
    out.unlink(missing_ok=True)
    out.with_name(SUPPORTED_OPERATORS).unlink(missing_ok=True)
    if child is None:
        child = PaddleChild(log_path)
    try:
        preload_onnx()  # while the child imports Paddle: never while it times Paddle Inference
        child.send_export(
            model=source.model_file,
            params=source.params_file,
            out=out,
            opset=opset,
            reference=None if reference is None else reference.directory,
        )
        returncode = child.wait(STAGE_TIMEOUT_S)
    finally:
        child.close()
    text = child.output()
    if out.is_file() and out.stat().st_size > 0:
        if reference is not None:
            note_child_exit(
                reference.directory,
                f"{how_it_ended(returncode, STAGE_TIMEOUT_S)}; last output: {output_tail(text)}",
            )
        return
    supported = _supported_by_child(out.with_name(SUPPORTED_OPERATORS))
    raise export_failure(
        returncode, text, opset=opset, model=source.model_file, supported=supported
    )


def _supported_by_child(path: Path) -> set[str] | None:
    """The operator list the child wrote before its export (None: ask paddle2onnx here)."""
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
