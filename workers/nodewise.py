"""Node-by-node comparison of two runs of one network (the engine of `divergence`).

Pure graph work on `onnx` protos plus one runtime call (`run_tensors`, ONNX Runtime on CPU),
so the unit tests drive it with graphs built by `onnx.helper`. Called only by
`modelfleet.workers.divergence`, in its child process.

Matching tensors. A candidate tensor is compared with the reference tensor of the same name.
The transforms keep names: fp16 conversion inserts `Cast` nodes (`graph_input_cast_0`, and
renames the tensor before the last output cast to `graph_output_cast_0`), QDQ quantization
inserts `QuantizeLinear`/`DequantizeLinear` pairs (`X` → `X_QuantizeLinear_Output` →
`X_DequantizeLinear_Output`, or `X_QuantizeLinear_Input` → ... → `X` at a graph output) and
fuses a few nodes in its pre-processing (`Conv` + bias `Add` writes the `Add`'s output name).
So the transparent nodes (`Cast`, `Identity`, Q/DQ) are not compared themselves; a tensor a
compute node writes is matched by its own name, else by the first name a chain of transparent
nodes after it carries. Static tensors (initializers, `Constant` outputs and what is computed
from them alone) are weights, not layers, and are skipped. The candidate tensor compared is
the value the compute node's consumers read: after the activation's Q/DQ pair when there is
one (ORT's quantizer folds a Relu into that pair's clipping, so the node's own output is then
the pre-Relu value).

The per-node criterion (`node_rule`). The target's rule is written for final outputs; on
intermediate tensors of any magnitude its element rule would flag near-zero elements of large
activations everywhere. Each tensor is therefore judged scale-free: its relative L2 error
||c - r|| / ||r|| must stay within the rule's maxRelativeL2 (the format defaults set one),
else max(atol, rtol) when the rule is elementwise, never below 100 float32 epsilons = 1.2e-5,
and its cosine must reach minCosine when the rule sets one (0.99 for a
rule with neither, e.g. int8 with only top-k); NaN always fails. Measured: a faithful
ResNet-50 export stays within 8.4e-7 of the Paddle program at each of its 176 compared
tensors; a GroupNorm exported with epsilon 0 instead of Paddle's 1e-5 departs by 1.5e-5
(flagged under an elementwise 1e-5, within the fp32 default 5e-5); one conv weight nudged by
5% of its tensor's range departs by 1e-3 to 1e-2.

Errors accumulate along the graph (int8 especially), so the first node that fails is where
the accumulated error crossed the bar, not necessarily where it was made: `rank` orders nodes
by the error they add themselves: the relative L2 of the value their consumers read minus the
largest relative L2 among the compared values their layer reads. For int8 that charges a node
with its weights' and its own output's quantization, which is what keeping it out of
quantization removes first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelfleet.comparison import OutputResult, Rule, compare_output

Array = npt.NDArray[Any]

TRANSPARENT = frozenset({"Cast", "Identity", "QuantizeLinear", "DequantizeLinear"})
FALLBACK_MIN_COSINE = 0.99
FLOAT32_FLOOR = 100 * float(np.finfo(np.float32).eps)  # 1.2e-5
_CHAIN_DEPTH = 4


@dataclass(frozen=True)
class Pair:
    """One comparison: candidate tensor `tensor` (the value `node`'s consumers see, after any
    activation quantization) against reference tensor `reference` (another graph's tensor
    name, or a key into the Paddle tensors); `output` names it in reports."""

    node: str
    op_type: str
    output: str
    tensor: str
    reference: str
    source_op: str | None = None


@dataclass(frozen=True)
class NodeRule:
    max_relative_l2: float | None
    min_cosine: float | None

    def describe(self) -> str:
        parts = (
            [] if self.max_relative_l2 is None else [f"relative L2 <= {self.max_relative_l2:.2g}"]
        )
        if self.min_cosine is not None:
            parts.append(f"cosine >= {self.min_cosine:g}")
        return ", ".join(parts or ["no NaN"])


@dataclass(frozen=True)
class Check:
    pair: Pair
    result: OutputResult
    error: float  # relative L2: ||c - r|| / ||r||; inf when not finite

    @property
    def passed(self) -> bool:
        return self.result.passed


@dataclass(frozen=True)
class NodeError:
    """How much error one node adds itself (`delta`) on top of the error it was fed."""

    node: str
    op_type: str
    output: str
    error: float
    delta: float


class GraphIndex:
    """Producers, consumers and static tensors of one ONNX graph (node order = topological)."""

    def __init__(self, graph: Any) -> None:
        self.nodes = list(graph.node)
        self.inputs = {i.name for i in graph.input}
        self.outputs = [o.name for o in graph.output]
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        self.static = {t.name for t in graph.initializer} | {""}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producer[name] = node
            if node.op_type == "Constant" or all(i in self.static for i in node.input):
                self.static.update(node.output)

    def computed(self) -> Iterable[tuple[Any, str]]:
        """(node, output) of every compute node in topological order: what can be compared."""
        for node in self.nodes:
            if node.op_type in TRANSPARENT:
                continue
            for name in node.output:
                if name and name not in self.static:
                    yield node, name

    def carried_names(self, name: str) -> list[str]:
        """`name` and the names transparent nodes after it give the same value, nearest first."""
        found, frontier = [name], [name]
        for _ in range(_CHAIN_DEPTH):
            frontier = [
                out
                for tensor in frontier
                for node in self.consumers.get(tensor, [])
                if node.op_type in TRANSPARENT
                for out in node.output[:1]
            ]
            found.extend(frontier)
        return found

    def seen_value(self, carried: Sequence[str]) -> str:
        """Of a tensor's `carried_names`, the one its consumers read: past the activation's
        QuantizeLinear/DequantizeLinear pair (the quantizer may fold a Relu into that pair's
        clipping, so the compute node's own output is not always the layer's value)."""
        for name in reversed(carried):
            node = self.producer.get(name)
            if node is not None and node.op_type == "DequantizeLinear":
                return name
        return carried[0]

    def origin(self, name: str) -> str:
        """The tensor a chain of transparent nodes ending in `name` started from."""
        for _ in range(_CHAIN_DEPTH):
            node = self.producer.get(name)
            if node is None or node.op_type not in TRANSPARENT or not node.input:
                break
            name = node.input[0]
        return name

    def compute_producer(self, name: str) -> Any:
        node = self.producer.get(self.origin(name))
        return node if node is not None else self.producer.get(name)


def onnx_pairs(candidate: GraphIndex, reference: GraphIndex) -> list[Pair]:
    """Candidate compute outputs matched to reference tensors, in candidate topological order."""
    known = {name for _, name in reference.computed()} | set(reference.outputs)
    pairs = []
    for node, name in candidate.computed():
        carried = candidate.carried_names(name)
        match = next((n for n in carried if n in known), None)
        if match is not None:
            seen = candidate.seen_value(carried)
            pairs.append(Pair(node.name, node.op_type, match, seen, match))
    return pairs


def named_pairs(
    model: GraphIndex, references: Mapping[str, str], sources: Mapping[str, str]
) -> list[Pair]:
    """Tensors of `model` that `references` (tensor name → reference key) maps, in topological
    order; each named after the compute node that produced it (through Identity nodes), and
    after the source op `sources` names for its key."""
    pairs = []
    for name in _ordered_tensors(model):
        key = references.get(name)
        node = model.compute_producer(name)
        if key is None or node is None or name in model.static:
            continue
        pairs.append(Pair(node.name, node.op_type, name, name, key, sources.get(key)))
    return pairs


def _ordered_tensors(model: GraphIndex) -> list[str]:
    return list(dict.fromkeys(name for node in model.nodes for name in node.output if name))


def instrumented(model: Any, names: Iterable[str]) -> bytes:
    """The model, serialized, with `names` added to its graph outputs (types left to ORT)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {o.name for o in copy.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
    data: bytes = copy.SerializeToString()
    return data


def run_tensors(
    model: Any, names: Sequence[str], samples: Sequence[Mapping[str, Array]]
) -> dict[str, Array]:
    """`names` computed by ONNX Runtime (CPU) for each sample, stacked on a new axis 0."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        instrumented(model, names), sess_options=options, providers=["CPUExecutionProvider"]
    )
    wanted = list(dict.fromkeys(names))
    feeds_names = {i.name for i in session.get_inputs()}
    runs = [
        session.run(wanted, {k: v for k, v in sample.items() if k in feeds_names})
        for sample in samples
    ]
    return {name: np.stack([np.asarray(run[k]) for run in runs]) for k, name in enumerate(wanted)}


def node_rule(rule: Rule) -> NodeRule:
    """The per-node criterion (module docstring) for a target's rule."""
    min_cosine = rule.min_cosine
    if min_cosine is None and not rule.elementwise and rule.max_relative_l2 is None:
        min_cosine = FALLBACK_MIN_COSINE
    bound = max(rule.atol, rule.rtol, FLOAT32_FLOOR) if rule.elementwise else None
    if rule.max_relative_l2 is not None:
        bound = max(rule.max_relative_l2, FLOAT32_FLOOR)
    return NodeRule(max_relative_l2=bound, min_cosine=min_cosine)


def relative_l2(reference: Array, candidate: Array) -> float:
    r = np.asarray(reference, dtype=np.float64).ravel()
    c = np.asarray(candidate, dtype=np.float64).ravel()
    if r.shape != c.shape or not (np.isfinite(r).all() and np.isfinite(c).all()):
        return math.inf
    norm = float(np.linalg.norm(r))
    diff = float(np.linalg.norm(c - r))
    return diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf)


def check(pair: Pair, reference: Array, candidate: Array, rule: Rule) -> Check:
    """Compare one pair under the per-node criterion; same-size shapes are compared flat
    (a Paddle `[1]` against an ONNX scalar)."""
    ref, cand = np.asarray(reference), np.asarray(candidate)
    if ref.shape != cand.shape and ref.size == cand.size:
        cand = cand.reshape(ref.shape)
    criterion = node_rule(rule)
    gate = Rule(atol=math.inf, rtol=math.inf, min_cosine=criterion.min_cosine, elementwise=False)
    result = compare_output(pair.tensor, ref, cand, gate)  # NaN and cosine; stats
    error = relative_l2(ref, cand)
    bound = criterion.max_relative_l2
    if bound is not None and not error <= bound:
        why = f"relative L2 {error:.3g} > {bound:g}"
        result = result.model_copy(update={"passed": False, "failures": (*result.failures, why)})
    return Check(pair, result, error)


def first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if not c.passed), None)


def span(model: GraphIndex, failed: Check, checks: Sequence[Check]) -> list[str]:
    """The nodes between the failing output and tensors already compared (or static, or graph
    inputs), in graph order: the layer as exported, e.g. GroupNorm's Reshape,
    InstanceNormalization, Mul and Add."""
    compared = {c.pair.tensor for c in checks}
    nodes, _ = _layer(model, failed.pair.tensor, compared)
    return [n.name for n in model.nodes if n.name in nodes]


def _layer(model: GraphIndex, output: str, compared: set[str]) -> tuple[set[str], set[str]]:
    """(names of the nodes computing `output` from compared tensors, those compared tensors)."""
    nodes: set[str] = set()
    fed: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        node = model.producer.get(name)
        if node is None or node.name in nodes:
            continue
        nodes.add(node.name)
        for i in node.input:
            if i in compared:
                fed.add(i)
            elif i not in model.static:
                stack.append(i)
    return nodes, fed


def rank(model: GraphIndex, checks: Sequence[Check], limit: int) -> list[NodeError]:
    """Nodes by the error they add (module docstring), largest first, at most `limit`."""
    error = {c.pair.tensor: c.error for c in checks}
    compared = set(error)
    ranked = []
    for c in checks:
        _, inputs = _layer(model, c.pair.tensor, compared)
        fed = max((error[i] for i in inputs), default=0.0)
        delta = c.error - fed if math.isfinite(fed) else 0.0
        if math.isnan(delta):
            delta = 0.0
        ranked.append(NodeError(c.pair.node, c.pair.op_type, c.pair.output, c.error, delta))
    ranked.sort(key=lambda e: e.delta, reverse=True)
    return ranked[:limit]
