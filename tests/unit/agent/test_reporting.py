"""Slot status writes: a quick rollout is one write, a retried download shows up only when the
slot is still busy after the progress grace."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, cast

from modelfleet.agent.devices import DeviceApi
from modelfleet.agent.reconcile import (
    Installed,
    LocalSlot,
    healthy_status,
    retrying_status,
    slot_status,
)
from modelfleet.agent.reporting import StatusReporter
from modelfleet.api.device import SlotAssignment, SlotStatus

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 64
ASSIGNMENT = SlotAssignment(
    deployment="d", revision=1, format="onnx", url="http://s3/x?sig=s", sha256=SHA, size_bytes=9
)
GRACE = 0.3


class RecordingDevice:
    def __init__(self) -> None:
        self.writes: list[tuple[str, SlotStatus | None]] = []

    def write_slot(self, slot: str, status: SlotStatus | None) -> None:
        self.writes.append((slot, status))

    def reasons(self) -> list[tuple[str, str]]:
        return [(s.phase, s.reason) for _, s in self.writes if s is not None]


def make_reporter() -> tuple[StatusReporter, RecordingDevice]:
    device = RecordingDevice()
    reporter = StatusReporter(
        cast(DeviceApi, device), stop=threading.Event(), progress_grace_seconds=GRACE
    )
    return reporter, device


def downloading() -> SlotStatus:
    return slot_status("Downloading", ASSIGNMENT, LocalSlot(), NOW, message="downloading")


def retrying(attempt: int) -> SlotStatus:
    return retrying_status(
        ASSIGNMENT, LocalSlot(), NOW, attempt=attempt, cause="timed out", delay=0.5
    )


def healthy() -> SlotStatus:
    return healthy_status(ASSIGNMENT, LocalSlot(current=Installed(SHA, 1)), NOW)


def test_a_retry_within_a_quick_rollout_costs_no_write() -> None:
    reporter, device = make_reporter()
    for status in (
        downloading(),
        retrying(1),
        slot_status("Verifying", ASSIGNMENT, LocalSlot(), NOW),
        healthy(),
    ):
        reporter.report("detector", status)
    time.sleep(GRACE * 2)
    assert device.reasons() == [("Healthy", "NoProbe")]


def test_a_slot_still_retrying_after_the_grace_shows_its_last_attempt_and_cause() -> None:
    reporter, device = make_reporter()
    reporter.report("detector", downloading())
    reporter.report("detector", retrying(1))
    reporter.report("detector", retrying(2))
    time.sleep(GRACE * 2)
    assert device.reasons() == [("Downloading", "DownloadRetrying")]
    written = device.writes[0][1]
    assert written is not None and written.download_retry is not None
    assert (written.download_retry.attempt, written.download_retry.last_error) == (2, "timed out")
    assert "attempt 2 failed (timed out), retrying in 0.5s" in written.message

    reporter.report("detector", retrying(3))  # already reported busy: again after the grace
    assert len(device.writes) == 1
    time.sleep(GRACE * 2)
    reporter.report("detector", healthy())
    assert device.reasons() == [
        ("Downloading", "DownloadRetrying"),
        ("Downloading", "DownloadRetrying"),
        ("Healthy", "NoProbe"),
    ]
    assert cast(Any, device.writes[-1][1]).download_retry is None
