"""Automatic remedies, the pure part: the conversion settings a target is produced with, which
failures a remedy may fix, and the ordered alternatives to try (issue 11, step 6).

The worker side (`modelfleet.workers.remedies`) runs the alternatives; the artifact digest
(`modelfleet.artifacts.artifact_digest`) covers the settings that were used. Everything here
is pure, so the order of what is tried is testable without a converter.

Why this order (measured, FIELD-NOTES and `docs/remedies.md`):

- Wrong numbers from a graph with InstanceNormalization nodes first get the *repair* of
  known paddle2onnx defects at the requested opset: paddle2onnx 2.1.0 reads the float64
  `epsilon` of PIR `group_norm` (and `instance_norm`) into an uninitialised float, so every
  export writes a random InstanceNormalization epsilon (NaN, near-zero outputs, or almost
  right). The opset does not matter (one mapper serves all), so other opsets only re-roll
  that value; the repair copies the program's epsilon and is exact.
- Then other opsets, the ones that select different paddle2onnx mapper code paths first: 13
  (axes become inputs of Squeeze/Unsqueeze/Split/ReduceSum), 11 (the oldest paths, Resize's
  first full form), 18 (Reduce* axes as inputs), then 16 and 15 (few mapper changes).
- fp16: `keep_io_types` is already always on, so the alternatives keep parts in float32: the
  nodes around the diverging node when one is named, then the op types fp16 is known to break
  (Resize's empty scales/sizes inputs, recurrent cells, normalisation statistics), growing.
  A converter crash or a graph ONNX Runtime rejects (`transform`, `load`) starts there.
- int8: the most damaging nodes (a ranking from the divergence step) are kept in float in
  growing groups (1, 2, 4, ...), most damaging first, until the target passes or the budget
  (attempts, share of nodes kept in float) is spent.
- A failing Paddle Inference reference, and last a tolerance miss, get the oneDNN-free
  reference (oneDNN fails on some PIR attributes and may compute differently).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from modelfleet.api.conversion import KeepFloat, Target, TargetFormat

Stage = Literal["source", "export", "transform", "load", "reference", "validation"]
ReferenceConfig = Literal["default", "no-onednn"]

REPAIR_NORM_EPSILON = "norm-epsilon"
REPAIRS = (REPAIR_NORM_EPSILON,)
OPSET_LADDER = (13, 11, 18, 16, 15)
FP16_FRAGILE_OPS = (
    ("Resize", "Upsample"),
    ("LSTM", "GRU", "RNN"),
    ("InstanceNormalization", "LayerNormalization", "GroupNormalization", "BatchNormalization",
     "ReduceMean", "Pow", "Sqrt", "Softmax"),
)  # fmt: skip
REMEDIABLE_STAGES: frozenset[Stage] = frozenset(
    {"export", "transform", "load", "reference", "validation"}
)


@dataclass(frozen=True)
class Settings:
    """How one target is produced: hashable, JSON-serialisable (`to_wire`), ordered fields.

    `float_nodes` / `float_op_types`: kept in float — fp16: the converter's node/op block
    lists; int8: excluded from quantization. `repairs`: post-export fixes (`REPAIRS`).
    `reference`: the Paddle Inference configuration the validation compares against.
    """

    opset: int
    repairs: tuple[str, ...] = ()
    float_nodes: tuple[str, ...] = ()
    float_op_types: tuple[str, ...] = ()
    reference: ReferenceConfig = "default"

    @classmethod
    def requested(cls, target: Target) -> Settings:
        """What the spec asks for: its opset and the nodes/op types it keeps in float."""
        keep = target.keep_float
        return cls(
            opset=target.opset,
            float_nodes=tuple(keep.nodes) if keep else (),
            float_op_types=tuple(keep.op_types) if keep else (),
        )

    def applied_to(self, target: Target) -> Target:
        """`target` asking for these settings' opset and float sets (what a spec can say)."""
        keep = None
        if self.float_nodes or self.float_op_types:
            keep = KeepFloat(nodes=list(self.float_nodes), op_types=list(self.float_op_types))
        return target.model_copy(update={"opset": self.opset, "keep_float": keep})

    def to_wire(self) -> dict[str, Any]:
        return {
            "opset": self.opset,
            "repairs": list(self.repairs),
            "floatNodes": list(self.float_nodes),
            "floatOpTypes": list(self.float_op_types),
            "reference": self.reference,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Settings:
        return cls(
            opset=int(raw["opset"]),
            repairs=tuple(raw.get("repairs", ())),
            float_nodes=tuple(raw.get("floatNodes", ())),
            float_op_types=tuple(raw.get("floatOpTypes", ())),
            reference=raw.get("reference", "default"),
        )

    def delta(self, base: Settings) -> dict[str, Any]:
        """The wire fields that differ from `base` (empty: produced as requested)."""
        mine, theirs = self.to_wire(), base.to_wire()
        return {key: value for key, value in mine.items() if theirs[key] != value}

    def describe(self, base: Settings | None = None) -> str:
        """One line for the report and status, e.g. `opset 11` or `4 nodes kept in float`."""
        diff = self.delta(base) if base is not None else self.to_wire()
        parts = []
        if "opset" in diff:
            parts.append(f"opset {self.opset}")
        if diff.get("repairs"):
            parts.append("repair " + "+".join(self.repairs))
        if diff.get("floatNodes"):
            parts.append(f"{len(self.float_nodes)} node(s) kept in float")
        if diff.get("floatOpTypes"):
            parts.append("kept in float: " + ", ".join(self.float_op_types))
        if "reference" in diff:
            parts.append(f"reference {self.reference}")
        return "; ".join(parts) or "as requested"


@dataclass(frozen=True)
class Evidence:
    """What the failed attempt showed: the classified reason, where it happened and, for a
    tolerance miss, the numbers and the diverging node (step 5) when known."""

    reason: str
    message: str
    stage: Stage
    nan: bool = False
    cosine: float | None = None
    max_abs: float | None = None
    diverging_node: str | None = None
    neighbours: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    """How much a remedy may cost: attempts after the first failure, wall time, and for
    int8 (and fp16 node blocks) the share of the graph's nodes that may stay in float."""

    max_attempts: int = 6
    max_seconds: float = 600.0
    max_float_share: float = 0.25


@dataclass(frozen=True)
class GraphFacts:
    """What the policy needs to know of the fp32 graph: its op types and node count."""

    op_types: frozenset[str] = field(default_factory=frozenset)
    node_count: int = 0


def remediable(evidence: Evidence) -> bool:
    """Whether any alternative can help: not for a missing source, a spec that does not fit,
    an operator paddle2onnx has no converter for at any opset, or storage trouble."""
    if evidence.stage not in REMEDIABLE_STAGES:
        return False
    if evidence.reason == "UnsupportedOperator":
        return "too old" in evidence.message
    return evidence.reason in {"InvalidModel", "ToleranceExceeded", "ReferenceFailed",
                               "ConverterCrashed", "InternalError"}  # fmt: skip


def alternatives(
    fmt: TargetFormat,
    evidence: Evidence,
    requested: Settings,
    *,
    source_format: Literal["paddle", "onnx"] = "paddle",
    graph: GraphFacts | None = None,
) -> list[Settings]:
    """The settings to try after `requested` failed with `evidence`, best bet first; pure.

    int8 tolerance misses are not listed here: they follow a ranking (`exclusion_steps`).
    """
    if not remediable(evidence):
        return []
    graph = graph or GraphFacts()
    if evidence.stage == "reference" or evidence.reason == "ReferenceFailed":
        return [replace(requested, reference="no-onednn")]
    paddle = source_format == "paddle"
    numbers = evidence.stage == "validation"  # the file was made and loads: wrong numbers
    tried: list[Settings] = []
    if paddle and numbers and (not graph.op_types or "InstanceNormalization" in graph.op_types):
        tried.append(replace(requested, repairs=REPAIRS))
    if fmt == "onnx-fp16":
        tried.extend(_fp16_float_sets(evidence, requested, graph))
    if paddle:
        too_old = evidence.reason == "UnsupportedOperator"
        tried.extend(
            replace(requested, opset=opset)
            for opset in OPSET_LADDER
            if opset != requested.opset and not (too_old and opset < requested.opset)
        )
    if paddle and numbers:
        tried.append(replace(requested, reference="no-onednn"))
    return _unique(tried, requested)


def _fp16_float_sets(evidence: Evidence, requested: Settings, graph: GraphFacts) -> list[Settings]:
    sets: list[Settings] = []
    if evidence.diverging_node:
        around = (evidence.diverging_node, *evidence.neighbours)
        sets.append(replace(requested, float_nodes=_merge(requested.float_nodes, around)))
    present: tuple[str, ...] = ()
    for group in FP16_FRAGILE_OPS:
        found = tuple(op for op in group if op in graph.op_types or not graph.op_types)
        if found:
            present = _merge(present, found)
            sets.append(
                replace(requested, float_op_types=_merge(requested.float_op_types, present))
            )
    return sets


def exclusion_steps(
    requested: Settings, ranking: Sequence[str], graph: GraphFacts, budget: Budget
) -> list[Settings]:
    """int8: keep the `ranking`'s first 1, 2, 4, ... nodes in float (most damaging first),
    never more than `budget.max_float_share` of the graph's nodes; pure."""
    candidates = [n for n in dict.fromkeys(ranking) if n not in requested.float_nodes]
    limit = int(budget.max_float_share * graph.node_count) if graph.node_count else len(candidates)
    limit = min(limit, len(candidates))
    steps: list[Settings] = []
    size = 1
    while size <= limit and len(steps) < budget.max_attempts:
        nodes = _merge(requested.float_nodes, candidates[:size])
        steps.append(replace(requested, float_nodes=nodes))
        if size == limit:
            break
        size = min(size * 2, limit)
    return steps


def _merge(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _unique(candidates: Iterable[Settings], requested: Settings) -> list[Settings]:
    seen = {requested}
    ordered = []
    for settings in candidates:
        if settings not in seen:
            seen.add(settings)
            ordered.append(settings)
    return ordered
