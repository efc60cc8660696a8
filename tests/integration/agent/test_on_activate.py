"""The --on-activate command on a real agent: it runs once the new model is current and, when
it fails, the previous model is current again and the slot says why."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from support.fleet import Fleet

SLOT = "detector"
HOOK = """
import hashlib, json, os, sys, time
log, refused, hold = sys.argv[1:4]
slot_dir = os.environ["MODELFLEET_SLOT_DIR"]
prefix = "MODELFLEET_"
seen = {k.removeprefix(prefix): v for k, v in os.environ.items() if k.startswith(prefix)}
seen["model_sha256"] = hashlib.sha256(open(seen["MODEL"], "rb").read()).hexdigest()
seen["current"] = os.path.realpath(os.path.join(slot_dir, "current"))
seen["runtime_sha256"] = json.load(open(seen["RUNTIME"]))["sha256"]
with open(log, "a") as out:
    out.write(json.dumps(seen) + "\\n")
while os.path.exists(hold):  # a service that takes its time to reload
    time.sleep(0.1)
if seen["SHA256"] == refused:
    sys.stderr.write("loading model\\nservice refused the model: input shape changed\\n")
    sys.exit(3)
"""


def hook_command(tmp_path: Path, refused: str = "none") -> tuple[str, Path]:
    """The option that runs HOOK: it logs what it sees to the returned file, waits while
    tmp_path/hold exists, and fails for the `refused` sha256."""
    script, log = tmp_path / "reload.py", tmp_path / "reloads.jsonl"
    script.write_text(HOOK)
    argv = [sys.executable, str(script), str(log), refused, str(tmp_path / "hold")]
    return "--on-activate=" + shlex.join(argv), log


def reloads(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_command_runs_when_the_new_model_is_current(fleet: Fleet, tmp_path: Path) -> None:
    first, second = (
        fleet.publish("first"),
        fleet.publish("second", weight_shift=1.0, probe_shift=1.0),
    )
    option, log = hook_command(tmp_path)
    fleet.start_agent("edge-1", option)
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    fleet.assign("edge-1", SLOT, fleet.assignment(first, 1))
    fleet.wait_phase("edge-1", SLOT, "Healthy", 1)
    fleet.assign("edge-1", SLOT, fleet.assignment(second, 2))
    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 2)

    assert status["activeSha256"] == second.sha256 and status["reason"] == "ProbePassed"
    slot_dir = fleet.current("edge-1", SLOT).parent
    assert [(r["REVISION"], r["SHA256"]) for r in reloads(log)] == [
        ("1", first.sha256),
        ("2", second.sha256),
    ]
    for seen in reloads(log):
        assert seen["model_sha256"] == seen["runtime_sha256"] == seen["SHA256"]
        assert seen["current"] == seen["MODEL"]  # `current` already names the new model
        assert (seen["SLOT"], seen["SLOT_DIR"]) == (SLOT, str(slot_dir))
        assert seen["RUNTIME"] == str(slot_dir / "runtime.json")
    assert not (slot_dir / "activation.json").exists()
    assert fleet.phases_written("edge-1", SLOT) == ["Healthy", "Healthy"]  # one write a rollout


def test_a_failing_command_rolls_the_slot_back_and_says_why(fleet: Fleet, tmp_path: Path) -> None:
    good, refused = (
        fleet.publish("good"),
        fleet.publish("refused", weight_shift=1.0, probe_shift=1.0),
    )
    option, log = hook_command(tmp_path, refused=refused.sha256)
    fleet.start_agent("edge-2", option)
    fleet.wait("registration", lambda: fleet.device("edge-2"))
    fleet.assign("edge-2", SLOT, fleet.assignment(good, 1))
    fleet.wait_phase("edge-2", SLOT, "Healthy", 1)
    slot_dir = fleet.current("edge-2", SLOT).parent
    runtime_before = (slot_dir / "runtime.json").read_text()

    fleet.assign("edge-2", SLOT, fleet.assignment(refused, 2))
    status = fleet.wait_phase("edge-2", SLOT, "Failed", 2)
    assert status["reason"] == "ActivationFailed"
    assert status["message"] == (
        "on-activate command exited 3: service refused the model: input shape changed"
    )
    assert (status["activeRevision"], status["activeSha256"]) == (1, good.sha256)
    assert fleet.active_sha("edge-2", SLOT) == good.sha256
    assert (slot_dir / "runtime.json").read_text() == runtime_before
    assert not (slot_dir / "previous").exists() and not (slot_dir / "activation.json").exists()
    # the command saw the refused model current, then the restored one again
    assert [(r["REVISION"], r["current"]) for r in reloads(log)] == [
        ("1", str(fleet.data_dir("edge-2") / "objects" / f"{good.sha256}.onnx")),
        ("2", str(fleet.data_dir("edge-2") / "objects" / f"{refused.sha256}.onnx")),
        ("1", str(fleet.data_dir("edge-2") / "objects" / f"{good.sha256}.onnx")),
    ]
    assert fleet.phases_written("edge-2", SLOT) == ["Healthy", "Failed"]


def test_an_agent_killed_before_the_command_confirmed_rolls_back_and_runs_it_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    old, new = fleet.publish("old"), fleet.publish("new", weight_shift=1.0, probe_shift=1.0)
    option, log = hook_command(tmp_path)
    agent = fleet.start_agent("edge-3", option)
    fleet.wait("registration", lambda: fleet.device("edge-3"))
    fleet.assign("edge-3", SLOT, fleet.assignment(old, 1))
    fleet.wait_phase("edge-3", SLOT, "Healthy", 1)

    (tmp_path / "hold").touch()
    fleet.assign("edge-3", SLOT, fleet.assignment(new, 2))
    fleet.wait("the command for revision 2", lambda: len(reloads(log)) == 2)
    agent.kill()
    slot_dir = fleet.current("edge-3", SLOT).parent
    assert (slot_dir / "activation.json").exists() and fleet.active_sha(
        "edge-3", SLOT
    ) == new.sha256
    (tmp_path / "hold").unlink()  # the orphaned command ends

    restarted = fleet.start_agent("edge-3", option)
    status = fleet.wait_phase("edge-3", SLOT, "Healthy", 2)
    assert (status["activeSha256"], status["previousRevision"]) == (new.sha256, 1)
    assert [r["REVISION"] for r in reloads(log)] == ["1", "2", "2"]
    assert "unconfirmed activation rolled back" in restarted.log_path.read_text()
    assert not (slot_dir / "activation.json").exists()
