"""What the workers write: `report.json`, `probe.npz` and the one-line termination message.

`report.json` (reports/<digest>/<format>/): the conversion section (written by the convert
Job), the validation section (added by the validate Job) and, on failure, the classified
`failure`. Non-finite numbers are written as the strings "Infinity", "-Infinity", "NaN".

`probe.npz` (reports/<digest>/<format>/), read by the device agent to check an artifact on the
device. Keys:

    input:<name>       model input <name>, stacked over P probe samples: shape (P, *input shape)
    output:<name>      reference (Paddle Inference) output <name> for those inputs, (P, *shape)
    candidate:<name>   the artifact's own output on ONNX Runtime CPU at validation time
    meta               0-d unicode array: JSON {"format", "digest", "samples", "inputs": [...],
                       "outputs": [...], "tolerance": {...}, "semantics"}

<name> is the ONNX model's input/output name; compare device outputs with `candidate:` for a
tight check of the device runtime and with `output:` under the report's tolerance.

The termination message (`/dev/termination-log`) is one JSON line under 4 KiB:
success `{"ok": true, "stage": ..., ...}`, failure `{"ok": false, "reason", "exitCode",
"message"}`. A read-only or missing termination log path is tolerated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from modelfleet.api.conversion import TargetFormat
from modelfleet.artifacts import Document, QuantizationInfo, TensorSignature
from modelfleet.comparison import OutputResult, Rule
from modelfleet.reasons import Failure

REPORT_SCHEMA_VERSION = 1
TERMINATION_LIMIT = 4000


class FailureInfo(Document):
    reason: str
    message: str
    exit_code: int

    @classmethod
    def of(cls, failure: Failure) -> FailureInfo:
        return cls(reason=failure.reason, message=failure.message, exit_code=failure.exit_code)


class ConversionSection(Document):
    ok: bool
    cached: bool = False
    source_kind: str | None = None
    artifact_uri: str | None = None
    manifest_uri: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    opset: int | None = None
    inputs: list[TensorSignature] = Field(default_factory=list)
    outputs: list[TensorSignature] = Field(default_factory=list)
    quantization: QuantizationInfo | None = None
    warnings: list[str] = Field(default_factory=list)


class Latency(Document):
    runtime: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float
    iterations: int
    batch_size: int


class BenchmarkSection(Document):
    warmup: int
    iterations: int
    source: Latency
    target: Latency
    speedup: float
    slower_than_source: bool


class DivergenceInfo(Document):
    """The first node, in the candidate's topological order, whose output departs from the
    reference beyond the per-node criterion (`modelfleet.workers.divergence`): `node` and
    `opType` are the ONNX node, `output` its tensor; `sourceOp` the Paddle op it was exported
    from (fp32 against Paddle), `span` the nodes computing it from tensors that still agreed."""

    node: str
    op_type: str
    output: str
    max_abs: float
    cosine: float
    source_op: str | None = None
    span: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """One line for the CLI, the failure message and the condition message."""
        source = f" from {self.source_op}" if self.source_op else ""
        layer = ""
        if len(self.span) > 1:
            shown = ", ".join(self.span[:8]) + (", ..." if len(self.span) > 8 else "")
            layer = f" (layer: {shown})"
        return (
            f"first diverging node {self.node} ({self.op_type}{source}) output {self.output}: "
            f"max abs {self.max_abs:.3g}, cosine {self.cosine:.6f}{layer}"
        )


class ReferenceConfig(Document):
    mkldnn: bool
    ir_optim: bool


class ReferenceInfo(Document):
    """Which runtime, with which settings, produced the reference; `fallback_from` is the
    failure of Paddle Inference's defaults when a fallback (oneDNN or IR optimisation off)
    produced it."""

    runtime: str
    config: ReferenceConfig | None = None
    fallback_from: str | None = None


class ValidationSection(Document):
    passed: bool
    semantics: str
    tolerance: Rule
    data: Literal["seeded", "dataset"]
    dataset_uri: str | None = None
    seed: int
    samples: int
    batch_size: int
    reference_runtime: str
    reference: ReferenceInfo | None = None
    candidate_runtime: str
    output_mapping: Literal["name", "position"]
    outputs: list[OutputResult]
    failures: list[str] = Field(default_factory=list)
    benchmark: BenchmarkSection | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    l2: float | None = None
    cosine: float | None = None
    settings_digest: str | None = Field(
        default=None,
        description="modelfleet.jobrequests.validation_settings_digest of the request validated: "
        "the operator reuses this report only for a spec with the same digest.",
    )
    divergence: DivergenceInfo | None = None  # only when the target failed and a node was named


class RemedyAttempt(Document):
    """One alternative tried after the requested settings failed."""

    settings: dict[str, Any] = Field(description="`modelfleet.remedies.Settings.to_wire()`.")
    change: str = Field(description="What differs from the requested settings, in words.")
    passed: bool
    reason: str = ""
    message: str = ""
    max_abs: float | None = None
    cosine: float | None = None
    seconds: float = 0.0

    def verdict(self) -> str:
        """`passed`, else the reason with what the numbers said (NaN, cosine, max abs)."""
        if self.passed:
            return "passed"
        reason = self.reason or "failed"
        if "NaN" in self.message or (self.max_abs is not None and math.isnan(self.max_abs)):
            return f"{reason} (NaN)"
        numbers = []
        if self.cosine is not None and not math.isnan(self.cosine):
            numbers.append(f"cosine {self.cosine:.6f}")
        if self.max_abs is not None:
            numbers.append(f"max abs {self.max_abs:.3g}")
        return f"{reason} ({', '.join(numbers)})" if numbers else reason


class KeptFloat(Document):
    nodes: list[str] = Field(default_factory=list)
    op_types: list[str] = Field(default_factory=list)


class RemediesSection(Document):
    """What automatic remedies did for this target (`modelfleet.workers.remedies`).

    `trigger`: the requested settings' failed attempt. `tried`: every alternative in order.
    `applied`: the settings of the published file (None: nothing passed, or remedies off).
    For fp16/int8: `keptFloat` (what stayed in float32) and the result's size and latency.
    """

    mode: Literal["auto", "none"]
    requested: dict[str, Any]
    trigger: RemedyAttempt
    tried: list[RemedyAttempt] = Field(default_factory=list)
    applied: dict[str, Any] | None = None
    applied_change: str | None = None
    budget_spent: bool = False
    kept_float: KeptFloat | None = None
    size_bytes: int | None = None
    latency_p50_ms: float | None = None
    seconds: float = 0.0

    def status_lines(self) -> list[str]:
        """`status.validation[].remedies` (and the CLI's lines): one per alternative, in order."""
        return [f"{t.change}: {t.verdict()}" for t in self.tried]


class SourceInfo(Document):
    uri: str
    digest: str | None = None
    format: str


class Report(Document):
    schema_version: int = REPORT_SCHEMA_VERSION
    format: TargetFormat
    digest: str | None
    source: SourceInfo
    passed: bool | None = None
    conversion: ConversionSection | None = None
    validation: ValidationSection | None = None
    remedies: RemediesSection | None = None
    failure: FailureInfo | None = None
    updated_at: str


def write_probe(
    path: Path,
    *,
    inputs: Sequence[Mapping[str, npt.NDArray[Any]]],
    references: Sequence[Sequence[npt.NDArray[Any]]],
    candidates: Sequence[Sequence[npt.NDArray[Any]]],
    output_names: Sequence[str],
    meta: Mapping[str, Any],
) -> None:
    """Write probe.npz (format in the module docstring)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in inputs[0]:
        arrays[f"input:{name}"] = np.stack([sample[name] for sample in inputs])
    for k, name in enumerate(output_names):
        arrays[f"output:{name}"] = np.stack([outs[k] for outs in references])
        arrays[f"candidate:{name}"] = np.stack([outs[k] for outs in candidates])
    arrays["meta"] = np.array(json.dumps(dict(meta), default=_jsonable))
    with path.open("wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def read_probe(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """(arrays without meta, meta) — what the device agent does with a probe."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: np.asarray(data[key]) for key in data.files if key != "meta"}
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return arrays, meta


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


def termination_line(payload: Mapping[str, Any]) -> str:
    """One JSON line that fits Kubernetes' termination message limit (4096 bytes)."""
    data = {k: _finite(v) for k, v in payload.items()}
    line = json.dumps(data, separators=(",", ":"), sort_keys=False)
    if len(line.encode()) > TERMINATION_LIMIT and isinstance(data.get("message"), str):
        overflow = len(line.encode()) - TERMINATION_LIMIT + 3
        data["message"] = data["message"][: max(0, len(data["message"]) - overflow)] + "..."
        line = json.dumps(data, separators=(",", ":"))
    return line[: TERMINATION_LIMIT + 90]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_termination_failure(text: str) -> tuple[str, str] | None:
    """(reason, message) of a failure termination line; None for a success line, or for text
    that is no termination line at all (`FallbackToLogsOnError` puts the log's tail there
    when the worker died before writing one)."""
    try:
        data = json.loads(text.strip().splitlines()[-1]) if text.strip() else None
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("ok") is not False:
        return None
    reason, message = data.get("reason"), data.get("message")
    if not isinstance(reason, str) or not reason or not isinstance(message, str):
        return None
    return reason, message


def write_termination_log(path: Path | None, payload: Mapping[str, Any]) -> bool:
    """Write the one-line message; False (never an exception) when the path is unwritable."""
    if path is None:
        return False
    try:
        path.write_text(termination_line(payload) + "\n")
    except OSError:
        return False
    return True
