"""What `modelfleet dev status` reads: one JSON record per component in the state directory.

The supervisor (supervision.py) inside `modelfleet dev up` writes a component's record each
time its state changes (atomically: a reader never sees half a file). `dev status` runs in
another process and trusts no memory of the supervisor: it derives each component's state
from the record *and* the live process table (`derive_status`), level-triggered, so a record
left by a supervisor that was killed reads as stopped, and a component that died a moment ago
reads as restarting before the supervisor noticed.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from modelfleet.conditions import parse_time

State = Literal["running", "restarting", "stopped"]


@dataclass(frozen=True)
class ComponentRecord:
    """What the supervisor knows of one component, as of its last change."""

    name: str
    state: State
    pid: int | None
    supervisor_pid: int
    index: int = 0
    """Its place in the order the supervisor started watching components."""
    restarts: int = 0
    attempt: int = 0
    """Failures since the component last ran for a while: the backoff's attempt number."""
    last_exit: int | None = None
    last_exit_at: str | None = None
    started_at: str | None = None
    next_restart_at: str | None = None
    log: str | None = None


@dataclass(frozen=True)
class ComponentStatus:
    """One row of `dev status`."""

    name: str
    state: State
    pid: int | None
    restarts: int
    last_exit: str
    uptime_seconds: float | None
    detail: str


def write_record(state_dir: Path, record: ComponentRecord) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{record.name}.json"
    staging = path.with_suffix(".json.tmp")
    staging.write_text(json.dumps(asdict(record), indent=1) + "\n")
    staging.replace(path)


def read_records(state_dir: Path) -> list[ComponentRecord]:
    """Every component's record, in the order the supervisor started watching them."""
    records = []
    for path in state_dir.glob("*.json"):
        try:
            records.append(ComponentRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue  # vanished meanwhile, or not a record: nothing to show
    return sorted(records, key=lambda r: (r.index, r.name))


def process_running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent to reap it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def describe_exit(code: int | None) -> str:
    """`exit 1`, `SIGKILL`, or `-` for none yet."""
    if code is None:
        return "-"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def derive_status(
    record: ComponentRecord, *, running: Callable[[int], bool], now: datetime
) -> ComponentStatus:
    """The state as of now: the record, checked against which processes live."""
    supervised = running(record.supervisor_pid)
    alive = record.pid is not None and running(record.pid)
    state: State = record.state
    detail = ""
    if not supervised:
        state = "stopped"
        if record.state != "stopped":
            detail = f"dev up (pid {record.supervisor_pid}) is gone"
    elif record.state == "running" and not alive:
        state, detail = "restarting", "died; the supervisor restarts it"
    elif record.state == "restarting" and record.next_restart_at:
        detail = f"next restart at {record.next_restart_at}"
    uptime = None
    if state == "running" and record.started_at:
        uptime = max(0.0, (now - parse_time(record.started_at)).total_seconds())
    return ComponentStatus(
        name=record.name,
        state=state,
        pid=record.pid if state == "running" else None,
        restarts=record.restarts,
        last_exit=describe_exit(record.last_exit)
        + (f" at {record.last_exit_at}" if record.last_exit_at else ""),
        uptime_seconds=uptime,
        detail=detail,
    )
