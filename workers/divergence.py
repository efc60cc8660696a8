"""Name the diverging layer of a target that failed validation (diagnostic, never a verdict).

Called by the validation flow when a target fails:

- fp16 / int8 targets against the fp32 ONNX they were made from: `locate_against_onnx`;
- the fp32 ONNX against the Paddle program it was exported from: `locate_against_paddle`
  (paddle2onnx's tensor names mapped to the program's ops, `paddle_program`).

Both run the same one or two samples through both sides with every intermediate tensor
exposed, compare them in the candidate's topological order under the per-node criterion of
`nodewise` (derived from the target's rule), and return a `Localization`: the first node whose
output fails (`divergence`, what the report's `validation.divergence` carries), why none was
named when none was (`reason`), and the nodes ranked by the error they add themselves
(`ranking`, for choosing what to keep out of int8 quantization).

Never a crash for the caller: the work runs in a child process (`python -m
modelfleet.workers.divergence <dir>`, which also keeps Paddle out of the worker process), under
a time limit; a failure, a signal or a timeout there comes back as a `Localization` without a
divergence and with a one-line reason. Bounded: `Budget` caps the samples, the tensors compared
(the first ones in topological order) and the seconds.

    <dir>/request.json  {"mode": "onnx" | "paddle", "candidate", "reference" | "model" +
                        "params", "rule": {...}, "budget": {...}}
    <dir>/inputs.npz    "<i>:<name>" = input <name> of sample i
    <dir>/result.json   written by the child, last: `Localization` as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.comparison import Rule
from modelfleet.reports import DivergenceInfo
from modelfleet.workers import nodewise
from modelfleet.workers.datasets import Feeds
from modelfleet.workers.nodewise import Array, Check, GraphIndex, NodeError, Pair

MODULE = "modelfleet.workers.divergence"
REQUEST, INPUTS, RESULT, LOG = "request.json", "inputs.npz", "result.json", "child.log"


@dataclass(frozen=True)
class Budget:
    """Bounds of one localization: samples run, tensors compared (the first in topological
    order), wall-clock seconds of the child (killed past it; it stops comparing at half of it,
    keeping the rest for its imports and for writing what it found), nodes ranked."""

    samples: int = 2
    tensors: int = 1000
    seconds: float = 300.0
    ranking: int = 20


@dataclass(frozen=True)
class Divergence:
    node: str
    op_type: str
    output: str
    max_abs: float
    cosine: float
    source_op: str | None = None
    span: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()

    def info(self) -> DivergenceInfo:
        return DivergenceInfo(
            node=self.node,
            op_type=self.op_type,
            output=self.output,
            max_abs=self.max_abs,
            cosine=self.cosine,
            source_op=self.source_op,
            span=list(self.span),
        )

    def describe(self) -> str:
        return self.info().describe()


@dataclass(frozen=True)
class Localization:
    divergence: Divergence | None
    reason: str | None = None  # why no node is named; notes (e.g. truncation) otherwise
    ranking: tuple[NodeError, ...] = ()
    compared: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def none(cls, reason: str, started: float | None = None) -> Localization:
        seconds = 0.0 if started is None else time.monotonic() - started
        return cls(None, reason=reason, seconds=seconds)

    def describe(self) -> str:
        """One line for the CLI and the condition message."""
        if self.divergence is not None:
            return self.divergence.describe()
        return f"no diverging node named: {self.reason}"


def locate_against_onnx(
    candidate: Path,
    reference: Path,
    *,
    samples: Sequence[Feeds],
    rule: Rule,
    budget: Budget = Budget(),
) -> Localization:
    """The first node of `candidate` (fp16/int8 ONNX) that departs from `reference` (the
    fp32 ONNX it was made from), with `rule` the candidate target's effective rule."""
    request = {
        "mode": "onnx",
        "candidate": str(candidate.resolve()),
        "reference": str(reference.resolve()),
    }
    return _in_child(request, samples, rule, budget)


def locate_against_paddle(
    candidate: Path,
    *,
    model_file: Path,
    params_file: Path,
    samples: Sequence[Feeds],
    rule: Rule,
    budget: Budget = Budget(),
) -> Localization:
    """The first node of `candidate` (paddle2onnx's fp32 ONNX) whose output departs from the
    Paddle program (`model_file` PIR `.json` + `params_file`) op it was exported from."""
    request = {
        "mode": "paddle",
        "candidate": str(candidate.resolve()),
        "model": str(model_file.resolve()),
        "params": str(params_file.resolve()),
    }
    return _in_child(request, samples, rule, budget)


def _in_child(
    request: dict[str, Any], samples: Sequence[Feeds], rule: Rule, budget: Budget
) -> Localization:
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="modelfleet-divergence-") as tmp:
            directory = Path(tmp)
            request = {**request, "rule": asdict(rule), "budget": asdict(budget)}
            (directory / REQUEST).write_text(json.dumps(request))
            arrays = {
                f"{i}:{name}": np.asarray(value)
                for i, sample in enumerate(samples[: budget.samples])
                for name, value in sample.items()
            }
            np.savez(directory / INPUTS, allow_pickle=False, **arrays)
            return _run_child(directory, budget.seconds, started)
    except Exception as err:  # diagnostic only: whatever went wrong becomes its reason
        return Localization.none(f"localization failed: {_short(err)}", started)


def _run_child(directory: Path, timeout: float, started: float) -> Localization:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INDEX": "1"}
    with (directory / LOG).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", MODULE, str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return Localization.none(f"localization ran past {timeout:g}s", started)
    result = directory / RESULT
    if result.is_file():
        return from_wire(json.loads(result.read_text()))
    how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
    last = _last_line((directory / LOG).read_text(errors="replace"))
    return Localization.none(f"localization child {how}: {last}", started)


def localize_onnx(
    candidate: Any,
    reference: Any,
    samples: Sequence[Mapping[str, Array]],
    rule: Rule,
    *,
    budget: Budget = Budget(),
) -> Localization:
    """In this process: `candidate` against `reference` (ModelProtos). Exceptions propagate."""
    started = time.monotonic()
    samples = list(samples)[: budget.samples]
    model = GraphIndex(candidate.graph)
    notes: list[str] = []
    pairs = _capped(nodewise.onnx_pairs(model, GraphIndex(reference.graph)), budget, notes)
    if not pairs:
        return Localization.none("no tensors of the two models could be matched", started)
    references = nodewise.run_tensors(reference, [p.reference for p in pairs], samples)
    return _conclude(model, pairs, references, candidate, samples, rule, budget, notes, started)


def localize_paddle(
    candidate: Any,
    model_file: Path,
    params_file: Path,
    samples: Sequence[Mapping[str, Array]],
    rule: Rule,
    *,
    budget: Budget = Budget(),
) -> Localization:
    """In this process: `candidate` (paddle2onnx's ModelProto) against the Paddle program it
    was exported from (imports Paddle). Exceptions propagate."""
    from modelfleet.workers.paddle_program import fetch_tensors

    started = time.monotonic()
    samples = list(samples)[: budget.samples]
    model = GraphIndex(candidate.graph)
    notes: list[str] = []
    produced = (name for node in model.nodes for name in node.output)
    keys = {n: n for n in produced if n.startswith("p2o.") and n not in model.static}
    keys.update({name: f"fetch:{i}" for i, name in enumerate(model.outputs)})
    everything = nodewise.named_pairs(model, keys, {})
    wanted = {p.reference for p in _capped(everything, budget, notes)}
    program = fetch_tensors(model_file, params_file, samples, sorted(wanted))
    if program.unreliable:
        notes.append(f"{len(program.unreliable)} tensors read by in-place ops not compared")
    present = {n: k for n, k in keys.items() if k in program.values}
    pairs = nodewise.named_pairs(model, present, program.sources)
    if not pairs:
        return Localization.none("no tensors of the program could be matched", started)
    return _conclude(model, pairs, program.values, candidate, samples, rule, budget, notes, started)


def _capped(pairs: list[Pair], budget: Budget, notes: list[str]) -> list[Pair]:
    if len(pairs) > budget.tensors:
        notes.append(f"compared the first {budget.tensors} of {len(pairs)} tensors")
    return pairs[: budget.tensors]


def _conclude(
    model: GraphIndex,
    pairs: list[Pair],
    references: Mapping[str, Array],
    candidate: Any,
    samples: Sequence[Mapping[str, Array]],
    rule: Rule,
    budget: Budget,
    notes: list[str],
    started: float,
) -> Localization:
    """Run the candidate, compare in its topological order, name the first failure, rank."""
    candidates = nodewise.run_tensors(candidate, [p.tensor for p in pairs], samples)
    checks, skipped = _checks(pairs, references, candidates, rule, started, budget, notes)
    if skipped:
        notes.append(f"{skipped} tensors skipped: shapes differ between the two sides")
    ranking = tuple(nodewise.rank(model, checks, budget.ranking))
    failed = nodewise.first_failure(checks)
    seconds = time.monotonic() - started
    if failed is None:
        criterion = nodewise.node_rule(rule).describe()
        why = f"every compared tensor is within the per-node criterion ({criterion})"
        if ranking:
            top = ranking[0]
            why += f"; largest relative L2 added: {top.delta:.2g} by {top.node} ({top.op_type})"
        reason = "; ".join([why, *notes])
        return Localization(None, reason, ranking, len(checks), seconds, tuple(notes))
    divergence = Divergence(
        node=failed.pair.node,
        op_type=failed.pair.op_type,
        output=failed.pair.output,
        max_abs=failed.result.max_abs,
        cosine=failed.result.cosine,
        source_op=failed.pair.source_op,
        span=tuple(nodewise.span(model, failed, checks)),
        failures=failed.result.failures,
    )
    noted = "; ".join(notes) or None
    return Localization(divergence, noted, ranking, len(checks), seconds, tuple(notes))


def _checks(
    pairs: Sequence[Pair],
    references: Mapping[str, Array],
    candidates: Mapping[str, Array],
    rule: Rule,
    started: float,
    budget: Budget,
    notes: list[str],
) -> tuple[list[Check], int]:
    checks: list[Check] = []
    skipped = 0
    for pair in pairs:
        if time.monotonic() - started > budget.seconds / 2:
            notes.append(f"stopped comparing after {budget.seconds / 2:.0f}s")
            break
        ref, cand = references[pair.reference], candidates[pair.tensor]
        if np.asarray(ref).size != np.asarray(cand).size:
            skipped += 1
            continue
        checks.append(nodewise.check(pair, ref, cand, rule))
    return checks, skipped


def to_wire(result: Localization) -> dict[str, Any]:
    return asdict(result)


def from_wire(raw: Mapping[str, Any]) -> Localization:
    found = raw.get("divergence")
    divergence = None
    if found is not None:
        divergence = Divergence(
            **{
                **found,
                "span": tuple(found.get("span", ())),
                "failures": tuple(found.get("failures", ())),
            }
        )
    return Localization(
        divergence,
        reason=raw.get("reason"),
        ranking=tuple(NodeError(**e) for e in raw.get("ranking", ())),
        compared=int(raw.get("compared", 0)),
        seconds=float(raw.get("seconds", 0.0)),
        notes=tuple(raw.get("notes", ())),
    )


def _short(err: BaseException) -> str:
    return _last_line(f"{type(err).__name__}: {err}")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:300]


def main(directory: Path) -> int:
    """The child: read the request, localize, write result.json (a failure as its reason)."""
    import onnx

    started = time.monotonic()
    try:
        request = json.loads((directory / REQUEST).read_text())
        rule = Rule(**request["rule"])  # asdict() above: field names
        budget = Budget(**request["budget"])
        with np.load(directory / INPUTS, allow_pickle=False) as data:
            count = 1 + max((int(k.split(":", 1)[0]) for k in data.files), default=-1)
            samples = [
                {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}:")}
                for i in range(count)
            ]
        candidate = onnx.load(request["candidate"])
        if request["mode"] == "paddle":
            model, params = Path(request["model"]), Path(request["params"])
            result = localize_paddle(candidate, model, params, samples, rule, budget=budget)
        else:
            reference = onnx.load(request["reference"])
            result = localize_onnx(candidate, reference, samples, rule, budget=budget)
    except Exception as err:
        result = Localization.none(f"localization failed: {_short(err)}", started)
    partial = directory / f"{RESULT}.partial"
    partial.write_text(json.dumps(to_wire(result)))
    os.replace(partial, directory / RESULT)
    return 0


if __name__ == "__main__":
    code = main(Path(sys.argv[1]))
    sys.stdout.flush()
    os._exit(code)  # skip Paddle's slow teardown
