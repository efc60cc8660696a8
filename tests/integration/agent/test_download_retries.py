"""A download from a MinIO that stops answering (SIGSTOP: the kernel still accepts connections,
nobody responds) shows its retries in the slot status and finishes once MinIO answers again.

MinIO is paused before the assignment: paused mid-transfer, it has usually pushed the whole
body into the loopback socket buffers already and the agent never notices."""

from __future__ import annotations

from typing import Any

from modelfleet.dev.servers import S3Server
from support.faults import minio_pid, paused
from support.fleet import Fleet, status_json

SLOT = "detector"


def test_a_stalled_download_reports_download_retrying_and_recovers(
    fleet: Fleet, minio_storage: S3Server
) -> None:
    artifact = fleet.publish("stalled", padding=1024 * 1024)
    fleet.start_agent(
        "edge-3",
        "--progress-grace-seconds=0.5",
        "--download-timeout-seconds=1",
        "--download-attempts=30",
    )
    fleet.wait("registration", lambda: fleet.device("edge-3"))
    assignment = fleet.assignment(artifact, 1)

    def retrying() -> dict[str, Any] | None:
        status = fleet.slot("edge-3", SLOT)
        return status if status and status.get("reason") == "DownloadRetrying" else None

    with paused(minio_pid(minio_storage)):
        fleet.assign("edge-3", SLOT, assignment)
        status = fleet.wait("DownloadRetrying", retrying, timeout=30)
    assert status["phase"] == "Downloading" and status["targetRevision"] == 1
    assert status["downloadRetry"]["attempt"] >= 1
    assert status["downloadRetry"]["lastError"] == "timed out"
    assert "failed (timed out), retrying in" in status["message"]
    assert assignment["url"].split("?")[1] not in status_json(status)
    assert "X-Amz-Signature" not in status_json(status)

    status = fleet.wait_phase("edge-3", SLOT, "Healthy", 1)
    assert "downloadRetry" not in status
    assert fleet.active_sha("edge-3", SLOT) == artifact.sha256
