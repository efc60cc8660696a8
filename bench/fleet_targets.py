"""Issue 14's fleet-scale targets and the pure arithmetic behind them. No I/O, no clock.

Each target applies at the fleet sizes the issue names; smaller sizes are reported against the
same bound for the trend, marked "trend" instead of judged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from bench.stats import meets, ratio

LARGEST = 20_000


@dataclass(frozen=True)
class Target:
    metric: str
    bound: float
    higher_is_better: bool
    sizes: tuple[int, ...]
    """Fleet sizes the target is judged at; others are shown for the trend."""
    unit: str = ""

    def verdict(self, devices: int, value: float) -> str:
        """'yes' / 'no' where the target applies at this size, else 'trend (yes)' / ...."""
        met = "yes" if meets(value, self.bound, higher_is_better=self.higher_is_better) else "no"
        return met if devices in self.sizes else f"trend ({met})"

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        at = " / ".join(f"{s:,}" for s in self.sizes)
        return f"{sign} {self.bound:g}{self.unit} at {at}"


def targets_for(devices: int) -> list[Target]:
    """The targets a fleet of `devices` is judged by (efficiency has two bounds)."""
    efficiency = (
        Target("efficiency", 0.8, True, (LARGEST,))
        if devices >= LARGEST
        else Target("efficiency", 0.9, True, (1_000, 5_000))
    )
    return [
        Target("start-up / one LIST", 3.0, False, (LARGEST,), "x"),
        efficiency,
        Target("worst wave advance", 1.0, False, (LARGEST,), " s"),
        Target("operator peak RSS", 1024.0, False, (LARGEST,), " MiB"),
        # judged on the writes that scale with devices; the EdgeDeployment's own status writes
        # (one per wave step and phase, not per device) are shown beside them
        Target("API writes per device per rollout", 2.0, False, (1_000, 5_000, LARGEST)),
    ]


def efficiency(modelfleet_per_min: float, raw_per_min: float) -> float:
    """ModelFleet device updates/min over the raw writer's, measured in the same run."""
    return ratio(modelfleet_per_min, raw_per_min)


@dataclass(frozen=True)
class ReadyLine:
    """The operator's 'ready to plan' log line: when its first LISTs were all in."""

    seconds_since_start: float
    listed_in_s: float
    devices: int


def ready_line(lines: Iterable[str]) -> ReadyLine | None:
    """The first 'ready to plan' event among the operator's JSON log lines, if any."""
    for line in lines:
        if "ready to plan" not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "ready to plan":
            return ReadyLine(
                float(event.get("seconds_since_start", math.nan)),
                float(event.get("listed_in_s", math.nan)),
                int(event.get("devices", 0)),
            )
    return None


@dataclass(frozen=True)
class StoredSize:
    """An EdgeDevice as the API server stores and returns it, in JSON bytes."""

    total: int
    managed_fields: int
    spec: int
    status: int


def stored_size(raw: bytes) -> StoredSize:
    """Sizes of an object as the API server returned it (`raw`, its JSON) and of its parts
    (compact JSON, as the API server writes it)."""

    def size(value: object) -> int:
        return len(json.dumps(value, separators=(",", ":")).encode())

    body = json.loads(raw)
    meta = body.get("metadata")
    managed = meta.get("managedFields") if isinstance(meta, dict) else None
    return StoredSize(
        total=len(raw),
        managed_fields=size(managed) if managed is not None else 0,
        spec=size(body.get("spec") or {}),
        status=size(body.get("status") or {}),
    )


def per_second(count: int, seconds: float) -> float:
    return ratio(count, seconds) if seconds > 0 else math.nan
