"""What paddle2onnx's exit and log say when it wrote no model: the reason a user can act on.

Called by `modelfleet.workers.convert.paddle_to_onnx` with the paddle2onnx child's exit code
and log (paddle2onnx 2.1.0's own words; examples in tests/unit/workers/test_isolation.py):

- an operator it has no converter for, listed from the PIR program it prints:
  UnsupportedOperator naming them;
- an operator or attribute it refuses (`[OP: pd_op.X] why`, or an error inside the export of
  one op it started and never finished): UnsupportedOperator naming the op, with the
  workaround when one is known (`_WORKAROUNDS`);
- a signal or a hang with neither: ConverterCrashed (stage paddle2onnx);
- anything else: InvalidModel with its error lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelfleet.workers.errors import InvalidModel, UnsupportedOperator, WorkerError
from modelfleet.workers.isolation import STAGE_TIMEOUT_S, clean_log, crash, how_it_ended
from modelfleet.workers.paddle2onnx_child import STAGE_EXPORT

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
_OP_ERROR = re.compile(r"\[OP: pd_op\.([A-Za-z0-9_]+)\]\s*(.*)")
_STARTED = re.compile(r"Start export pd_op\.([A-Za-z0-9_]+), op_id: (\d+)")
_FAILED = re.compile(r"Failed to convert PaddlePaddle model:\s*(.*)")
# (op name suffix, text in paddle2onnx's message) → what the user can change in the model
_WORKAROUNDS = (
    (
        "_interp",
        "FloatAttribute",
        "paddle2onnx cannot read an interpolate scale factor (scale_factor=2, 2.0 or [2.0, 2.0] "
        "and nn.Upsample fail alike); give the output size instead: F.interpolate(x, "
        "size=[h * 2, w * 2], ...), or size=paddle.shape(x)[2:] * 2 for a dynamic shape",
    ),
    (
        "pool2d",
        "static input shape",
        "save the model with a static input shape, or pool with a fixed kernel size",
    ),
)


def export_failure(
    returncode: int | None,
    text: str,
    *,
    opset: int,
    model: Path,
    supported: set[str] | None = None,
) -> WorkerError:
    """What a paddle2onnx child that wrote no model met, from its exit and its log `text`:
    an operator or attribute it refuses (UnsupportedOperator naming the op, with a workaround
    where one is known), a crash or hang (ConverterCrashed), else InvalidModel."""
    text = clean_log(text)
    if "unsupported operator" in text.lower():
        return UnsupportedOperator(unsupported_operators(text, supported))
    if "requires opset_version" in text:
        return UnsupportedOperator(
            unsupported_operators(text, supported),
            message=f"opset {opset} is too old for this model: {_error_lines(text)}",
        )
    refused = _refused_operator(text)
    if refused is not None:
        op, detail = refused
        hint = next(
            (h for suffix, part, h in _WORKAROUNDS if op.endswith(suffix) and part in detail), None
        )
        message = f"paddle2onnx cannot convert operator pd_op.{op}: {detail}"
        return UnsupportedOperator(
            [op], message=message + (f". Workaround: {hint}" if hint else "")
        )
    if returncode is None or returncode < 0:
        return crash(STAGE_EXPORT, returncode, text, STAGE_TIMEOUT_S)
    return InvalidModel(
        f"paddle2onnx {how_it_ended(returncode, STAGE_TIMEOUT_S)} converting {model.name}: "
        f"{_error_lines(text)}",
        path=str(model),
    )


def _refused_operator(text: str) -> tuple[str, str] | None:
    """(op, paddle2onnx's reason) when it named the op it refused (`[OP: pd_op.X] why`), or
    stopped with an error inside the export of one op (started, never finished)."""
    named = _OP_ERROR.findall(text)
    if named:
        op, detail = named[0]
        return op, detail.strip().rstrip(".")
    started = _STARTED.findall(text)
    failed = _FAILED.findall(text)
    if not started or not failed:
        return None
    op, op_id = started[-1]
    if f"Finish export pd_op.{op}, op_id: {op_id}" in text:
        return None
    detail = failed[-1].strip()
    detail = re.sub(r"^\((Unimplemented|InvalidArgument|Fatal|PreconditionNotMet)\)\s*", "", detail)
    return op, detail.rstrip(".")


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
