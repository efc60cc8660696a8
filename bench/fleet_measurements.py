"""What the fleet benchmark measures of one rollout, and how (bench/fleet.py drives it).

How the numbers are taken:
- Writes: the device side counts its own calls (status patches; lease renewals separately).
  The operator's writes are counted from a watch this process keeps on EdgeDevices and
  EdgeDeployments: a device event whose `metadata.generation` moved is a spec write, which
  only the rollout controller makes; every EdgeDeployment event without a generation change
  is a status write by the operator (nothing else writes it during the run). A watch delivers
  every resourceVersion, so nothing is coalesced away.
- Times are when the watch event reached this process (time.time()): assignment = the first
  event where `spec.models[slot].revision` is the new one; healthy = the first event where the
  slot reports Healthy with `activeRevision` = the new one. Rollout time = first assignment →
  last healthy; device updates per minute = devices / rollout time x 60.
- Wave-advance latency: last device of wave w healthy → first device of wave w+1 assigned; the
  waves are the first k assigned devices, k from `operator.waves.wave_sizes`.
- CPU: utime+stime of each process over the rollout window, from /proc/<pid>/stat; operator
  peak RSS is its VmHWM (since its start) from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import cpu_seconds
from bench.stats import per_minute, ratio, wave_advance_latencies


@dataclass
class Recorder:
    """What a watch on EdgeDevices and EdgeDeployments saw, with receive times."""

    slot: str
    deployment_name: str
    assigned: dict[int, dict[str, float]] = field(default_factory=dict)
    healthy: dict[int, dict[str, float]] = field(default_factory=dict)
    device_spec_writes: list[float] = field(default_factory=list)
    device_status_writes: list[float] = field(default_factory=list)
    deployment_status_writes: list[float] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def device_event(self, received: float, event: dict[str, Any]) -> None:
        body = event["object"]
        name = body["metadata"]["name"]
        generation = int(body["metadata"].get("generation", 0))
        if event["type"] == "MODIFIED":
            if generation != self.generations.get(name):
                self.device_spec_writes.append(received)
            else:
                self.device_status_writes.append(received)
        self.generations[name] = generation
        assignment = ((body.get("spec") or {}).get("models") or {}).get(self.slot)
        if assignment:
            self.assigned.setdefault(int(assignment["revision"]), {}).setdefault(name, received)
        status = ((body.get("status") or {}).get("slots") or {}).get(self.slot) or {}
        if status.get("phase") == "Healthy" and status.get("activeRevision") is not None:
            revision = int(status["activeRevision"])
            self.healthy.setdefault(revision, {}).setdefault(name, received)

    def deployment_event(self, received: float, event: dict[str, Any]) -> None:
        body = event["object"]
        generation = int(body["metadata"].get("generation", 0))
        if body["metadata"].get("name") != self.deployment_name:
            return
        if event["type"] == "MODIFIED" and generation == self.deployment.get("generation"):
            self.deployment_status_writes.append(received)
        self.deployment = {"generation": generation, "status": body.get("status") or {}}
        self.changed.set()

    async def wait(
        self,
        done: Callable[[dict[str, Any]], bool],
        timeout: float,
        poll: Callable[[], Awaitable[dict[str, Any]]],
    ) -> bool:
        """Until `done` holds for the deployment the watch saw; every 2 s also for one read
        with `poll` (a watch that stalls must not stall the benchmark)."""
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + 2.0
        while not done(self.deployment):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + 2.0
                body = await poll()
                if body and done({"generation": body["metadata"]["generation"],
                                  "status": body.get("status") or {}}):  # fmt: skip
                    return True
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))
        return True


@dataclass
class RolloutResult:
    devices: int
    pattern: str
    revision: int
    completed: bool
    end_to_end_s: float
    rollout_s: float
    healthy: int
    operator_device_writes: int
    operator_status_writes: int
    device_status_writes: int
    apiserver_seen_status_writes: int
    lease_renewals: int
    wave_latencies: list[float]
    wave_assign_spans: list[float]
    """per wave: first → last device assigned (s)"""
    device_lags: list[float]
    """per device: assigned → healthy (s)"""
    status_latencies: list[float]
    """client-side seconds of each device status patch"""
    cpu_s: dict[str, float]
    operator_peak_rss_mib: float
    operator_rest_cpu: float
    """operator CPU seconds per second before the rollout: lease renewals and nothing else"""
    register_s: float
    variant: str = "baseline"
    operator_startup_s: float = float("nan")
    """operator start → its CPU use settled (initial lists through kopf)"""
    watch_restarts: int = 0
    """restarts of the recorder's and the devices' watches (events may be missed in between)"""
    machine_busy_s: float = float("nan")
    """CPU seconds of all cores busy in the window, whoever used them"""
    window_s: float = float("nan")
    list_s: float = float("nan")
    """one paginated LIST of every EdgeDevice by a plain client, just before the operator"""
    ready_s: float = float("nan")
    """operator process started → its 'ready to plan' log line seen (first LISTs all in)"""
    listed_in_s: float = float("nan")
    """the operator's own count: its fleet cache started → every first LIST in"""
    rest_lease_writes_per_s: float = float("nan")
    """Lease renewals per second in the rest window before the rollout"""

    @property
    def others_cpu_s(self) -> float:
        """CPU seconds of processes this benchmark did not start (another user's tests)."""
        return self.machine_busy_s - sum(self.cpu_s.values())

    @property
    def updates_per_min(self) -> float:
        return per_minute(self.healthy, self.rollout_s)

    def per_device(self, count: int) -> float:
        return ratio(count, self.devices)

    @property
    def writes_per_device(self) -> float:
        return self.per_device(
            self.operator_device_writes + self.operator_status_writes + self.device_status_writes
        )

    @property
    def device_writes_per_device(self) -> float:
        """The writes that grow with the fleet: the assignment and the device's status."""
        return self.per_device(self.operator_device_writes + self.device_status_writes)

    @property
    def wave_advance_max(self) -> float:
        return max(self.wave_latencies) if self.wave_latencies else float("nan")


def find_pids(run_dir: Path) -> dict[str, int]:
    """The server processes of this run, by a path of the run dir in their command line."""
    marks = {
        "kube-apiserver": f"--cert-dir={run_dir / 'pki'}",
        "etcd": f"--data-dir={run_dir / 'etcd-data'}",
        "minio": str(run_dir / "minio-data"),
    }
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for name, mark in marks.items():
            if mark in cmdline and name in cmdline.split(" ", 1)[0]:
                found[name] = int(entry.name)
    return found


def cpu_readings(pids: dict[str, int]) -> dict[str, float]:
    readings = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            readings[name] = cpu_seconds(pid)
    return readings


def count_between(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t <= end)


def measure(
    recorder: Recorder,
    *,
    devices: int,
    sizes: tuple[int, ...],
    register_s: float,
    variant: str,
    watch_restarts: int,
    pattern: str,
    revision: int,
    completed: bool,
    window: tuple[float, float],
    calls: tuple[dict[str, int], dict[str, int]],
    cpu: dict[str, float],
    peak: float,
    rest_cpu: float,
    status_latencies: list[float],
    busy: float,
    startup_s: float,
    startup: tuple[float, float, float] = (float("nan"),) * 3,
    rest_lease_writes_per_s: float = float("nan"),
) -> RolloutResult:
    """The RolloutResult of one rollout's `window`, from what `recorder` saw; `sizes` are
    the cumulative wave sizes, `calls` the device side's call counters before and after,
    `startup` (one LIST s, ready to plan s, operator's own listing s)."""
    start, end = window
    assigned = recorder.assigned.get(revision, {})
    healthy = recorder.healthy.get(revision, {})
    order = sorted(assigned, key=lambda name: assigned[name])
    assigned_times = [assigned[name] for name in order]
    healthy_by_position = {i: healthy[name] for i, name in enumerate(order) if name in healthy}
    rollout_s = (
        max(healthy.values()) - min(assigned_times) if healthy and assigned_times else float("nan")
    )
    before, after = calls
    spans = []
    first = 0
    for last in sizes:
        if last > first and last <= len(assigned_times):
            spans.append(assigned_times[last - 1] - assigned_times[first])
        first = last
    return RolloutResult(
        devices=devices,
        pattern=pattern,
        revision=revision,
        completed=completed,
        end_to_end_s=end - 0.5 - start,
        rollout_s=rollout_s,
        healthy=len(healthy),
        operator_device_writes=count_between(recorder.device_spec_writes, start, end),
        operator_status_writes=count_between(recorder.deployment_status_writes, start, end),
        device_status_writes=after.get("status", 0) - before.get("status", 0),
        apiserver_seen_status_writes=count_between(recorder.device_status_writes, start, end),
        lease_renewals=after.get("lease", 0) - before.get("lease", 0),
        wave_latencies=wave_advance_latencies(sizes, assigned_times, healthy_by_position),
        wave_assign_spans=spans,
        device_lags=[healthy[n] - assigned[n] for n in order if n in healthy],
        status_latencies=status_latencies,
        cpu_s=cpu,
        operator_peak_rss_mib=peak,
        operator_rest_cpu=rest_cpu,
        register_s=register_s,
        variant=variant,
        machine_busy_s=busy,
        window_s=end - start,
        operator_startup_s=startup_s,
        watch_restarts=watch_restarts,
        list_s=startup[0],
        ready_s=startup[1],
        listed_in_s=startup[2],
        rest_lease_writes_per_s=rest_lease_writes_per_s,
    )
