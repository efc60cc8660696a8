"""Which status changes may wait for the next paced write: progress only."""

from __future__ import annotations

from typing import Any

from modelfleet.operator.rollout.status_assembly import progress_only


def status(healthy: int, *, wave: int = 1, phase: str = "Progressing") -> dict[str, Any]:
    return {
        "phase": phase,
        "wave": wave,
        "counts": {"selected": 100, "healthy": healthy},
        "variants": [{"name": "default", "healthy": healthy}],
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "WaveProgressing",
                "message": f"{healthy}/100 devices healthy",
                "lastTransitionTime": "2026-12-02T00:00:00Z",
            }
        ],
    }


def test_counts_and_their_messages_are_progress() -> None:
    assert progress_only(status(10), status(20))


def test_a_new_wave_or_phase_is_not() -> None:
    assert not progress_only(status(10), status(20, wave=2))
    assert not progress_only(status(10), status(100, phase="Succeeded"))


def test_a_condition_turning_is_not() -> None:
    turned = status(20)
    turned["conditions"][0] = {**turned["conditions"][0], "status": "False", "reason": "X"}
    assert not progress_only(status(10), turned)


def test_a_first_status_is_not() -> None:
    assert not progress_only({}, status(0))
