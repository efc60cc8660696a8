"""Automatic remedies, the orchestrator: after a target failed with its requested settings,
try the alternatives of `modelfleet.remedies` in order and keep the first that passes, with a
record of every attempt for the report (`RemediesSection`) and the status (`status_lines`).

The validation flow calls `run_remedies` with its own `attempt` (convert with the settings,
validate against the reference, return an `Outcome` carrying whatever it will publish) and,
for int8, `rank` (the divergence step's nodes, most damaging first). Nothing here converts or
runs a model itself, so the loop is tested with plain callables and with the real tools alike
(`modelfleet.workers.repairs` has the settings-aware conversion).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from modelfleet.api.conversion import TargetFormat
from modelfleet.remedies import Budget, Evidence, GraphFacts, Settings, Stage, alternatives
from modelfleet.remedies import exclusion_steps as int8_steps
from modelfleet.reports import KeptFloat, RemediesSection, RemedyAttempt, ValidationSection
from modelfleet.workers.errors import WorkerError, classify

T = TypeVar("T")
Mode = Literal["auto", "none"]


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One attempt's verdict; `result` is what the caller publishes when it passed;
    `kept_float`: the nodes the file really keeps in float (`repairs.produce` returns them;
    a ranked name fused away by ORT's pre-processing is not among them)."""

    passed: bool
    evidence: Evidence | None = None
    max_abs: float | None = None
    cosine: float | None = None
    size_bytes: int | None = None
    latency_p50_ms: float | None = None
    result: T | None = None
    kept_float: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Tried(Generic[T]):
    settings: Settings
    outcome: Outcome[T]
    seconds: float


@dataclass(frozen=True)
class RemedyResult(Generic[T]):
    """`outcome`: the passing outcome (None: nothing passed); `tried`: after the first."""

    mode: Mode
    requested: Settings
    first: Outcome[T]
    tried: tuple[Tried[T], ...]
    budget_spent: bool
    seconds: float

    @property
    def applied(self) -> Settings | None:
        if self.first.passed:
            return self.requested
        return next((t.settings for t in self.tried if t.outcome.passed), None)

    @property
    def outcome(self) -> Outcome[T] | None:
        if self.first.passed:
            return self.first
        return next((t.outcome for t in self.tried if t.outcome.passed), None)

    def section(self) -> RemediesSection:
        """The report's `remedies` section."""
        applied, outcome = self.applied, self.outcome
        kept = None
        if applied is not None and outcome is not None:
            nodes = outcome.kept_float if outcome.kept_float is not None else applied.float_nodes
            if nodes or applied.float_op_types:
                kept = KeptFloat(nodes=list(nodes), op_types=list(applied.float_op_types))
        return RemediesSection(
            mode=self.mode,
            requested=self.requested.to_wire(),
            trigger=_record(Tried(self.requested, self.first, 0.0), self.requested),
            tried=[_record(t, self.requested) for t in self.tried],
            applied=applied.to_wire() if applied is not None else None,
            applied_change=applied.describe(self.requested) if applied is not None else None,
            budget_spent=self.budget_spent,
            kept_float=kept,
            size_bytes=outcome.size_bytes if outcome else None,
            latency_p50_ms=outcome.latency_p50_ms if outcome else None,
            seconds=round(self.seconds, 3),
        )

    def status_lines(self) -> list[str]:
        """`status.validation[].remedies`: one line per alternative, in order."""
        return self.section().status_lines()


def run_remedies(
    first_failure: Outcome[T],
    attempt: Callable[[Settings], Outcome[T]],
    rank: Callable[[], list[str]] | None,
    budget: Budget,
    *,
    fmt: TargetFormat,
    requested: Settings,
    mode: Mode = "auto",
    source_format: Literal["paddle", "onnx"] = "paddle",
    graph: GraphFacts | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RemedyResult[T]:
    """Try alternatives after `first_failure` (the requested settings' outcome) until one
    passes or `budget` is spent; `rank` is called at most once, only for an int8 tolerance
    miss. A classified failure (`WorkerError`) raised by `attempt` is recorded like a returned
    one; storage trouble is not a conversion defect and propagates, and so does anything
    unclassified (a bug, not evidence about the settings)."""
    start = clock()
    tried: list[Tried[T]] = []
    evidence = first_failure.evidence
    if mode == "none" or first_failure.passed or evidence is None:
        return RemedyResult(mode, requested, first_failure, (), False, 0.0)
    graph = graph or GraphFacts()
    capped = False
    if fmt == "onnx-int8" and evidence.reason == "ToleranceExceeded":
        ranking = rank() if rank else []
        plan = int8_steps(requested, ranking, graph, budget)
        kept = len(plan[-1].float_nodes) if plan else len(requested.float_nodes)
        capped = len(set(ranking) | set(requested.float_nodes)) > kept
    else:
        plan = alternatives(fmt, evidence, requested, source_format=source_format, graph=graph)
    for settings in plan[: budget.max_attempts]:
        if clock() - start >= budget.max_seconds:
            return RemedyResult(mode, requested, first_failure, tuple(tried), True, clock() - start)
        began = clock()
        outcome = _attempt(attempt, settings, evidence.stage)
        tried.append(Tried(settings, outcome, clock() - began))
        if outcome.passed:
            return RemedyResult(
                mode, requested, first_failure, tuple(tried), False, clock() - start
            )
    spent = capped or len(plan) > budget.max_attempts
    return RemedyResult(mode, requested, first_failure, tuple(tried), spent, clock() - start)


def _attempt(
    attempt: Callable[[Settings], Outcome[T]], settings: Settings, stage: Stage
) -> Outcome[T]:
    try:
        return attempt(settings)
    except WorkerError as err:
        if err.reason == "StorageError":
            raise
        return Outcome(False, Evidence(err.reason, err.message, stage))


def outcome_of_error(err: BaseException, stage: Stage) -> Outcome[T]:
    """A failed outcome from a classified (or unclassified) exception."""
    failure = classify(err)
    return Outcome(False, Evidence(failure.reason, failure.message, stage))


def outcome_of_validation(
    section: ValidationSection,
    *,
    result: T | None = None,
    size_bytes: int | None = None,
    kept_float: tuple[str, ...] | None = None,
    diverging_node: str | None = None,
    neighbours: tuple[str, ...] = (),
) -> Outcome[T]:
    """An outcome from a validation section: its verdict, numbers and, when it failed, the
    evidence the policy reads (NaN, cosine, the diverging node of step 5 when known)."""
    latency = section.benchmark.target.p50_ms if section.benchmark else None
    evidence = None
    if not section.passed:
        nan = any("NaN" in why for why in section.failures) or _nan(section.max_abs)
        evidence = Evidence(
            "ToleranceExceeded",
            "; ".join(section.failures)[:500] or "outside the tolerance",
            "validation",
            nan=nan,
            cosine=section.cosine,
            max_abs=section.max_abs,
            diverging_node=diverging_node,
            neighbours=neighbours,
        )
    return Outcome(
        passed=section.passed,
        evidence=evidence,
        max_abs=section.max_abs,
        cosine=section.cosine,
        size_bytes=size_bytes,
        latency_p50_ms=latency,
        result=result if section.passed else None,
        kept_float=kept_float,
    )


def _nan(value: float | None) -> bool:
    return value is not None and math.isnan(value)


def _record(tried: Tried[T], requested: Settings) -> RemedyAttempt:
    outcome, evidence = tried.outcome, tried.outcome.evidence
    return RemedyAttempt(
        settings=tried.settings.to_wire(),
        change=tried.settings.describe(requested),
        passed=outcome.passed,
        reason=evidence.reason if evidence else "",
        message=(evidence.message if evidence else "")[:500],
        max_abs=outcome.max_abs,
        cosine=outcome.cosine,
        seconds=round(tried.seconds, 3),
    )
