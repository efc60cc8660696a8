"""An agent killed (SIGKILL) in each phase of taking a new revision: downloading, verifying,
probing, switching. The victim is one device of the fleet; it restarts and converges, and at no
moment is its slot without a loadable verified model.

Downloading is hit from outside (a throttled download, killed with part of it staged); the
other phases by the agent stopping itself at the function that does the phase
(support/breakpoints.py), so the kill lands inside the phase, not near it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from faults.builders import AGENTS, Deployment, assert_loadable, healthy_on, no_double_assignment

from modelfleet.dev.processes import ManagedProcess
from support.faults import Breakpoint, poll, wait_stopped
from support.rollouts import device_name, slot_of

pytestmark = [pytest.mark.faults, pytest.mark.integration]
RELAY_STRATEGY = {"waves": ["100%"], "maxInFlight": "100%", "bakeSeconds": 0}
VICTIM = device_name(1)
PADDING = 3 * 1024 * 1024
RATE = 1024 * 1024


@dataclass(frozen=True)
class Phase:
    id: str
    fault: str
    stop_at: Breakpoint | None = None


PHASES = [
    Phase("downloading", "SIGKILL with part of the download staged (1 MB/s)"),
    Phase(
        "verifying",
        "SIGKILL on entering the size+sha256 check of the staged bytes",
        Breakpoint("modelfleet.agent.steps:Steps._verify"),
    ),
    Phase(
        "probing",
        "SIGKILL loaded, about to run the probe inputs",
        Breakpoint("modelfleet.agent.probe:run_probe"),
    ),
    Phase(
        "switching",
        "SIGKILL between the `previous` and the `current` link switch",
        Breakpoint("modelfleet.agent.store:_link_atomic", when="args[0].name == 'current'"),
    ),
]


def _restart(relay: Deployment, *extra: str, stop_at: Breakpoint | None = None) -> ManagedProcess:
    fleet = relay.rollouts.fleet
    for agent in fleet.agents:
        if agent.name == f"agent-{VICTIM}":
            agent.stop()
    return fleet.start_agent(VICTIM, *extra, stop_at=stop_at)


@pytest.mark.parametrize("phase", PHASES, ids=[p.id for p in PHASES])
def test_agent_killed_in_each_phase(
    phase: Phase, relay: Deployment, record_property: Callable[[str, object], None]
) -> None:
    """At the kill `current` still names the old verified model; restarted, the agent takes
    the new revision (a download resumes where it stopped), the deployment succeeds, and the
    slot reports Healthy with the old revision as previous."""
    record_property("fault", f"agent {phase.fault}")
    fleet = relay.rollouts.fleet
    old = relay.artifact_of(relay.status()["stableRevision"])
    revision = relay.status()["currentRevision"] + 1
    downloading = phase.stop_at is None
    throttle = (f"--max-download-rate={RATE}",) if downloading else ()
    victim = _restart(relay, *throttle, stop_at=phase.stop_at)
    artifact = relay.publish(phase.id, shift=0.1 * revision, padding=PADDING if downloading else 0)
    part = fleet.data_dir(VICTIM) / "staging" / f"{artifact.sha256}.part"
    with relay.assignments() as log, relay.watch() as disk:
        relay.pin(artifact)
        if downloading:
            poll("a partial download", lambda: part.exists() and part.stat().st_size > RATE // 2)
        else:
            wait_stopped(victim, what=phase.id)
        victim.kill()
        killed_at = part.stat().st_size if part.exists() else None
        assert fleet.active_sha(VICTIM, relay.slot) == old.sha256
        seen = slot_of(fleet.device(VICTIM), relay.slot)
        restarted = _restart(relay)
        relay.settle("Succeeded", revision)
        healthy_on(relay, artifact, AGENTS)
    status = slot_of(fleet.device(VICTIM), relay.slot)
    record_property(
        "status",
        f"at the kill: {seen.get('phase')} {seen.get('message', '')}; after: {status['phase']} "
        f"{status['reason']}: {status['message']}",
    )
    assert disk.broken == [], disk.broken
    no_double_assignment(log, relay)
    assert_loadable(relay)
    assert fleet.active_sha(VICTIM, relay.slot) == artifact.sha256
    assert (status["activeRevision"], status["previousRevision"]) == (revision, revision - 1)
    if downloading:
        assert killed_at is not None and 0 < killed_at < artifact.size
        resumed = [
            json.loads(line)
            for line in restarted.log_path.read_text().splitlines()
            if '"download resumed"' in line
        ]
        assert resumed and resumed[0]["offset"] == killed_at, resumed
