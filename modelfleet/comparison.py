"""Numerical comparison of a candidate output against the reference (pure functions).

Semantics follow Polygraphy's comparator and are stated in every report (`SEMANTICS`):

- an element fails only if it exceeds BOTH `atol` (|c - r| > atol) and `rtol`
  (|c - r| / |r| > rtol); where the reference is 0 the relative error is 0 if the candidate is
  0 too and infinite otherwise; equal values (including equal infinities) never fail;
- NaN anywhere, in reference or candidate, always fails;
- integer and bool outputs are compared as numbers with the same rule (any difference of 1
  exceeds the default tolerances);
- `min_cosine`, when set, must be met by the cosine similarity of the flattened outputs;
- for quantized targets `top_k_agreement`, when set, must be met by the share of rows (last
  axis = classes) whose reference top-1 class is among the candidate's top-k; with a top-k
  or cosine gate set the element rule is reported but does not decide (`elementwise=False`).

`OutputResult` carries verdict and evidence and is truthy when it passed; it is also the
per-output entry of report.json's validation section (`modelfleet.reports`), so the worker's
comparison is written as computed and the device agent's probe check reads the same type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass

from modelfleet.api.conversion import QUANTIZED_FORMATS, TargetFormat, Tolerance
from modelfleet.artifacts import Document

SEMANTICS = (
    "Polygraphy: an element fails only if |c-r| > atol AND |c-r|/|r| > rtol (decides when "
    "elementwise); NaN always fails; max|c-r|/max|r| <= maxNormalizedError and "
    "||c-r||/||r|| <= maxRelativeL2 when set; cosine >= minCosine when set; quantized targets: "
    "top-k agreement >= topKAgreement when set"
)

Array = npt.NDArray[Any]


@pydantic_dataclass(frozen=True, config=ConfigDict(alias_generator=to_camel, populate_by_name=True))
class Rule:
    """The effective tolerance of one target (see `effective_rule`); written as is (camelCase)
    into report.json's validation section and probe.npz's meta, where devices read it back."""

    atol: float
    rtol: float
    min_cosine: float | None = None
    top_k_agreement: float | None = None
    top_k: int = 1
    elementwise: bool = True
    max_normalized_error: float | None = None
    max_relative_l2: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """camelCase JSON values, as report.json and probe.npz's meta hold them."""
        wire: dict[str, Any] = TypeAdapter(Rule).dump_python(self, by_alias=True, mode="json")
        return wire


DEFAULT_RULES: dict[str, Rule] = {
    "onnx": Rule(atol=1e-5, rtol=1e-5, elementwise=False,
                 max_normalized_error=5e-5, max_relative_l2=5e-5),
    "onnx-fp16": Rule(atol=1e-2, rtol=1e-2, elementwise=False, min_cosine=0.99999,
                      max_normalized_error=1e-2, max_relative_l2=1e-2),
    "onnx-int8": Rule(atol=1e-1, rtol=1e-1, elementwise=False, min_cosine=0.995,
                      max_normalized_error=0.5, max_relative_l2=0.2),
}  # fmt: skip
# TensorFlow targets are made from the fp32 ONNX: each is held to its ONNX counterpart's bounds.
DEFAULT_RULES |= {
    "tf-savedmodel": DEFAULT_RULES["onnx"],
    "tflite": DEFAULT_RULES["onnx"],
    "tflite-fp16": DEFAULT_RULES["onnx-fp16"],
    "tflite-dynamic-range": DEFAULT_RULES["onnx-int8"],
}
"""Per-format defaults, chosen on the model zoo (docs/tolerances.md): every faithful
conversion passes with >= 3x headroom and every fault injected into an fp32 artifact fails by
>= 9x. Errors are normalised by the reference's scale (max |r|, ||r||): a fixed atol rejects
faithful deep nets whose logits reach hundreds (ResNet-50: 4% of elements over 1e-5 at a
max abs ÷ max |r| of 1.1e-6). The element rule is still reported, not decisive; int8 top-k
agreement is opt-in (`topKAgreement`), since the last axis is not a class axis for dense or
sequence outputs."""


def effective_rule(fmt: TargetFormat, tolerance: Tolerance | None) -> Rule:
    """The format's defaults when the target has no tolerance, else the user's tolerance:
    the element rule decides unless an aggregate gate makes it informational (a normalised
    or relative-L2 bound, or for int8 a cosine or top-k gate)."""
    if tolerance is None:
        return DEFAULT_RULES[fmt]
    scaled = tolerance.max_normalized_error is not None or tolerance.max_relative_l2 is not None
    gated = tolerance.min_cosine is not None or tolerance.top_k_agreement is not None
    return Rule(
        atol=tolerance.atol,
        rtol=tolerance.rtol,
        min_cosine=tolerance.min_cosine,
        top_k_agreement=tolerance.top_k_agreement,
        top_k=tolerance.top_k,
        elementwise=not (scaled or (fmt in QUANTIZED_FORMATS and gated)),
        max_normalized_error=tolerance.max_normalized_error,
        max_relative_l2=tolerance.max_relative_l2,
    )


class OutputResult(Document):
    """One output's verdict and evidence; `reference_name` is the reference output it was
    compared with when the names differ from the candidate's (set by the workers)."""

    model_config = ConfigDict(frozen=True)

    name: str
    reference_name: str | None = None
    passed: bool
    dtype: str = "float32"
    max_abs: float
    max_rel: float
    mean_abs: float
    l2: float
    cosine: float
    mismatched: int
    total: int
    top1_agreement: float | None = None
    top_k_agreement: float | None = None
    top_k: int | None = None
    normalized_error: float | None = None
    relative_l2: float | None = None
    failures: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class ComparisonResult:
    outputs: tuple[OutputResult, ...]

    def __bool__(self) -> bool:
        return all(self.outputs)

    @property
    def passed(self) -> bool:
        return bool(self)

    def stats(self) -> dict[str, float]:
        """Worst case over outputs (what the ModelConversion status shows)."""
        if not self.outputs:
            return {}
        return {
            "max_abs": max(o.max_abs for o in self.outputs),
            "max_rel": max(o.max_rel for o in self.outputs),
            "l2": max(o.l2 for o in self.outputs),
            "cosine": min(o.cosine for o in self.outputs),
        }

    def failures(self) -> list[str]:
        return [f"{o.name}: {why}" for o in self.outputs for why in o.failures]


def compare_output(
    name: str,
    reference: Array,
    candidate: Array,
    rule: Rule,
    *,
    classes_axis: bool = False,
    reference_name: str | None = None,
) -> OutputResult:
    """Compare one output (all samples concatenated); pure."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        why = f"shape {cand.shape} differs from reference {ref.shape}"
        return _broken(name, reference_name, ref, why)
    r = ref.astype(np.float64).ravel()
    c = cand.astype(np.float64).ravel()
    failures: list[str] = []
    nan_ref, nan_cand = int(np.isnan(r).sum()), int(np.isnan(c).sum())
    if nan_ref:
        failures.append(f"{nan_ref} NaN in reference")
    if nan_cand:
        failures.append(f"{nan_cand} NaN in candidate")
    abs_diff, rel_diff = element_errors(r, c)
    bad = (abs_diff > rule.atol) & (rel_diff > rule.rtol)
    bad |= np.isnan(r) | np.isnan(c)
    mismatched = int(bad.sum())
    valid = ~(np.isnan(abs_diff))
    max_abs = float(abs_diff[valid].max()) if valid.any() else math.nan
    max_rel = float(rel_diff[valid].max()) if valid.any() else math.nan
    mean_abs = float(abs_diff[valid].mean()) if valid.any() else math.nan
    finite = np.isfinite(abs_diff)
    l2 = float(np.sqrt(np.sum(abs_diff[finite] ** 2))) if finite.any() else math.inf
    if not finite.all():
        l2 = math.inf
    cos = cosine_similarity(r, c)
    normalized = _scaled(max_abs, float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)))
    relative = _scaled(l2, float(np.linalg.norm(r[np.isfinite(r)])))
    for value, bound, label in (
        (normalized, rule.max_normalized_error, "max abs / max |reference|"),
        (relative, rule.max_relative_l2, "relative L2"),
    ):
        if bound is not None and not value <= bound:
            failures.append(f"{label} {value:.3g} > {bound:g}")
    if rule.elementwise and mismatched and not (nan_ref or nan_cand):
        failures.append(
            f"{mismatched}/{r.size} elements exceed atol={rule.atol:g} and rtol={rule.rtol:g}"
        )
    if rule.min_cosine is not None and not cos >= rule.min_cosine:
        failures.append(f"cosine {cos:.6f} < minCosine {rule.min_cosine:g}")
    top1 = topk = None
    k = None
    if classes_axis and ref.ndim >= 1 and ref.shape[-1] > 1:
        k = min(rule.top_k, ref.shape[-1])
        top1 = top_k_agreement(ref, cand, 1)
        topk = top_k_agreement(ref, cand, k)
        if rule.top_k_agreement is not None and not topk >= rule.top_k_agreement:
            failures.append(f"top-{k} agreement {topk:.4f} < {rule.top_k_agreement:g}")
    return OutputResult(
        name=name,
        reference_name=reference_name,
        passed=not failures,
        max_abs=max_abs,
        max_rel=max_rel,
        mean_abs=mean_abs,
        l2=l2,
        cosine=cos,
        mismatched=mismatched,
        total=int(r.size),
        dtype=str(ref.dtype),
        top1_agreement=top1,
        top_k_agreement=topk,
        top_k=k,
        normalized_error=normalized,
        relative_l2=relative,
        failures=tuple(failures),
    )


def _scaled(error: float, scale: float) -> float:
    """An error relative to the reference's scale; an all-zero reference scales nothing (any
    error is infinite, none is zero), NaN stays NaN."""
    if math.isnan(error):
        return math.nan
    if scale > 0:
        return error / scale
    return 0.0 if error == 0 else math.inf


def _broken(name: str, reference_name: str | None, ref: Array, why: str) -> OutputResult:
    return OutputResult(
        name=name,
        reference_name=reference_name,
        passed=False,
        max_abs=math.inf,
        max_rel=math.inf,
        mean_abs=math.inf,
        l2=math.inf,
        cosine=math.nan,
        mismatched=int(ref.size),
        total=int(ref.size),
        dtype=str(ref.dtype),
        failures=(why,),
    )


def element_errors(reference: Array, candidate: Array) -> tuple[Array, Array]:
    """Absolute and relative error per element (float64); equal values have zero error."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    equal = r == c
    with np.errstate(invalid="ignore", over="ignore"):
        abs_diff = np.where(equal, 0.0, np.abs(c - r))
        scale = np.abs(r)
        safe = np.where(scale > 0, scale, 1.0)
        rel_diff = np.where(scale > 0, abs_diff / safe, np.where(abs_diff == 0, 0.0, np.inf))
        rel_diff = np.where(np.isinf(r) & ~equal, np.inf, rel_diff)
    abs_diff = np.where(np.isnan(r) | np.isnan(c), np.nan, abs_diff)
    rel_diff = np.where(np.isnan(r) | np.isnan(c), np.nan, rel_diff)
    return abs_diff, rel_diff


def cosine_similarity(reference: Array, candidate: Array) -> float:
    """Cosine of the flattened arrays over finite elements; both all-zero → 1, one → 0."""
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if np.isnan(r).any() or np.isnan(c).any():
        return math.nan
    finite = np.isfinite(r) & np.isfinite(c)
    same_inf = ~finite & (r == c)
    if (~finite & ~same_inf).any():
        return math.nan
    r, c = r[finite], c[finite]
    nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
    if nr == 0.0 and nc == 0.0:
        return 1.0
    if nr == 0.0 or nc == 0.0:
        return 0.0
    return float(np.clip(np.dot(r, c) / (nr * nc), -1.0, 1.0))


def top_k_agreement(reference: Array, candidate: Array, k: int) -> float:
    """Share of rows (last axis = classes) whose reference top-1 is in the candidate's top-k."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    classes = ref.shape[-1]
    r = ref.reshape(-1, classes)
    c = cand.reshape(-1, classes)
    if r.shape[0] == 0:
        return 1.0
    k = max(1, min(k, classes))
    top1 = np.argmax(np.nan_to_num(r, nan=-np.inf), axis=1)
    ranked = np.argsort(-np.nan_to_num(c, nan=-np.inf), axis=1, kind="stable")[:, :k]
    hits = (ranked == top1[:, None]).any(axis=1)
    return float(hits.mean())


def compare_outputs(
    names: Sequence[str],
    references: Sequence[Array],
    candidates: Sequence[Array],
    rule: Rule,
    *,
    quantized: bool = False,
    reference_names: Sequence[str] | None = None,
) -> ComparisonResult:
    """Compare every output; top-k agreement for float outputs of quantized targets.
    `reference_names`, when given, names the reference output each candidate output met."""
    ref_names: Sequence[str | None] = reference_names or [None] * len(names)
    results = []
    for name, ref_name, ref, cand in zip(names, ref_names, references, candidates, strict=True):
        is_float = np.issubdtype(np.asarray(ref).dtype, np.floating)
        results.append(
            compare_output(
                name,
                ref,
                cand,
                rule,
                classes_axis=quantized and is_float,
                reference_name=ref_name,
            )
        )
    return ComparisonResult(tuple(results))
