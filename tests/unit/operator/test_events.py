"""Which phase transitions become Events, and the events.k8s.io/v1 body they get."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modelfleet.operator.events import NOTE_LIMIT, PhaseEvent, event_body, event_name, transition


def make_status(phase: str, reason: str, message: str = "") -> dict[str, Any]:
    ready = {"type": "Ready", "status": "False", "reason": reason, "message": message}
    return {"phase": phase, "conditions": [ready]}


def test_a_new_phase_is_an_event_named_like_the_ready_reason() -> None:
    event = transition(
        make_status("Progressing", "WaveBaking"),
        make_status("RolledBack", "RolloutAborted", "cam-1 failed"),
    )
    assert event == PhaseEvent("Warning", "RolloutAborted", "cam-1 failed", "RolledBack")
    first = transition(None, make_status("Converting", "Converting"))
    assert first is not None and first.type == "Normal" and first.note == "Converting"


def test_a_new_reason_within_a_phase_is_an_event_and_nothing_else_is() -> None:
    waves = transition(
        make_status("Progressing", "WaveProgressing"), make_status("Progressing", "WaveBaking")
    )
    assert waves is not None and waves.reason == "WaveBaking"
    same = make_status("Progressing", "WaveBaking", "healthy on 3 of 20")
    assert transition(same, make_status("Progressing", "WaveBaking", "healthy on 9 of 20")) is None
    assert transition(None, {"phase": "Pending"}) is None


def test_the_body_regards_the_resource_and_is_named_once_per_reason() -> None:
    resource = {
        "kind": "EdgeDeployment",
        "metadata": {"name": "cam", "namespace": "ml", "uid": "u1"},
    }
    event = PhaseEvent("Warning", "RolloutAborted", "x" * NOTE_LIMIT, "RolledBack")
    now = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)
    body = event_body(resource, event, now, "operator-0")
    assert body["metadata"] == {
        "name": event_name("cam", "u1", "RolloutAborted"),
        "namespace": "ml",
    }
    assert body["regarding"]["kind"] == "EdgeDeployment" and body["regarding"]["uid"] == "u1"
    assert (body["reason"], body["type"], body["action"]) == (
        "RolloutAborted",
        "Warning",
        "RolledBack",
    )
    assert body["eventTime"] == "2026-11-21T12:00:00.000000Z"
    assert event_name("cam", "u1", "A") != event_name("cam", "u1", "B")
    assert event_name("cam", "u1", "A") == event_name("cam", "u1", "A")
    long = transition(None, make_status("Failed", "InvalidModel", "y" * 5000))
    assert long is not None and len(long.note) == NOTE_LIMIT
