"""The `--on-activate` command: tell the application that a slot's model changed.

After the agent switched `slots/<slot>/current` (and `runtime.json` beside it) it runs the
command, split like a shell would (`shlex`) but never through one, so nothing in a slot name or
path can inject a command. The command learns what changed from its environment (`hook_env`):

    MODELFLEET_SLOT        detector
    MODELFLEET_SLOT_DIR    /var/lib/modelfleet/slots/detector  (what `open_session` takes)
    MODELFLEET_MODEL       /var/lib/modelfleet/objects/<sha256>.onnx
    MODELFLEET_RUNTIME     /var/lib/modelfleet/slots/detector/runtime.json
    MODELFLEET_REVISION    7
    MODELFLEET_SHA256      <sha256>

A non-zero exit, a signal or the timeout raises `ActivationFailed` with the last line the
command wrote to stderr (else stdout); the steps (`steps`) then roll the slot back to the model
active before and report the slot Failed, which the rollout counts as a device failure.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelfleet.agent.errors import ActivationFailed
from modelfleet.logs import get_logger

log = get_logger(__name__)

_LINE_LIMIT = 300


@dataclass(frozen=True)
class ActivationHook:
    argv: tuple[str, ...]
    timeout_seconds: float = 30.0

    @classmethod
    def parse(cls, command: str, *, timeout_seconds: float = 30.0) -> ActivationHook:
        """`command` split as a POSIX shell would, without running one; ValueError when it
        is empty or its quotes do not close."""
        argv = tuple(shlex.split(command))
        if not argv:
            raise ValueError("the on-activate command is empty")
        return cls(argv, timeout_seconds)


def hook_env(
    *,
    slot: str,
    slot_dir: Path,
    model: Path,
    runtime: Path,
    revision: int | None,
    sha256: str,
) -> dict[str, str]:
    """The variables that tell the command what is active now: pure."""
    return {
        "MODELFLEET_SLOT": slot,
        "MODELFLEET_SLOT_DIR": str(slot_dir),
        "MODELFLEET_MODEL": str(model),
        "MODELFLEET_RUNTIME": str(runtime),
        "MODELFLEET_REVISION": "" if revision is None else str(revision),
        "MODELFLEET_SHA256": sha256,
    }


def run_hook(hook: ActivationHook, env: Mapping[str, str]) -> None:
    """Run the command with `env` added to the agent's environment; raise ActivationFailed
    unless it exits 0 within the timeout (then its whole process group is killed)."""
    try:
        process = subprocess.Popen(
            hook.argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as err:
        raise ActivationFailed(
            f"on-activate command could not start: {type(err).__name__}: {err.strerror}"
        ) from None
    try:
        stdout, stderr = process.communicate(timeout=hook.timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate()
        raise ActivationFailed(
            f"on-activate command timed out after {hook.timeout_seconds:g}s"
        ) from None
    code = process.returncode
    if code == 0:
        log.info("on-activate command succeeded", slot=env.get("MODELFLEET_SLOT"))
        return
    what = f"exited {code}" if code > 0 else f"was killed by signal {-code}"
    line = last_line(stderr) or last_line(stdout)
    raise ActivationFailed(f"on-activate command {what}" + (f": {line}" if line else ""))


def last_line(output: bytes) -> str:
    """The last non-blank line of a command's output, shortened: pure."""
    for line in reversed(output.decode(errors="replace").splitlines()):
        if line.strip():
            return line.strip()[:_LINE_LIMIT]
    return ""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
