"""SIGKILL in the middle of a download: the active model is never broken, and a restarted
agent resumes the download and finishes the rollout."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from support.fleet import Artifact, Fleet

SLOT = "detector"
PADDING = 6 * 1024 * 1024
RATE = 2 * 1024 * 1024


class LinkWatcher:
    """Samples the `current` link all along: it must always name a complete artifact."""

    def __init__(self, link: Path, allowed: dict[str, Artifact]) -> None:
        self.link, self.allowed = link, allowed
        self.seen: set[str] = set()
        self.broken: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            try:
                target = os.readlink(self.link)
                sha = Path(target).name.removesuffix(".onnx")
                size = os.stat(self.link).st_size
            except OSError as err:
                self.broken.append(f"{type(err).__name__}: {err}")
                continue
            artifact = self.allowed.get(sha)
            if artifact is None or size != artifact.size:
                self.broken.append(f"{target} ({size} bytes)")
            self.seen.add(sha)


def test_sigkill_during_download_then_restart_completes(fleet: Fleet) -> None:
    old = fleet.publish("old")
    new = fleet.publish("new", weight_shift=1.0, probe_shift=1.0, padding=PADDING)
    agent = fleet.start_agent("edge-1", f"--max-download-rate={RATE}", "--progress-grace-seconds=0")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(old, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)

    watcher = LinkWatcher(fleet.current("edge-1", SLOT), {old.sha256: old, new.sha256: new})
    watcher.thread.start()
    fleet.assign("edge-1", SLOT, fleet.assignment(new, 2))
    fleet.wait_phase("edge-1", SLOT, "Downloading", 2)
    part = fleet.data_dir("edge-1") / "staging" / f"{new.sha256}.part"
    fleet.wait("a partial download", lambda: part.exists() and part.stat().st_size > RATE // 2)
    agent.kill()
    killed_at = part.stat().st_size
    assert 0 < killed_at < new.size
    assert fleet.active_sha("edge-1", SLOT) == old.sha256

    restarted = fleet.start_agent("edge-1")
    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 2)
    watcher.stop.set()
    watcher.thread.join()

    assert (status["activeRevision"], status["activeSha256"]) == (2, new.sha256)
    assert status["previousRevision"] == 1
    assert fleet.active_sha("edge-1", SLOT) == new.sha256
    assert watcher.broken == [] and watcher.seen == {old.sha256, new.sha256}
    assert not part.exists()
    resumed = [
        json.loads(line)
        for line in restarted.log_path.read_text().splitlines()
        if '"download resumed"' in line
    ]
    assert resumed and resumed[0]["offset"] == killed_at
