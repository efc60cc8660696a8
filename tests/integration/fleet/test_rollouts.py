"""EdgeDeployment rollouts on a fleet of 20 real agents: waves, abort and automatic rollback,
manual rollback, pause and promote, offline devices, late joiners, slots (operator restarts:
the fault matrix, tests/faults).

The tests share one fleet and run in file order: each leaves the fleet in the state the next
one starts from, as a day of operations would. `make test` runs them in their own sequential
pytest pass (marker `fleet`), since xdist does not keep the order of a module's tests.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelfleet.conditions import parse_time
from modelfleet.dev.servers import ApiServer
from modelfleet.operator.rollout.waves import wave_sizes
from support.operator import wait_for
from support.rollouts import (
    FLEET_SIZE,
    Rollouts,
    assignment_of,
    device_name,
    slot_of,
)

pytestmark = [pytest.mark.paddle, pytest.mark.fleet]
MODELFLEET = str(Path(sys.executable).with_name("modelfleet"))
WAVES = [1, "50%", "100%"]
BAKE = 3
QUICK = {"waves": WAVES, "maxInFlight": "100%", "bakeSeconds": BAKE}


def _cli(kube_apiserver: ApiServer, *args: str) -> str:
    result = subprocess.run(
        [MODELFLEET, *args, "-n", "fleet", "--kubeconfig", str(kube_apiserver.kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _healthy_on(rollouts: Rollouts, slot: str, sha256: str, devices: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items = rollouts.devices()
        healthy = [
            d
            for d in items
            if slot_of(d, slot).get("phase") == "Healthy"
            and slot_of(d, slot).get("activeSha256") == sha256
        ]
        return items if len(healthy) >= devices else None

    found: list[dict[str, Any]] = wait_for(
        lambda: {"items": check()}, lambda r: r["items"] is not None, what=f"{slot} on {sha256[:8]}"
    )["items"]
    return found


@contextmanager
def _moved_devices(rollouts: Rollouts, slot: str, revision: int) -> Iterator[set[str]]:
    """Every device seen assigned `revision` in `slot` while the block runs."""
    seen: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for device in rollouts.devices():
                if assignment_of(device, slot).get("revision") == revision:
                    seen.add(device["metadata"]["name"])
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def _assignment_waves(devices: list[dict[str, Any]], slot: str) -> list[int]:
    """Cumulative device counts per burst of assignments: the waves as they happened.

    One wave's patches land within a second; waves are at least BAKE seconds apart (timestamps
    have second precision, so a gap of BAKE or more seconds stays at least BAKE - 1 apart)."""
    moments = sorted(
        parse_time(assignment_of(d, slot)["assignedAt"]) for d in devices if assignment_of(d, slot)
    )
    counts: list[int] = []
    for index, moment in enumerate(moments):
        if index and (moment - moments[index - 1]).total_seconds() >= BAKE - 1:
            counts.append(index)
    return [*counts, len(moments)]


def test_good_revision_rolls_out_wave_by_wave(rollouts: Rollouts) -> None:
    rollouts.deploy(
        "cam",
        "v1",
        slot="vision",
        strategy={"waves": WAVES, "bakeSeconds": 2, "maxInFlight": "100%"},
    )
    done = rollouts.wait_phase("cam", "Succeeded")
    assert done["status"]["stableRevision"] == done["status"]["currentRevision"] == 1
    assert done["status"]["counts"]["healthy"] == FLEET_SIZE
    devices = _healthy_on(rollouts, "vision", rollouts.artifacts["v1"]["sha256"], FLEET_SIZE)
    times = sorted(assignment_of(d, "vision")["assignedAt"] for d in devices)
    waves = _assignment_waves(devices, "vision")
    assert waves == list(wave_sizes(WAVES, FLEET_SIZE)), f"assigned at {times}"
    ready = next(c for c in done["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_pause_between_waves_holds_until_promoted(
    rollouts: Rollouts, kube_apiserver: ApiServer
) -> None:
    rollouts.deploy(
        "speaker",
        "v2",
        slot="audio",
        strategy={"waves": WAVES, "bakeSeconds": 0, "pause": "betweenWaves", "maxInFlight": "100%"},
    )
    for wave, healthy in ((0, 1), (1, wave_sizes(WAVES, FLEET_SIZE)[1])):

        def held(d: dict[str, Any], wave: int = wave, healthy: int = healthy) -> bool:
            status = d.get("status") or {}
            return (
                status.get("phase") == "Paused"
                and status.get("wave") == wave
                and status["counts"]["healthy"] == healthy
            )

        wait_for(lambda: rollouts.deployment("speaker"), held, what=f"held after wave {wave}")
        time.sleep(1)
        assert rollouts.deployment("speaker")["status"]["counts"]["updated"] == healthy
        _cli(kube_apiserver, "promote", "speaker")
    rollouts.wait_phase("speaker", "Succeeded")


def test_deployments_on_different_slots_of_one_device_coexist(rollouts: Rollouts) -> None:
    for device in rollouts.devices():
        assert slot_of(device, "vision")["activeSha256"] == rollouts.artifacts["v1"]["sha256"]
        assert slot_of(device, "audio")["activeSha256"] == rollouts.artifacts["v2"]["sha256"]
        assert slot_of(device, "vision")["phase"] == slot_of(device, "audio")["phase"] == "Healthy"


def test_failing_revision_aborts_in_first_wave_and_rolls_back(rollouts: Rollouts) -> None:
    with _moved_devices(rollouts, "vision", revision=2) as moved:
        rollouts.patch("cam", {"spec": {"model": {"conversion": "bad"}}})
        done = rollouts.wait_phase("cam", "RolledBack")
    assert len(moved) == 1, f"only the canary wave may move, saw {sorted(moved)}"
    assert done["status"]["stableRevision"] == 1
    record = next(r for r in done["status"]["history"] if r["revision"] == 2)
    assert record["outcome"] == "RolledBack"
    progressing = next(c for c in done["status"]["conditions"] if c["type"] == "Progressing")
    assert next(iter(moved)) in progressing["message"]
    devices = _healthy_on(rollouts, "vision", rollouts.artifacts["v1"]["sha256"], FLEET_SIZE)
    assert {assignment_of(d, "vision")["revision"] for d in devices} == {1}


def test_manual_rollback_to_an_earlier_revision(
    rollouts: Rollouts, kube_apiserver: ApiServer
) -> None:
    rollouts.patch("cam", {"spec": {"model": {"conversion": "v2"}}})
    upgraded = rollouts.wait_phase("cam", "Succeeded")
    assert upgraded["status"]["stableRevision"] == 3
    _healthy_on(rollouts, "vision", rollouts.artifacts["v2"]["sha256"], FLEET_SIZE)

    _cli(kube_apiserver, "rollback", "cam", "--to-revision", "1")
    rolled = rollouts.wait_phase("cam", "Succeeded")
    assert rolled["spec"]["model"]["sha256"] == rollouts.artifacts["v1"]["sha256"]
    assert rolled["status"]["stableRevision"] == 4
    _healthy_on(rollouts, "vision", rollouts.artifacts["v1"]["sha256"], FLEET_SIZE)


def test_rollback_without_a_revision_undoes_the_last_rollout(
    rollouts: Rollouts, kube_apiserver: ApiServer
) -> None:
    """Like `kubectl rollout undo`: back to the revision before the current one (skipping
    revision 2, which was rolled back), and undoing that undo returns to the newer artifact."""
    said = _cli(kube_apiserver, "rollback", "cam")
    assert "rolled back from revision 4 to revision 3" in said, said
    undone = rollouts.wait_phase("cam", "Succeeded")
    assert undone["spec"]["model"]["sha256"] == rollouts.artifacts["v2"]["sha256"]
    _healthy_on(rollouts, "vision", rollouts.artifacts["v2"]["sha256"], FLEET_SIZE)

    said = _cli(kube_apiserver, "rollback", "cam")
    assert "rolled back from revision 5 to revision 4" in said, said
    redone = rollouts.wait_phase("cam", "Succeeded")
    assert redone["status"]["stableRevision"] == 6
    _healthy_on(rollouts, "vision", rollouts.artifacts["v1"]["sha256"], FLEET_SIZE)


def test_stopped_agents_count_offline_and_do_not_block(rollouts: Rollouts) -> None:
    stopped = rollouts.fleet.agents[-2:]
    for agent in stopped:
        agent.kill()
    time.sleep(6)
    rollouts.deploy(
        "beacon",
        "v1",
        slot="offline",
        strategy={"waves": ["100%"], "bakeSeconds": 0, "deviceTimeoutSeconds": 5},
    )
    done = rollouts.wait_phase("beacon", "Succeeded")
    assert done["status"]["counts"]["offline"] == 2
    assert done["status"]["counts"]["healthy"] == FLEET_SIZE - 2

    for index in (FLEET_SIZE - 2, FLEET_SIZE - 1):
        rollouts.start(index)
    _healthy_on(rollouts, "offline", rollouts.artifacts["v1"]["sha256"], FLEET_SIZE)


def test_device_joining_later_gets_the_stable_revisions(rollouts: Rollouts) -> None:
    rollouts.start(FLEET_SIZE)
    newcomer = device_name(FLEET_SIZE)
    wanted = {"vision": "v1", "audio": "v2", "offline": "v1"}

    def settled() -> bool:
        device = next((d for d in rollouts.devices() if d["metadata"]["name"] == newcomer), None)
        return device is not None and all(
            slot_of(device, slot).get("activeSha256") == rollouts.artifacts[name]["sha256"]
            for slot, name in wanted.items()
        )

    wait_for(lambda: {"ok": settled()}, lambda r: r["ok"], what=f"{newcomer} on stable revisions")
    cam = rollouts.deployment("cam")["status"]
    device = next(d for d in rollouts.devices() if d["metadata"]["name"] == newcomer)
    assert assignment_of(device, "vision")["revision"] == cam["stableRevision"]


def test_two_deployments_claiming_one_slot_report_a_conflict(rollouts: Rollouts) -> None:
    rollouts.deploy("rival", "v2", slot="vision", selector={"matchLabels": {"site": "north"}})
    rival = wait_for(
        lambda: rollouts.deployment("rival"),
        lambda d: any(
            c["type"] == "Conflict" and c["status"] == "True"
            for c in (d.get("status") or {}).get("conditions", [])
        ),
        what="a Conflict condition",
    )
    conflict = next(c for c in rival["status"]["conditions"] if c["type"] == "Conflict")
    assert "cam" in conflict["message"]
    time.sleep(2)
    for device in rollouts.devices():
        assert assignment_of(device, "vision")["deployment"] == "cam"
        assert slot_of(device, "vision")["activeSha256"] == rollouts.artifacts["v1"]["sha256"]
