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

After the rollouts of a size, the same devices get the baselines (bench/raw_writer.py): the
raw writer's two writes per device as fast as the API server takes them, and one EdgeDevice
read back as stored. Before each operator start, one plain LIST of every EdgeDevice is timed;
the operator's start-up is the time until its 'ready to plan' log line.

bench/fleet_measurements.py says how the numbers are taken; bench/fleet_report.py renders
them. The simulated devices are bench/simulator.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet_measurements import (
    Recorder,
    RolloutResult,
    cpu_readings,
    find_pids,
    measure,
)
from bench.fleet_report import render
from bench.fleet_targets import ReadyLine, per_second, ready_line
from bench.machine import cpu_seconds, machine_busy_seconds, peak_rss_mib
from bench.profiler import start_profiler, stop_profiler
from bench.raw_writer import Baselines, raw_rollout, read_stored, timed_list
from bench.report import Section
from bench.simulator import GROUP_PATH, MERGE, Credentials, Kube, Simulator
from modelfleet.agent.heartbeats import LEASE_SECONDS

NAMESPACE = "bench"
SLOT = "detector"
DEPLOYMENT = "detector"
WAVES: list[int | str] = ["1%", "10%", "50%", "100%"]
REST_WINDOW_S = 10.0
SETTLED_CPU = 0.35
"""Operator CPU seconds per second below which its start-up counts as settled (the rest window
starts then); before Leases left kopf it was ~0.2 at rest with 1,000 devices."""
SETTLE_LIMIT_S = 600.0
RAW_REVISION = 1000
DEVICE_CONNECTIONS = 256
"""The simulated devices' status writes in flight at most (real devices: one connection each).
64 held 20,000 devices' reports back: their PATCHes waited 40 s (p50) in the pool."""
RAW_CONCURRENCY = (16, 64, 128)
"""The raw writer runs once per concurrency; the fastest is the baseline. Under load the API
server's latency, not its throughput, bounded 16 writes in flight; on a quiet machine 64 was
faster at 5,000 devices, and the rollout itself has up to 96 writes in flight (32 operator
writers, 64 simulator connections), so 128 is tried too (bench/FINDINGS.md §1.A)."""


def _artifact_body(storage: Any, key: str, payload: bytes) -> dict[str, str]:
    storage.put_bytes(key, payload)
    return {"uri": storage.uri(key), "sha256": hashlib.sha256(payload).hexdigest()}


async def settle(pid: int, started: float) -> float:
    """Seconds from starting the operator until its CPU use over 2 s falls below SETTLED_CPU
    per second (at most SETTLE_LIMIT_S)."""
    await asyncio.sleep(2.0)
    while time.monotonic() - started < SETTLE_LIMIT_S:
        before = cpu_seconds(pid)
        await asyncio.sleep(2.0)
        if (cpu_seconds(pid) - before) / 2.0 < SETTLED_CPU:
            break
    return time.monotonic() - started


async def ready_to_plan(log: Path, started: float, limit: float = SETTLE_LIMIT_S) -> ReadyLine:
    """Polls the operator's log for its 'ready to plan' line; `seconds_since_start` is then
    replaced by the time from `started` (before the process was spawned) to seeing it."""
    while time.monotonic() - started < limit:
        found = ready_line(log.read_text().splitlines()) if log.exists() else None
        if found is not None:
            elapsed = time.monotonic() - started
            return ReadyLine(elapsed, found.listed_in_s, found.devices)
        await asyncio.sleep(0.05)
    return ReadyLine(float("nan"), float("nan"), 0)


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
    writer: Kube | None = None
    """the raw writer's own client: its writes do not queue behind the simulated devices'"""

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
) -> tuple[list[RolloutResult], Baselines]:
    kube = Kube(credentials, connections=DEVICE_CONNECTIONS)
    leases = Kube(credentials, connections=32, counters=kube.counters)
    watcher = Kube(credentials, connections=4)
    sim = Simulator(
        kube,
        leases=leases,
        namespace=NAMESPACE,
        slot=SLOT,
        pattern=patterns[0],
        lease_interval=lease_interval,
    )
    recorder = Recorder(SLOT, DEPLOYMENT)
    run = Run(devices, run_dir, env, kube, sim, recorder, {}, artifacts, timeout, profile_dir)
    run.variant = variant
    run.watcher = watcher
    writer = Kube(credentials, connections=max(RAW_CONCURRENCY))
    run.writer = writer
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
        run.pids = find_pids(run_dir)
        run.pids["bench (simulator + recorder)"] = os.getpid()
        results = [await _rollout(run, index, pattern) for index, pattern in enumerate(patterns)]
        return results, await _baselines(run)
    finally:
        stop.set()
        await sim.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await kube.close()
        await leases.close()
        await watcher.close()
        await writer.close()


async def _baselines(run: Run) -> Baselines:
    """The raw writer on the same devices (simulator paused), and one device as stored."""
    first = f"{run.sim.devices_path}/{min(run.sim.devices)}"
    stored = await read_stored(run.kube, first)
    _, device = await run.kube.request("read", "GET", first)
    assignment = dict(device["spec"]["models"][SLOT])
    assert run.writer is not None
    run.sim.paused = True
    try:
        tries = [
            await raw_rollout(
                run.writer,
                run.sim.devices_path,
                sorted(run.sim.devices),
                slot=SLOT,
                assignment=assignment,
                revision=RAW_REVISION + index,
                concurrency=concurrency,
            )
            for index, concurrency in enumerate(RAW_CONCURRENCY)
        ]
    finally:
        run.sim.paused = False
    raw = max(tries, key=lambda r: r.updates_per_min)
    return Baselines(raw, stored)


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
    from modelfleet.operator.rollout.waves import wave_sizes

    list_s, _ = await timed_list(run.kube, run.sim.devices_path)
    name = f"operator-{run.devices}-{pattern}"
    started = time.monotonic()
    operator = await asyncio.to_thread(start_operator, run.run_dir, run.env, name=name)
    profiler = None
    try:
        ready = await ready_to_plan(run.run_dir / "logs" / f"{name}.log", started)
        startup_s = await settle(operator.pid, started)
        rest_before = cpu_seconds(operator.pid)
        leases_before = run.kube.counters.calls.get("lease", 0)
        await asyncio.sleep(REST_WINDOW_S)
        rest_cpu = (cpu_seconds(operator.pid) - rest_before) / REST_WINDOW_S
        rest_leases = run.kube.counters.calls.get("lease", 0) - leases_before
        run.sim.pattern = pattern
        calls_before = run.kube.counters.snapshot()
        cpu_pids = {**run.pids, "operator": operator.pid}
        cpu_before = cpu_readings(cpu_pids)
        busy_before = machine_busy_seconds()
        if run.profile_dir is not None:
            profiler = await start_profiler(
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
        cpu_after = cpu_readings(cpu_pids)
        busy = machine_busy_seconds() - busy_before
        peak = peak_rss_mib(operator.pid)
        calls_after = run.kube.counters.snapshot()
    finally:
        if profiler is not None:
            await stop_profiler(profiler)
        await asyncio.to_thread(operator.stop)
    revision = int(run.recorder.deployment.get("status", {}).get("currentRevision") or index + 1)
    statuses = [
        seconds
        for ended, seconds in run.kube.counters.latencies.get("status", [])
        if t0 <= ended <= t_end + 0.5
    ]
    watchers = [run.kube, *([run.watcher] if run.watcher else [])]
    return measure(
        run.recorder,
        devices=run.devices,
        sizes=wave_sizes(WAVES, run.devices),
        register_s=run.register_s,
        variant=run.variant,
        watch_restarts=sum(w.watch_restarts for w in watchers),
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
        startup=(list_s, ready.seconds_since_start, ready.listed_in_s),
        rest_lease_writes_per_s=per_second(rest_leases, REST_WINDOW_S),
    )


@dataclass(frozen=True)
class Variant:
    """What a fleet run changes from the product as it is: the simulated agents' lease renewal
    interval, or a prototype operator (PYTHONPATH to a tree holding a changed `modelfleet`)."""

    name: str = "baseline"
    lease_interval: float = LEASE_SECONDS / 4
    operator_pythonpath: str | None = None


def run_size(
    devices: int,
    work: Path,
    *,
    patterns: tuple[str, ...],
    profile_dir: Path | None,
    variant: Variant,
) -> tuple[list[RolloutResult], Baselines]:
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
    baselines: dict[int, Baselines] = {}
    variant = variant or Variant()
    for devices in sizes:
        rollouts, baselines[devices] = run_size(
            devices, work, patterns=patterns, profile_dir=profile_dir, variant=variant
        )
        results.extend(rollouts)
    render(section, results, variant.lease_interval, baselines)
    return section
