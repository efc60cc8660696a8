"""Default tolerances the zoo supports: per format, thresholds on normalised metrics that pass
every faithful conversion and fail every injected fault, with the margin on both sides (pure).

Metrics (all "lower is better"): max abs / max |reference|, relative L2 ‖c - r‖ / ‖r‖, and
1 - cosine. A conversion counts as faithful unless it is a known defect
(`catalog.KNOWN_DEFECTS`), its metrics are not finite (NaN, a shape mismatch) or its net's
outputs are sets (`catalog.SET_VALUED`, NMS): the first two the defaults must keep refusing
whatever the thresholds, the last needs another comparison; none of them bounds a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zoo.catalog import FORMATS, KNOWN_DEFECTS, SET_VALUED

HEADROOM = 3.0  # seeds, machines and BLAS builds move faithful errors; never bound them tighter
METRICS = {
    "norm_max_abs": "max abs / max |ref|",
    "rel_l2": "rel. L2",
    "one_minus_cosine": "1 - cosine",
}


def value(row: dict[str, Any], metric: str) -> float:
    if metric == "one_minus_cosine":
        return 1.0 - float(row["cosine"])
    return float(row[metric])


def is_finite(row: dict[str, Any]) -> bool:
    return all(math.isfinite(value(row, m)) for m in METRICS)


def faithful_rows(rows: Sequence[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    return [
        r for r in rows
        if r["artifact"] == fmt
        and (r["arch"], fmt) not in KNOWN_DEFECTS
        and r["arch"] not in SET_VALUED
        and is_finite(r)
    ]  # fmt: skip


def fault_artifacts(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Fault artifact "<net>: <fault>" → its output rows."""
    faults: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["artifact"].startswith("fault: "):
            fault = r["artifact"].removeprefix("fault: ").split(" (")[0]
            faults.setdefault(f"{r['arch']}: {fault}", []).append(r)
    return faults


def nice_floor(x: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above x."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x))
    for mantissa in (5, 2, 1):
        candidate = mantissa * 10.0**exp
        if candidate <= x * (1 + 1e-12):
            return candidate
    return 10.0**exp


@dataclass(frozen=True)
class MetricThreshold:
    metric: str
    worst_faithful: float
    worst_where: str
    mildest_fault: float
    mildest_where: str
    threshold: float

    @property
    def faithful_margin(self) -> float:
        return self.threshold / self.worst_faithful if self.worst_faithful > 0 else math.inf

    @property
    def fault_margin(self) -> float:
        return self.mildest_fault / self.threshold if self.threshold > 0 else math.inf


@dataclass(frozen=True)
class Proposal:
    format: str
    metrics: tuple[MetricThreshold, ...]
    caught: dict[str, str]  # fault artifact → the metrics that fail it ("MISSED" if none)
    faithful_count: int

    def summary(self) -> str:
        rule = ", ".join(f"{METRICS[m.metric]} ≤ {m.threshold:.2g}" for m in self.metrics)
        missed = [k for k, v in self.caught.items() if v == "MISSED"]
        verdict = f"misses {', '.join(missed)}." if missed else "catches every fault."
        return f"{rule}: passes all {self.faithful_count} faithful outputs and {verdict}"


def nice_ceil(x: float) -> float:
    """The smallest 1, 2 or 5 x 10^k not below x."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x))
    for candidate in (10.0**exp, 2 * 10.0**exp, 5 * 10.0**exp, 10.0 ** (exp + 1)):
        if candidate >= x * (1 - 1e-12):
            return candidate
    return 10.0 ** (exp + 1)


def _threshold(worst: float, mildest: float) -> float:
    """The geometric mean of worst faithful and mildest fault when the gap leaves HEADROOM on
    both sides; else HEADROOM above the worst faithful (faults under it are then missed)."""
    floor = nice_ceil(worst * HEADROOM) if worst > 0 else 0.0
    if mildest > floor * HEADROOM:
        return max(nice_floor(math.sqrt(worst * mildest)), floor)
    return floor


def propose_format(rows: Sequence[dict[str, Any]], fmt: str) -> Proposal | None:
    faithful = faithful_rows(rows, fmt)
    faults = fault_artifacts(rows)
    if not faithful:
        return None
    thresholds = []
    for metric in METRICS:
        worst = max(faithful, key=lambda r: value(r, metric))
        worst_fault = {k: max(value(r, metric) for r in v) for k, v in faults.items()}
        mildest_key = min(worst_fault, key=lambda k: worst_fault[k]) if worst_fault else "-"
        mildest = worst_fault.get(mildest_key, math.inf)
        thresholds.append(MetricThreshold(
            metric, value(worst, metric), f"{worst['arch']} {worst['output']}", mildest,
            mildest_key, _threshold(value(worst, metric), mildest),
        ))  # fmt: skip
    caught = {}
    for key, outs in faults.items():
        hits = [METRICS[t.metric] for t in thresholds
                if any(value(r, t.metric) > t.threshold for r in outs)]  # fmt: skip
        caught[key] = " + ".join(hits) if hits else "MISSED"
    return Proposal(fmt, tuple(thresholds), caught, len(faithful))


def propose(rows: Sequence[dict[str, Any]]) -> list[Proposal]:
    return [p for fmt in FORMATS if (p := propose_format(rows, fmt)) is not None]
