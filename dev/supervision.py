"""The dev environment's supervisor: a component that dies is logged and started again.

`modelfleet dev up` hands every server it starts (etcd, kube-apiserver, the controller
manager, MinIO, the operator) and the job runner thread to one `Supervisor`, then runs
`Supervisor.run` in its main thread. Each pass (`check`, every `interval` seconds) looks at
every component: one that is dead is logged (component, exit code, attempt, next delay) and
restarted after the restart backoff (modelfleet/backoff.py, the one backoff policy), with the
same command line, ports and data, so clients need no new settings. A component that then runs
for `stable_after` seconds starts over at attempt 1, as the kubelet resets CrashLoopBackOff.

Restarts happen in the thread that calls `check`: a child started from a thread dies with
that thread (PR_SET_PDEATHSIG, processes.py), and dev up's main thread lives as long as the
environment. Each change of state is written to `state_dir` (component_states.py), where
`modelfleet dev status` reads it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from modelfleet.backoff import Backoff
from modelfleet.conditions import format_time
from modelfleet.dev.component_states import ComponentRecord, describe_exit, write_record
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)

RESTART_BACKOFF = Backoff(initial=1.0, factor=2.0, max=30.0)
"""1 s after the first death (a killed server is back before most clients give up), doubling
while it keeps dying, at most 30 s apart: a crash loop neither spins a core nor hides for long."""
STABLE_AFTER = 60.0
"""Seconds a restarted component must run before its next death counts from attempt 1."""


class Component(Protocol):
    """What the supervisor needs of a process or thread (ManagedProcess, SupervisedThread)."""

    name: str

    @property
    def pid(self) -> int: ...

    @property
    def log_path(self) -> Path | None: ...

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def respawn(self) -> None: ...


class SupervisedThread:
    """A daemon thread as a component: its pid is dev up's own, its exit code 1 when it ended
    (a thread that ends before the environment stops has died of an exception)."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.log_path: Path | None = None
        self._target = target
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        """The target; an exception that ends it is one log line, not a traceback."""
        try:
            self._target()
        except Exception as err:
            log.error("component thread died", component=self.name, error=describe(err))

    @property
    def pid(self) -> int:
        return os.getpid()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def exit_code(self) -> int | None:
        return None if self.alive() else 1

    def respawn(self) -> None:
        self._thread = self._start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)


@dataclass
class _Watched:
    component: Component
    record: ComponentRecord
    started: float
    """time.monotonic() when it last started."""
    due: float | None = None
    """time.monotonic() when a dead component is restarted; None while it runs."""


class Supervisor:
    def __init__(
        self,
        state_dir: Path,
        *,
        backoff: Backoff = RESTART_BACKOFF,
        stable_after: float = STABLE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state_dir = state_dir
        self._backoff = backoff
        self._stable_after = stable_after
        self._clock = clock
        self._wall_clock = wall_clock
        self._watched: dict[str, _Watched] = {}
        self._closed = False

    def watch(self, component: Component) -> None:
        """Supervise a component that has just started (and passed its readiness check)."""
        record = ComponentRecord(
            name=component.name,
            state="running",
            pid=component.pid,
            supervisor_pid=os.getpid(),
            index=len(self._watched),
            started_at=format_time(self._wall_clock()),
            log=str(component.log_path) if component.log_path else None,
        )
        self._watched[component.name] = _Watched(component, record, self._clock())
        write_record(self.state_dir, record)

    def check(self) -> None:
        """One pass: note what died, restart what is due."""
        for watched in self._watched.values():
            if watched.due is None:
                self._check_running(watched)
            elif self._clock() >= watched.due:
                self._restart(watched)

    def run(self, interval: float = 0.5) -> None:
        """`check` forever, in the calling thread; a signal's exception ends it."""
        while True:
            self.check()
            time.sleep(interval)

    def close(self) -> None:
        """Record every component as stopped: the environment is being torn down."""
        if self._closed:
            return
        self._closed = True
        for watched in self._watched.values():
            stopped = replace(watched.record, state="stopped", pid=None, next_restart_at=None)
            self._save(watched, stopped)

    def _check_running(self, watched: _Watched) -> None:
        component, record = watched.component, watched.record
        now = self._clock()
        if component.alive():
            if record.attempt and now - watched.started >= self._stable_after:
                self._save(watched, replace(record, attempt=0))
            return
        code = component.exit_code()
        attempt = record.attempt + 1
        delay = self._backoff.delay(attempt)
        watched.due = now + delay
        wall = self._wall_clock()
        log.warning(
            "component exited; restarting",
            component=component.name,
            exit_code=code,
            exit=describe_exit(code),
            attempt=attempt,
            next_delay=delay,
        )
        self._save(
            watched,
            replace(
                record,
                state="restarting",
                pid=None,
                attempt=attempt,
                last_exit=code,
                last_exit_at=format_time(wall),
                next_restart_at=format_time(wall + timedelta(seconds=delay)),
            ),
        )

    def _restart(self, watched: _Watched) -> None:
        component, record = watched.component, watched.record
        try:
            component.respawn()
        except OSError as err:  # the binary vanished, the disk is full: try again later
            delay = self._backoff.delay(record.attempt + 1)
            watched.due = self._clock() + delay
            log.warning(
                "component restart failed",
                component=component.name,
                error=describe(err),
                attempt=record.attempt + 1,
                next_delay=delay,
            )
            self._save(watched, replace(record, attempt=record.attempt + 1))
            return
        watched.due = None
        watched.started = self._clock()
        restarted = replace(
            record,
            state="running",
            pid=component.pid,
            restarts=record.restarts + 1,
            started_at=format_time(self._wall_clock()),
            next_restart_at=None,
        )
        log.info(
            "component restarted",
            component=component.name,
            pid=component.pid,
            attempt=record.attempt,
            restarts=restarted.restarts,
        )
        self._save(watched, restarted)

    def _save(self, watched: _Watched, record: ComponentRecord) -> None:
        watched.record = record
        write_record(self.state_dir, record)
