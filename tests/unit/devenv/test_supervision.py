"""The dev supervisor's decisions, pass by pass, on a fake clock with fake components; and
how `dev status` reads a record against the live process table."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelfleet.backoff import Backoff
from modelfleet.dev.component_states import (
    ComponentRecord,
    derive_status,
    describe_exit,
    read_records,
)
from modelfleet.dev.supervision import SupervisedThread, Supervisor

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OWN_PID = 4242


class FakeComponent:
    def __init__(self, name: str, pid: int = 100) -> None:
        self.name = name
        self.pid = pid
        self.log_path: Path | None = Path(f"/logs/{name}.log")
        self.code: int | None = None
        self.respawns = 0

    def alive(self) -> bool:
        return self.code is None

    def exit_code(self) -> int | None:
        return self.code

    def respawn(self) -> None:
        self.respawns += 1
        self.pid += 1
        self.code = None


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_supervisor(tmp_path: Path, clock: Clock) -> Supervisor:
    return Supervisor(
        tmp_path,
        backoff=Backoff(initial=1.0, factor=2.0, max=8.0),
        stable_after=60.0,
        clock=clock.monotonic,
        wall_clock=clock.wall,
    )


def record(tmp_path: Path, name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((tmp_path / f"{name}.json").read_text())
    return loaded


def test_a_dead_component_is_restarted_after_the_backoff_and_counted(
    tmp_path: Path, clock: Clock
) -> None:
    supervisor = make_supervisor(tmp_path, clock)
    minio = FakeComponent("minio")
    supervisor.watch(minio)
    minio.code = -9
    supervisor.check()
    assert minio.respawns == 0
    saved = record(tmp_path, "minio")
    assert saved["state"] == "restarting" and saved["last_exit"] == -9
    assert saved["next_restart_at"] == "2026-12-02T12:00:01Z"
    clock.seconds = 0.5
    supervisor.check()
    assert minio.respawns == 0  # not due yet
    clock.seconds = 1.0
    supervisor.check()
    assert minio.respawns == 1
    saved = record(tmp_path, "minio")
    assert saved["state"] == "running" and saved["pid"] == 101 and saved["restarts"] == 1


def test_a_crash_loop_waits_longer_each_time_and_resets_once_stable(
    tmp_path: Path, clock: Clock
) -> None:
    supervisor = make_supervisor(tmp_path, clock)
    operator = FakeComponent("operator")
    supervisor.watch(operator)
    waits = []
    for _ in range(5):
        operator.code = 1
        supervisor.check()
        died = clock.seconds
        while operator.respawns == len(waits):
            clock.seconds += 0.5
            supervisor.check()
        waits.append(clock.seconds - died)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped at max
    clock.seconds += 60
    supervisor.check()  # ran a minute: the next death is attempt 1 again
    operator.code = 1
    supervisor.check()
    assert record(tmp_path, "operator")["attempt"] == 1
    assert record(tmp_path, "operator")["restarts"] == 5


def test_close_records_every_component_stopped(tmp_path: Path, clock: Clock) -> None:
    supervisor = make_supervisor(tmp_path, clock)
    for name in ("etcd", "kube-apiserver", "minio"):
        supervisor.watch(FakeComponent(name))
    supervisor.close()
    records = read_records(tmp_path)
    assert [r.name for r in records] == ["etcd", "kube-apiserver", "minio"]
    assert {(r.state, r.pid) for r in records} == {("stopped", None)}


def make_record(**fields: object) -> ComponentRecord:
    values: dict[str, object] = {
        "name": "minio",
        "state": "running",
        "pid": 100,
        "supervisor_pid": OWN_PID,
        "restarts": 2,
        "last_exit": -9,
        "last_exit_at": "2026-12-02T11:59:00Z",
        "started_at": "2026-12-02T11:59:30Z",
    }
    return ComponentRecord(**(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record_", "live", "state", "pid"),
    [
        pytest.param(make_record(), {OWN_PID, 100}, "running", 100, id="running"),
        pytest.param(make_record(), {OWN_PID}, "restarting", None, id="died-not-noticed-yet"),
        pytest.param(
            make_record(state="restarting", pid=None, next_restart_at="2026-12-02T12:00:04Z"),
            {OWN_PID},
            "restarting",
            None,
            id="restarting",
        ),
        pytest.param(make_record(), {100}, "stopped", None, id="supervisor-gone"),
        pytest.param(make_record(state="stopped", pid=None), set(), "stopped", None, id="down"),
    ],
)
def test_dev_status_derives_the_state_from_the_record_and_live_pids(
    record_: ComponentRecord, live: set[int], state: str, pid: int | None
) -> None:
    status = derive_status(record_, running=lambda p: p in live, now=T0)
    assert (status.state, status.pid, status.restarts) == (state, pid, 2)
    assert status.last_exit == "SIGKILL at 2026-12-02T11:59:00Z"
    assert status.uptime_seconds == (30.0 if state == "running" else None)


def test_exits_read_as_people_say_them() -> None:
    assert [describe_exit(c) for c in (None, 0, 3, -9, -15)] == [
        "-",
        "exit 0",
        "exit 3",
        "SIGKILL",
        "SIGTERM",
    ]


def test_a_thread_that_dies_of_an_exception_is_a_component_the_supervisor_restarts(
    tmp_path: Path, clock: Clock
) -> None:
    runs: list[int] = []
    release = threading.Event()

    def target() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("apiserver gone")
        release.wait(5)

    supervisor = make_supervisor(tmp_path, clock)
    thread = SupervisedThread("job-runner", target)
    thread.join(timeout=5)
    supervisor.watch(thread)
    assert not thread.alive() and thread.exit_code() == 1
    supervisor.check()
    clock.seconds = 1.0
    supervisor.check()
    assert record(tmp_path, "job-runner")["restarts"] == 1
    assert thread.alive() and thread.exit_code() is None
    release.set()
    thread.join(timeout=5)
