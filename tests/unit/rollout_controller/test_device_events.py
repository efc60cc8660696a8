"""Device failures become one Event per revision and reason, however large the wave, and are
written again only when the number of failed devices grows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.device import SlotAssignment, SlotStatus
from modelfleet.operator.events import PhaseEvent
from modelfleet.operator.rollout.device_events import (
    DEVICE_FAILED,
    DeviceFailureEvents,
    FailureGroup,
    Written,
    due,
    failure_groups,
)
from modelfleet.operator.rollout.fleet import DeviceView

NAME = "cam"
REGARDING = {"kind": "EdgeDeployment", "metadata": {"name": NAME, "namespace": "ml", "uid": "u"}}


def make_device(
    name: str,
    *,
    revision: int = 2,
    phase: str = "Failed",
    reason: str = "ProbeFailed",
    target: int | None = None,
    deployment: str = NAME,
    message: str = "",
) -> DeviceView:
    """`revision` assigned by `deployment` in slot cam; the agent reports `phase` on `target`
    (default: the assigned revision)."""
    assignment = SlotAssignment(
        deployment=deployment,
        revision=revision,
        format="onnx",
        url="https://minio.local/x",
        sha256="a" * 64,
        size_bytes=10,
    )
    status = SlotStatus(
        target_revision=revision if target is None else target,
        phase=phase,
        reason=reason,
        message=message or f"{name}: probe output y max abs 0.5 > atol 1e-4",
    )
    return DeviceView(name=name, models={"cam": assignment}, slots={"cam": status})


def test_failures_are_grouped_by_revision_and_reason_of_this_deployment_only() -> None:
    devices = [
        make_device("dev-7"),
        make_device("dev-1"),
        make_device("dev-2", reason="ChecksumMismatch"),
        make_device("dev-3", phase="Healthy", reason=""),
        make_device("dev-4", target=1),  # failed an earlier revision: not on this assignment
        make_device("dev-5", deployment="other"),
        make_device("dev-6", revision=1),
    ]
    groups = failure_groups(NAME, "cam", devices)
    assert [(g.revision, g.reason, g.devices) for g in groups] == [
        (1, "ProbeFailed", ("dev-6",)),
        (2, "ChecksumMismatch", ("dev-2",)),
        (2, "ProbeFailed", ("dev-1", "dev-7")),
    ]


def test_the_note_counts_devices_and_names_a_few() -> None:
    group = FailureGroup(2, "ProbeFailed", tuple(f"dev-{i:04d}" for i in range(5000)), "y off")
    event = group.event()
    assert (event.type, event.reason) == ("Warning", DEVICE_FAILED)
    assert event.note.startswith(
        "5000 devices failed ProbeFailed on revision 2: dev-0000, dev-0001, "
    )
    assert "and 4990 more; dev-0000: y off" in event.note
    assert len(event.note) < 300
    assert FailureGroup(2, "X", ("dev-1",)).event().note == "1 device failed X on revision 2: dev-1"


def test_a_group_is_written_when_it_grows_but_not_more_often_than_the_interval() -> None:
    assert due(None, 1, now=0.0, interval=10.0)
    assert not due(Written(3, 0.0), 3, now=60.0, interval=10.0)
    assert not due(Written(3, 0.0), 2, now=60.0, interval=10.0)
    assert not due(Written(3, 0.0), 4, now=5.0, interval=10.0)
    assert due(Written(3, 0.0), 4, now=10.0, interval=10.0)


@dataclass
class FakeRecorder:
    """Records `aggregate` calls; the Events it holds count like the API server's would."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def aggregate(
        self, regarding: Mapping[str, Any], event: PhaseEvent, *, key: str, count: int
    ) -> bool:
        self.calls.append((key, count))
        self.counts[key] = max(count, self.counts.get(key, 0))
        return True


def test_a_5000_device_wave_writes_one_event_per_reason_per_pass_at_most() -> None:
    recorder, clock = FakeRecorder(), [0.0]
    events = DeviceFailureEvents(recorder, interval=10.0, clock=lambda: clock[0])
    wave = [make_device(f"dev-{i:04d}", phase="Healthy") for i in range(5000)]
    failing = [make_device(f"bad-{i:03d}") for i in range(300)]
    failing += [make_device(f"sum-{i:03d}", reason="ChecksumMismatch") for i in range(20)]

    events.record(REGARDING, slot="cam", devices=wave + failing[:100])
    assert recorder.calls == [(f"{DEVICE_FAILED}/2/ProbeFailed", 100)]
    events.record(REGARDING, slot="cam", devices=wave + failing)  # grew, within the interval
    assert recorder.calls == [
        (f"{DEVICE_FAILED}/2/ProbeFailed", 100),
        (f"{DEVICE_FAILED}/2/ChecksumMismatch", 20),
    ]
    clock[0] = 10.0
    events.record(REGARDING, slot="cam", devices=wave + failing)
    events.record(REGARDING, slot="cam", devices=wave + failing)  # nothing new
    assert recorder.calls[2:] == [(f"{DEVICE_FAILED}/2/ProbeFailed", 300)]
    assert recorder.counts[f"{DEVICE_FAILED}/2/ProbeFailed"] == 300

    restarted = DeviceFailureEvents(recorder, interval=10.0, clock=lambda: clock[0])
    restarted.record(REGARDING, slot="cam", devices=wave + failing)
    assert len(recorder.calls) == 5  # one look per group; the Events already count as many
    restarted.record(REGARDING, slot="cam", devices=wave + failing)
    assert len(recorder.calls) == 5
