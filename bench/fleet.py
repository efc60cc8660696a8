"""Benchmark 1: the fleet control plane under a rollout with zero bake time.

Real etcd + kube-apiserver + MinIO (`dev_environment`), the real operator process
(`start_operator`), and `simulator.Simulator` devices in this process. Per fleet size the
devices register once; then one rollout per status pattern (`--patterns`, default
`agent-slow agent`), each with a freshly started operator (so its CPU and peak RSS belong to
that rollout alone):

1. rollout of revision 1 (pinned artifact A) with the first pattern, by default `agent-slow`:
   Downloading then the outcome, what the agent writes when activation outlasts its progress
   grace period (and what it wrote for every activation before the grace existed);
2. rollout of revision 2 (pinned artifact B) with the next, by default `agent`: the outcome
   only, what the agent writes for an activation quicker than the grace period.

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
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import cpu_seconds, machine_busy_seconds, peak_rss_mib
from bench.report import Section, Table, fmt
from bench.simulator import GROUP_PATH, MERGE, Credentials, Kube, Simulator
from bench.stats import meets, per_minute, percentile, ratio, wave_advance_latencies

NAMESPACE = "bench"
SLOT = "detector"
DEPLOYMENT = "detector"
WAVES: list[int | str] = ["1%", "10%", "50%", "100%"]
TARGET_UPDATES_PER_MIN = 10_000.0
TARGET_WRITES_PER_DEVICE = 3.0
TARGET_WAVE_ADVANCE_S = 1.0
REST_WINDOW_S = 10.0
SETTLED_CPU = 0.35
"""Operator CPU seconds per second below which its start-up (the initial list of devices through
kopf's index) counts as over; before Leases left kopf it was ~0.2 at rest with 1,000 devices."""
SETTLE_LIMIT_S = 600.0


@dataclass
class Recorder:
    """What a watch on EdgeDevices and EdgeDeployments saw, with receive times."""

    slot: str
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
        if body["metadata"].get("name") != DEPLOYMENT:
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
    def wave_advance_max(self) -> float:
        return max(self.wave_latencies) if self.wave_latencies else float("nan")


def _find_pids(run_dir: Path) -> dict[str, int]:
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


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    readings = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            readings[name] = cpu_seconds(pid)
    return readings


def _in(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t <= end)


def _artifact_body(storage: Any, key: str, payload: bytes) -> dict[str, str]:
    storage.put_bytes(key, payload)
    return {"uri": storage.uri(key), "sha256": hashlib.sha256(payload).hexdigest()}


async def _settle(pid: int, started: float) -> float:
    """Seconds from starting the operator until its CPU use over 2 s falls below SETTLED_CPU
    per second (at most SETTLE_LIMIT_S)."""
    await asyncio.sleep(2.0)
    while time.monotonic() - started < SETTLE_LIMIT_S:
        before = cpu_seconds(pid)
        await asyncio.sleep(2.0)
        if (cpu_seconds(pid) - before) / 2.0 < SETTLED_CPU:
            break
    return time.monotonic() - started


@dataclass
class Run:
    """One fleet size's shared state: devices, watches, processes."""

    devices: int
    run_dir: Path
    env: dict[str, str]
    kube: Kube
    sim: Simulator
    recorder: Recorder
    pids: dict[str, int]
    artifacts: list[dict[str, str]]
    timeout: float
    profile_dir: Path | None
    register_s: float = 0.0
    variant: str = "baseline"
    watcher: Kube | None = None

    @property
    def deployments_path(self) -> str:
        return f"{GROUP_PATH}/namespaces/{NAMESPACE}/edgedeployments"


async def _scenario(
    *,
    devices: int,
    patterns: tuple[str, ...],
    run_dir: Path,
    env: dict[str, str],
    credentials: Credentials,
    artifacts: list[dict[str, str]],
    timeout: float,
    profile_dir: Path | None,
    lease_interval: float,
    variant: str,
) -> list[RolloutResult]:
    kube = Kube(credentials, connections=64)
    watcher = Kube(credentials, connections=4)
    sim = Simulator(
        kube, namespace=NAMESPACE, slot=SLOT, pattern=patterns[0], lease_interval=lease_interval
    )
    run = Run(devices, run_dir, env, kube, sim, Recorder(SLOT), {}, artifacts, timeout, profile_dir)
    run.variant = variant
    run.watcher = watcher
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def follow(path: str, handle: Callable[[float, dict[str, Any]], None]) -> None:
        def listed(received: float, body: dict[str, Any]) -> None:
            handle(received, {"type": "SYNC", "object": body})

        await watcher.informer(path, stop, on_list=listed, on_event=handle)

    try:
        started = time.monotonic()
        await sim.register(devices)
        run.register_s = time.monotonic() - started
        tasks.append(asyncio.create_task(follow(sim.devices_path, run.recorder.device_event)))
        tasks.append(
            asyncio.create_task(follow(run.deployments_path, run.recorder.deployment_event))
        )
        sim.start()
        run.pids = _find_pids(run_dir)
        run.pids["bench (simulator + recorder)"] = os.getpid()
        return [await _rollout(run, index, pattern) for index, pattern in enumerate(patterns)]
    finally:
        stop.set()
        await sim.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await kube.close()
        await watcher.close()


async def _write_deployment(run: Run, index: int) -> dict[str, Any]:
    artifact = run.artifacts[index % len(run.artifacts)]
    if index == 0:
        body = {
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "EdgeDeployment",
            "metadata": {"name": DEPLOYMENT},
            "spec": {
                "model": {**artifact, "format": "onnx"},
                "selector": {"matchLabels": {"hardware": "cpu"}},
                "strategy": {"waves": WAVES, "maxInFlight": "100%", "bakeSeconds": 0},
            },
        }
        _, written = await run.kube.request("deploy", "POST", run.deployments_path, body)
    else:
        _, written = await run.kube.request(
            "deploy",
            "PATCH",
            f"{run.deployments_path}/{DEPLOYMENT}",
            {"spec": {"model": {**artifact, "format": "onnx"}}},
            headers=MERGE,
        )
    result: dict[str, Any] = written
    return result


async def _rollout(run: Run, index: int, pattern: str) -> RolloutResult:
    from modelfleet.dev.components import start_operator

    started = time.monotonic()
    operator = await asyncio.to_thread(
        start_operator, run.run_dir, run.env, name=f"operator-{run.devices}-{pattern}"
    )
    profiler = None
    try:
        startup_s = await _settle(operator.pid, started)
        rest_before = cpu_seconds(operator.pid)
        await asyncio.sleep(REST_WINDOW_S)
        rest_cpu = (cpu_seconds(operator.pid) - rest_before) / REST_WINDOW_S
        run.sim.pattern = pattern
        calls_before = run.kube.counters.snapshot()
        cpu_pids = {**run.pids, "operator": operator.pid}
        cpu_before = _cpu(cpu_pids)
        busy_before = machine_busy_seconds()
        if run.profile_dir is not None:
            profiler = await _start_profiler(
                operator.pid, run.profile_dir / f"operator-{run.devices}-{pattern}.txt"
            )
        t0 = time.time()
        written = await _write_deployment(run, index)
        generation = int(written["metadata"]["generation"])
        previous = (written.get("status") or {}).get("currentRevision")

        def done(seen: dict[str, Any]) -> bool:
            status = seen.get("status") or {}
            return bool(
                status.get("phase") == "Succeeded"
                and status.get("observedGeneration") == generation
                and status.get("currentRevision") not in (None, previous)
            )

        async def read() -> dict[str, Any]:
            _, body = await run.kube.request("read", "GET", f"{run.deployments_path}/{DEPLOYMENT}")
            found: dict[str, Any] = body if isinstance(body, dict) else {}
            return found

        completed = await run.recorder.wait(done, run.timeout, read)
        t_end = time.time()
        await asyncio.sleep(0.5)  # late writes of the last pass still count
        cpu_after = _cpu(cpu_pids)
        busy = machine_busy_seconds() - busy_before
        peak = peak_rss_mib(operator.pid)
        calls_after = run.kube.counters.snapshot()
    finally:
        if profiler is not None:
            await _stop_profiler(profiler)
        await asyncio.to_thread(operator.stop)
    revision = int(run.recorder.deployment.get("status", {}).get("currentRevision") or index + 1)
    statuses = [
        seconds
        for ended, seconds in run.kube.counters.latencies.get("status", [])
        if t0 <= ended <= t_end + 0.5
    ]
    return _result(
        run,
        pattern=pattern,
        revision=revision,
        completed=completed,
        window=(t0, t_end + 0.5),
        calls=(calls_before, calls_after),
        cpu={k: cpu_after.get(k, 0.0) - v for k, v in cpu_before.items()},
        peak=peak,
        rest_cpu=rest_cpu,
        status_latencies=statuses,
        busy=busy,
        startup_s=startup_s,
    )


async def _start_profiler(pid: int, out: Path) -> asyncio.subprocess.Process | None:
    """py-spy on the operator for the rollout (if py-spy is installed): a text flame summary."""
    import shutil
    import sys

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
        "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _stop_profiler(process: asyncio.subprocess.Process) -> None:
    import signal

    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=30)


def _result(
    run: Run,
    *,
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
) -> RolloutResult:
    from modelfleet.operator.rollout.waves import wave_sizes

    recorder = run.recorder
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
    sizes = wave_sizes(WAVES, run.devices)
    spans = []
    first = 0
    for last in sizes:
        if last > first and last <= len(assigned_times):
            spans.append(assigned_times[last - 1] - assigned_times[first])
        first = last
    return RolloutResult(
        devices=run.devices,
        pattern=pattern,
        revision=revision,
        completed=completed,
        end_to_end_s=end - 0.5 - start,
        rollout_s=rollout_s,
        healthy=len(healthy),
        operator_device_writes=_in(recorder.device_spec_writes, start, end),
        operator_status_writes=_in(recorder.deployment_status_writes, start, end),
        device_status_writes=after.get("status", 0) - before.get("status", 0),
        apiserver_seen_status_writes=_in(recorder.device_status_writes, start, end),
        lease_renewals=after.get("lease", 0) - before.get("lease", 0),
        wave_latencies=wave_advance_latencies(sizes, assigned_times, healthy_by_position),
        wave_assign_spans=spans,
        device_lags=[healthy[n] - assigned[n] for n in order if n in healthy],
        status_latencies=status_latencies,
        cpu_s=cpu,
        operator_peak_rss_mib=peak,
        operator_rest_cpu=rest_cpu,
        register_s=run.register_s,
        variant=run.variant,
        machine_busy_s=busy,
        window_s=end - start,
        operator_startup_s=startup_s,
        watch_restarts=run.kube.watch_restarts + (run.watcher.watch_restarts if run.watcher else 0),
    )


@dataclass(frozen=True)
class Variant:
    """What a fleet run changes from the product as it is: the simulated agents' lease renewal
    interval, or a prototype operator (PYTHONPATH to a tree holding a changed `modelfleet`)."""

    name: str = "baseline"
    lease_interval: float = 60.0
    operator_pythonpath: str | None = None


def run_size(
    devices: int,
    work: Path,
    *,
    patterns: tuple[str, ...],
    profile_dir: Path | None,
    variant: Variant,
) -> list[RolloutResult]:
    from modelfleet.dev.environment import dev_environment
    from modelfleet.kube import api_client
    from modelfleet.storage import Storage

    run_dir = work / f"fleet-{devices}-{variant.name}"
    with dev_environment(run_dir, kubernetes=True, object_storage=True) as env:
        assert env.apiserver is not None
        from kubernetes import client

        with api_client(env.apiserver.kubeconfig) as api:
            client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
            )
        storage = Storage.from_env(env.env())
        artifacts = [
            _artifact_body(storage, f"bench/{name}/model.onnx", os.urandom(4096))
            for name in ("a", "b")
        ]
        operator_env = env.env()
        if variant.operator_pythonpath:
            operator_env["PYTHONPATH"] = variant.operator_pythonpath
        pki = env.apiserver.pki
        credentials = Credentials(env.apiserver.url, pki.ca_cert, pki.admin_cert, pki.admin_key)
        return asyncio.run(
            _scenario(
                devices=devices,
                patterns=patterns,
                run_dir=run_dir,
                env=operator_env,
                credentials=credentials,
                artifacts=artifacts,
                timeout=max(120.0, devices * 0.5),
                profile_dir=profile_dir,
                lease_interval=variant.lease_interval,
                variant=variant.name,
            )
        )


def run(
    work: Path,
    *,
    sizes: tuple[int, ...],
    profile_dir: Path | None = None,
    variant: Variant | None = None,
    patterns: tuple[str, ...] = ("agent-slow", "agent"),
) -> Section:
    section = Section("fleet", "1. Fleet control plane: rollout with zero bake time")
    results: list[RolloutResult] = []
    variant = variant or Variant()
    for devices in sizes:
        results.extend(
            run_size(
                devices,
                work,
                patterns=patterns,
                profile_dir=profile_dir,
                variant=variant,
            )
        )
    _render(section, results, variant.lease_interval)
    return section


def _render(section: Section, results: list[RolloutResult], lease_interval: float) -> None:
    main = Table(
        "Rollout (waves 1%/10%/50%/100%, maxInFlight 100%, bakeSeconds 0)",
        (
            "devices",
            "status pattern",
            "variant",
            "done",
            "first assigned → last healthy (s)",
            "device updates/min",
            "spec write → Succeeded (s)",
            "wave advance p50 / max (s)",
            "register (s)",
        ),
    )
    writes = Table(
        "API writes per device per rollout (leases separately)",
        (
            "devices",
            "pattern",
            "operator: EdgeDevice spec",
            "operator: EdgeDeployment status (per device)",
            "device: status (client count)",
            "device: status (seen by watch)",
            "total writes/device",
            "lease renewals/device during rollout",
        ),
    )
    cost = Table(
        "CPU seconds during the rollout window and operator memory",
        (
            "devices",
            "pattern",
            "operator CPU s",
            "operator CPU ms/device",
            "operator peak RSS MiB",
            "operator start-up (s)",
            "operator CPU s/s at rest (before rollout)",
            "kube-apiserver CPU s",
            "etcd CPU s",
            "simulator+recorder CPU s",
            "machine busy (of 2 cores x window)",
            "other users' CPU s (noise)",
        ),
    )
    timeline = Table(
        "Where the time goes",
        (
            "devices",
            "pattern",
            "per wave: first → last device assigned (s)",
            "device assigned → healthy p50 / p99 (s)",
            "device status patch latency p50 / p99 (ms)",
        ),
    )
    for r in results:
        lat = r.wave_latencies
        main.add(
            r.devices,
            r.pattern,
            r.variant,
            r.completed,
            r.rollout_s,
            r.updates_per_min,
            r.end_to_end_s,
            f"{fmt(percentile(lat, 50))} / {fmt(r.wave_advance_max)}",
            r.register_s,
        )
        writes.add(
            r.devices,
            r.pattern,
            r.per_device(r.operator_device_writes),
            r.per_device(r.operator_status_writes),
            r.per_device(r.device_status_writes),
            r.per_device(r.apiserver_seen_status_writes),
            r.writes_per_device,
            r.per_device(r.lease_renewals),
        )
        cpu = r.cpu_s
        cost.add(
            r.devices,
            r.pattern,
            cpu.get("operator", float("nan")),
            ratio(cpu.get("operator", float("nan")) * 1000, r.devices),
            r.operator_peak_rss_mib,
            r.operator_startup_s,
            r.operator_rest_cpu,
            cpu.get("kube-apiserver", float("nan")),
            cpu.get("etcd", float("nan")),
            cpu.get("bench (simulator + recorder)", float("nan")),
            f"{fmt(ratio(r.machine_busy_s, (os.cpu_count() or 1) * r.window_s) * 100)}%",
            r.others_cpu_s,
        )
        timeline.add(
            r.devices,
            r.pattern,
            " / ".join(fmt(x) for x in r.wave_assign_spans),
            f"{fmt(percentile(r.device_lags, 50))} / {fmt(percentile(r.device_lags, 99))}",
            f"{fmt(percentile(r.status_latencies, 50) * 1000)} / "
            f"{fmt(percentile(r.status_latencies, 99) * 1000)}",
        )
        if r.watch_restarts:
            section.notes.append(
                f"{r.devices} devices, {r.pattern}: watches restarted {r.watch_restarts} times "
                "(relisted; times of events in a gap are the relist time)."
            )
    section.tables += [main, writes, cost, timeline]
    sizes = sorted({r.devices for r in results})
    if len(sizes) > 1:
        growth = Table(
            f"Growth from {sizes[0]:,} to {sizes[-1]:,} devices (ratio, x{sizes[-1] // sizes[0]} "
            "devices)",
            ("pattern", "rollout time", "updates/min", "operator CPU", "operator peak RSS",
             "writes/device"),
        )  # fmt: skip
        for pattern in sorted({r.pattern for r in results}):
            small = next(
                (r for r in results if r.devices == sizes[0] and r.pattern == pattern), None
            )
            large = next(
                (r for r in results if r.devices == sizes[-1] and r.pattern == pattern), None
            )
            if small and large:
                growth.add(
                    pattern,
                    ratio(large.rollout_s, small.rollout_s),
                    ratio(large.updates_per_min, small.updates_per_min),
                    ratio(large.cpu_s.get("operator", 0.0), small.cpu_s.get("operator", 0.0)),
                    ratio(large.operator_peak_rss_mib, small.operator_peak_rss_mib),
                    ratio(large.writes_per_device, small.writes_per_device),
                )
        section.tables.append(growth)
    top = max(sizes) if sizes else 0
    for r in results:
        if r.devices != top:
            continue
        label = f"{r.devices:,} devices, {r.pattern}"
        section.target(
            f"device updates/min ({label})",
            fmt(r.updates_per_min),
            f">= {TARGET_UPDATES_PER_MIN:,.0f}",
            meets(r.updates_per_min, TARGET_UPDATES_PER_MIN, higher_is_better=True),
        )
        section.target(
            f"API writes/device, leases excluded ({label})",
            fmt(r.writes_per_device),
            f"<= {TARGET_WRITES_PER_DEVICE:g}",
            meets(r.writes_per_device, TARGET_WRITES_PER_DEVICE, higher_is_better=False),
        )
        section.target(
            f"wave advance, worst ({label})",
            f"{fmt(r.wave_advance_max)} s",
            f"<= {TARGET_WAVE_ADVANCE_S:g} s",
            meets(r.wave_advance_max, TARGET_WAVE_ADVANCE_S, higher_is_better=False),
        )
    section.notes += [
        "Simulated devices share one namespace-wide watch (see bench/simulator.py); leases are "
        f"renewed every {lease_interval:g} s (the agent's "
        "default: every 60 s, 240 s lease).",
        "The second rollout of each size (`agent`) is a new revision over the first: it has a "
        "stable revision, so the planner also keeps devices on stable; each rollout has its own, "
        "freshly started and idle operator process.",
        "Operator writes are counted from a watch (generation changes on EdgeDevices = spec "
        "writes; EdgeDeployment events without a generation change = status writes).",
    ]
