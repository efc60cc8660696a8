"""Assignments end Healthy on a verified artifact, or Failed with the previous model active."""

from __future__ import annotations

import os

from support.fleet import Fleet, status_json

SLOT = "detector"


def test_a_good_assignment_ends_healthy_on_the_verified_artifact(fleet: Fleet) -> None:
    artifact = fleet.publish("good")
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    assignment = fleet.assignment(artifact, 1)
    fleet.assign("edge-1", SLOT, assignment)

    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 1)
    assert status["activeRevision"] == 1 and status["activeSha256"] == artifact.sha256
    assert status["reason"] == "ProbePassed"
    assert 0 <= status["probe"]["maxAbs"] < 1e-5 and status["probe"]["latencyMs"] > 0
    assert "previousRevision" not in status
    link = fleet.current("edge-1", SLOT)
    assert os.readlink(link) == f"../../objects/{artifact.sha256}.onnx"
    assert fleet.active_sha("edge-1", SLOT) == artifact.sha256
    assert assignment["url"].split("?")[1] not in status_json(status)
    assert "X-Amz-Signature" not in status_json(fleet.device("edge-1").get("status"))
    assert "X-Amz-Signature" not in "".join(a.log_path.read_text() for a in fleet.agents)
    assert fleet.phases_written("edge-1", SLOT) == ["Healthy"]


def test_a_slow_activation_reports_downloading_after_the_grace_period(fleet: Fleet) -> None:
    artifact = fleet.publish("slow", padding=3 * 1024 * 1024)
    fleet.start_agent(
        "edge-5", f"--max-download-rate={1024 * 1024}", "--progress-grace-seconds=0.5"
    )
    fleet.wait("registration", lambda: fleet.device("edge-5"))
    fleet.assign("edge-5", SLOT, fleet.assignment(artifact, 1))
    fleet.wait_phase("edge-5", SLOT, "Downloading", 1)
    fleet.wait_phase("edge-5", SLOT, "Healthy", 1)
    assert fleet.phases_written("edge-5", SLOT) == ["Downloading", "Healthy"]


def test_every_phase_is_reported_when_asked(fleet: Fleet) -> None:
    artifact = fleet.publish("verbose")
    fleet.start_agent("edge-9", "--report-every-phase")
    fleet.wait("registration", lambda: fleet.device("edge-9"))
    fleet.assign("edge-9", SLOT, fleet.assignment(artifact, 1))
    fleet.wait_phase("edge-9", SLOT, "Healthy", 1)
    assert fleet.phases_written("edge-9", SLOT) == [
        "Downloading",
        "Verifying",
        "Activating",
        "Healthy",
    ]


def test_a_wrong_checksum_fails_and_keeps_the_previous_model(fleet: Fleet) -> None:
    good, other = fleet.publish("good"), fleet.publish("other", weight_shift=1.0)
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(good, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)

    fleet.assign("edge-1", SLOT, fleet.assignment(other, 2, sha256="0" * 64))
    status = fleet.wait_phase("edge-1", SLOT, "Failed", 2)
    assert status["reason"] == "ChecksumMismatch"
    assert "0000000000" in status["message"]
    assert (status["activeRevision"], status["activeSha256"]) == (1, good.sha256)
    assert fleet.active_sha("edge-1", SLOT) == good.sha256


def test_an_artifact_that_differs_from_its_probe_fails_and_keeps_the_previous_model(
    fleet: Fleet,
) -> None:
    good = fleet.publish("good")
    wrong = fleet.publish("wrong", weight_shift=0.01)  # its probe says what `good` computes
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(good, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)

    fleet.assign("edge-1", SLOT, fleet.assignment(wrong, 2))
    status = fleet.wait_phase("edge-1", SLOT, "Failed", 2)
    assert status["reason"] == "ProbeFailed"
    assert "exceed atol=1e-05" in status["message"]
    assert (status["activeRevision"], status["activeSha256"]) == (1, good.sha256)
    assert fleet.active_sha("edge-1", SLOT) == good.sha256


def test_rollback_to_the_previous_revision_needs_no_download(fleet: Fleet) -> None:
    first, second = (
        fleet.publish("first"),
        fleet.publish("second", weight_shift=2.0, probe_shift=2.0),
    )
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(first, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)
    fleet.assign("edge-1", SLOT, fleet.assignment(second, 2))
    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 2)
    assert status["previousRevision"] == 1

    rollback = fleet.assignment(first, 3)  # presigned while the objects still exist
    fleet.storage.remove(first.key)
    fleet.storage.remove(first.probe_key)
    fleet.assign("edge-1", SLOT, rollback)
    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 3)
    assert (status["activeRevision"], status["activeSha256"]) == (3, first.sha256)
    assert status["previousRevision"] == 2
    assert fleet.active_sha("edge-1", SLOT) == first.sha256


def test_a_slot_removed_from_spec_is_deactivated_and_its_status_dropped(fleet: Fleet) -> None:
    artifact = fleet.publish("good")
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(artifact, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)

    fleet.assign("edge-1", SLOT, None)
    fleet.wait("slot status dropped", lambda: fleet.slot("edge-1", SLOT) is None)
    assert not fleet.current("edge-1", SLOT).exists()
    objects = fleet.data_dir("edge-1") / "objects"
    fleet.wait("artifact collected", lambda: not any(objects.iterdir()))


def test_a_dead_url_fails_the_download_and_a_refreshed_one_succeeds(fleet: Fleet) -> None:
    artifact = fleet.publish("good")
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    dead = fleet.storage.presigned_get_url(f"{fleet.namespace}/missing/model.onnx")
    fleet.assign("edge-1", SLOT, fleet.assignment(artifact, 1, url=dead))
    status = fleet.wait_phase("edge-1", SLOT, "Failed", 1)
    assert status["reason"] == "DownloadFailed" and "HTTP 404" in status["message"]
    assert "activeRevision" not in status and not fleet.current("edge-1", SLOT).exists()

    fleet.assign("edge-1", SLOT, fleet.assignment(artifact, 1))  # the controller's RefreshUrl
    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 1)
    assert fleet.active_sha("edge-1", SLOT) == artifact.sha256
