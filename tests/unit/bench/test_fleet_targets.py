"""Issue 14's fleet-scale targets: which size each applies at, the ratios, the operator's
'ready to plan' line and an object's stored size."""

from __future__ import annotations

import json
import math

import pytest

from bench.fleet_targets import Target, efficiency, ready_line, stored_size, targets_for


def _target(devices: int, metric: str) -> Target:
    return next(t for t in targets_for(devices) if t.metric == metric)


@pytest.mark.parametrize(
    ("devices", "value", "verdict"),
    [
        pytest.param(1_000, 0.91, "yes", id="1k meets 0.9"),
        pytest.param(5_000, 0.85, "no", id="5k misses 0.9"),
        pytest.param(20_000, 0.85, "yes", id="20k meets 0.8"),
        pytest.param(100, 0.5, "trend (no)", id="100 is not judged"),
    ],
)
def test_efficiency_is_judged_at_its_sizes_with_its_bound(
    devices: int, value: float, verdict: str
) -> None:
    assert _target(devices, "efficiency").verdict(devices, value) == verdict


def test_start_up_is_judged_at_20k_only_and_nan_never_meets() -> None:
    startup = _target(5_000, "start-up / one LIST")
    assert startup.verdict(5_000, 2.0) == "trend (yes)"
    assert startup.verdict(20_000, 3.0) == "yes"
    assert startup.verdict(20_000, math.nan) == "no"
    assert startup.describe() == "<= 3x at 20,000"


def test_writes_per_device_apply_at_every_named_size() -> None:
    writes = _target(1_000, "API writes per device per rollout")
    assert writes.verdict(1_000, 2.01) == "no"
    assert writes.verdict(5_000, 2.0) == "yes"


def test_efficiency_is_modelfleet_over_raw_and_nan_without_a_raw_run() -> None:
    assert efficiency(8_000, 10_000) == pytest.approx(0.8)
    assert math.isnan(efficiency(8_000, 0))


def test_the_ready_line_is_found_among_other_log_lines() -> None:
    lines = [
        "not json, mentions ready to plan",
        json.dumps({"event": "watch failed; relisting"}),
        json.dumps(
            {
                "event": "ready to plan",
                "seconds_since_start": 2.5,
                "listed_in_s": 0.4,
                "devices": 1000,
            }
        ),
    ]
    found = ready_line(lines)
    assert found is not None
    assert (found.seconds_since_start, found.listed_in_s, found.devices) == (2.5, 0.4, 1000)
    assert ready_line(lines[:2]) is None


def test_stored_size_counts_the_raw_bytes_and_each_part() -> None:
    body = {
        "metadata": {"name": "d", "managedFields": [{"manager": "agent"}]},
        "spec": {"models": {}},
        "status": {"slots": {}},
    }
    raw = json.dumps(body).encode()
    size = stored_size(raw)
    assert size.total == len(raw)
    assert size.managed_fields == len(b'[{"manager":"agent"}]')
    assert size.spec == len(b'{"models":{}}') and size.status == len(b'{"slots":{}}')
