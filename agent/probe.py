"""The on-device check: load the artifact on its runtime, run the probe, judge the outputs.

The probe (`probe.npz`, format in `modelfleet.reports`) holds a few of the validation
inputs, the reference outputs (`output:<name>`, Paddle Inference) and the artifact's own
outputs at validation time (`candidate:<name>`, ONNX Runtime CPU). The question on the device
is "does this file, on this runtime, compute what was validated?", i.e. catch a corrupted or
wrong artifact and a runtime that computes differently here. `check_plan` decides how:

- fp32 / fp16 (the validated rule is elementwise): device output vs the reference under the
  validated `atol`/`rtol` with Polygraphy's rule (an element fails only if it exceeds both;
  NaN always fails). The validation proved that rule for every element of every sample, so it
  must hold on the probe's subset too. Aggregate gates (`minCosine`) are not re-checked: over
  a handful of samples they can fail where the full validation passed.
- quantized (`onnx-int8`, or a validated rule with `elementwise: false`): against the
  reference only cosine/top-k decided, which on a few samples is both loose (a subtly wrong
  artifact passes) and unstable (one disagreeing row of four fails). So the device output is
  compared with `candidate:` - the same artifact's validated output - elementwise under the
  validated `atol`/`rtol`, a tight check of file and runtime. Without `candidate:` keys the
  full validated rule against the reference is the fallback.
- no tolerance in the probe meta: elementwise against the reference, atol = rtol = 1e-3.

An assignment's `tolerance` (its EdgeDeployment variant's) replaces the validated one in the
meta (`with_tolerance`): the user's bound for this backend, e.g. an OpenVINO GPU in fp16.

`maxAbs` in the slot status is the largest absolute difference of the deciding comparison;
`validatedMaxAbs` the largest of `candidate:` against the reference, i.e. what ONNX Runtime on
the validating CPU computed, so a device's engine can be set next to it. The session is the one
the slot's runtime request builds (`modelfleet.engines`), the same the application opens.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelfleet import engines
from modelfleet.agent.errors import (
    AgentError,
    LoadFailed,
    ProbeFailed,
    RuntimeFallback,
    RuntimeUnavailable,
)
from modelfleet.api.conversion import Tolerance
from modelfleet.api.device import RuntimeRequest
from modelfleet.comparison import Rule, compare_outputs, effective_rule
from modelfleet.engines import first_line

DEFAULT_TOLERANCE = 1e-3
QUANTIZED_FORMATS = frozenset({"onnx-int8"})

Against = Literal["reference", "candidate"]
Arrays = Mapping[str, Any]


@dataclass(frozen=True)
class CheckPlan:
    against: Against
    rule: Rule
    quantized: bool

    @property
    def prefix(self) -> str:
        return "output:" if self.against == "reference" else "candidate:"


@dataclass(frozen=True)
class ProbeVerdict:
    passed: bool
    against: Against
    samples: int
    max_abs: float
    latency_ms: float
    failures: tuple[str, ...] = ()
    validated_max_abs: float | None = None

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        head = f"{self.samples} probe sample(s) vs the {self.against}: max abs {self.max_abs:.3g}"
        if self.passed:
            return head
        return f"{head}; " + "; ".join(self.failures)[:1500]


def check_plan(meta: Mapping[str, Any], fmt: str, has_candidate: bool) -> CheckPlan:
    """How to judge the device's outputs (module docstring): pure."""
    tolerance = meta.get("tolerance")
    if not isinstance(tolerance, Mapping):
        return CheckPlan("reference", Rule(DEFAULT_TOLERANCE, DEFAULT_TOLERANCE), False)
    rule = Rule(
        atol=float(_pick(tolerance, "atol", DEFAULT_TOLERANCE)),
        rtol=float(_pick(tolerance, "rtol", DEFAULT_TOLERANCE)),
        min_cosine=_optional_float(_pick(tolerance, "minCosine", None)),
        top_k_agreement=_optional_float(_pick(tolerance, "topKAgreement", None)),
        top_k=int(_pick(tolerance, "topK", 1)),
        elementwise=bool(_pick(tolerance, "elementwise", True)),
        max_normalized_error=_optional_float(_pick(tolerance, "maxNormalizedError", None)),
        max_relative_l2=_optional_float(_pick(tolerance, "maxRelativeL2", None)),
    )
    declared = str(meta.get("format") or fmt)
    quantized = declared in QUANTIZED_FORMATS or fmt in QUANTIZED_FORMATS or not rule.elementwise
    element_rule = Rule(atol=rule.atol, rtol=rule.rtol)
    if quantized and has_candidate:
        return CheckPlan("candidate", element_rule, True)
    if quantized:
        return CheckPlan("reference", rule, True)
    return CheckPlan("reference", element_rule, False)


def with_tolerance(
    meta: Mapping[str, Any], fmt: str, tolerance: Tolerance | None
) -> dict[str, Any]:
    """The probe's meta judged under the assignment's tolerance when it has one: pure."""
    if tolerance is None:
        return dict(meta)
    rule = effective_rule(fmt, tolerance)  # type: ignore[arg-type]  # a given tolerance
    return {**meta, "tolerance": rule.to_wire()}


def judge(
    outputs: Mapping[str, Any],
    arrays: Arrays,
    meta: Mapping[str, Any],
    fmt: str,
    *,
    latency_ms: float = 0.0,
) -> ProbeVerdict:
    """Compare the device's outputs (name → stacked samples) with the probe: pure."""
    import numpy as np

    names = [key.split(":", 1)[1] for key in arrays if key.startswith("output:")]
    has_candidate = bool(names) and all(f"candidate:{n}" in arrays for n in names)
    plan = check_plan(meta, fmt, has_candidate)
    samples = _samples(arrays)
    missing = [n for n in names if n not in outputs]
    if not names or missing:
        why = f"the model did not produce {', '.join(missing)}" if missing else "no outputs"
        return ProbeVerdict(False, plan.against, samples, math.inf, latency_ms, (why,))
    result = compare_outputs(
        names,
        [np.asarray(arrays[plan.prefix + n]) for n in names],
        [np.asarray(outputs[n]) for n in names],
        plan.rule,
        quantized=plan.quantized and plan.against == "reference",
    )
    max_abs = result.stats().get("max_abs", math.inf)
    return ProbeVerdict(
        passed=result.passed,
        against=plan.against,
        samples=samples,
        max_abs=float(max_abs),
        latency_ms=latency_ms,
        failures=tuple(result.failures()),
        validated_max_abs=_validated_max_abs(arrays, names) if has_candidate else None,
    )


AGENT_ERRORS: Mapping[str, type[AgentError]] = {
    "RuntimeUnavailable": RuntimeUnavailable,
    "RuntimeFallback": RuntimeFallback,
}


def load_session(model: Path, request: RuntimeRequest | None = None) -> engines.Session:
    """The session `request` asks for (default: ONNX Runtime on the CPU), observed (where its
    kernels run), as its classified agent failure when it cannot be built as asked."""
    try:
        return engines.load(model, request, observe=True)
    except engines.EngineError as err:
        raise AGENT_ERRORS.get(err.reason, LoadFailed)(str(err)) from err


def read_probe(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arrays without meta, meta); ProbeFailed when the file is not a readable probe."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files if key != "meta"}
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, ValueError, KeyError) as err:
        raise ProbeFailed(f"the probe is not a readable probe.npz: {first_line(err)}") from err
    if not isinstance(meta, dict):
        raise ProbeFailed("the probe's meta is not a JSON object")
    return arrays, meta


def run_probe(
    session: engines.Session, arrays: Arrays, meta: Mapping[str, Any], fmt: str
) -> ProbeVerdict:
    """Run every probe sample through `session` (one warm-up first) and judge the outputs."""
    import numpy as np

    description = session.describe()
    feeds_by_name: dict[str, Any] = {}
    for name in description.inputs:
        key = f"input:{name}"
        if key not in arrays:
            raise ProbeFailed(f"the probe has no input {name!r} the model needs")
        feeds_by_name[name] = arrays[key]
    names = [key.split(":", 1)[1] for key in arrays if key.startswith("output:")]
    unknown = [n for n in names if n not in description.outputs]
    if unknown:
        raise ProbeFailed(f"the model has no output {', '.join(map(repr, unknown))}")
    samples = _samples(arrays)
    if samples == 0:
        raise ProbeFailed("the probe holds no samples")
    runs: list[dict[str, Any]] = []
    timings: list[float] = []
    try:
        first = {name: value[0] for name, value in feeds_by_name.items()}
        session.run(first)
        for index in range(samples):
            feed = {name: value[index] for name, value in feeds_by_name.items()}
            started = time.perf_counter()
            runs.append(session.run(feed))
            timings.append((time.perf_counter() - started) * 1000.0)
    except Exception as err:  # the engines raise their own untyped errors
        raise ProbeFailed(f"the model failed on the probe inputs: {first_line(err)}") from err
    outputs = {name: np.stack([run[name] for run in runs]) for name in names}
    return judge(outputs, arrays, meta, fmt, latency_ms=statistics.median(timings))


def _validated_max_abs(arrays: Arrays, names: list[str]) -> float | None:
    """Largest |candidate - reference| over the outputs; None where the shapes differ or a
    value is not finite (a status holds no NaN)."""
    import numpy as np

    worst = 0.0
    for name in names:
        candidate = np.asarray(arrays[f"candidate:{name}"], dtype=np.float64)
        reference = np.asarray(arrays[f"output:{name}"], dtype=np.float64)
        if candidate.shape != reference.shape:
            return None
        difference = float(np.max(np.abs(candidate - reference))) if candidate.size else 0.0
        if not math.isfinite(difference):
            return None
        worst = max(worst, difference)
    return worst


def _samples(arrays: Arrays) -> int:
    for key, value in arrays.items():
        if key.startswith("input:"):
            return int(value.shape[0]) if getattr(value, "ndim", 0) else 0
    return 0


def _pick(mapping: Mapping[str, Any], camel: str, default: Any) -> Any:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    value = mapping.get(camel, mapping.get(snake, default))
    return default if value is None and default is not None else value


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
