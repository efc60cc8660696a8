"""What device liveness costs at rest: Lease renewals per second and the CPU they take.

    python -m bench.lease_cost [--devices 1000 5000 20000] [--intervals 60 120 0] [--seconds 60]
    python -m bench.lease_cost --devices 1000 --intervals 10 60 --operator [--profile]

Not part of `make bench`. Per fleet size, a fresh control plane: the simulated devices register
(EdgeDevice, facts, Lease) and renew their Leases every interval in turn, spread evenly over
the interval (as jittered agents do); the fleet is otherwise at rest, so renewals are the only
writes. Interval 0: no renewals at all, the baseline the others are compared with. For each
interval it prints, over a window of `--seconds`: renewals per second as the devices counted
them, and the CPU seconds per second of kube-apiserver, etcd, the operator's
side of liveness and the simulator. The operator's side is by default a process holding only
`LeaseTable` (operator/rollout/leases.py: the operator's whole Lease path, list + watch), since
kopf's start-up does not finish at 20,000 devices in reasonable time (bench/FINDINGS.md);
`--operator` runs the real operator instead (with `--profile`, py-spy records its first 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.fleet import NAMESPACE, SLOT, settle
from bench.fleet_measurements import find_pids
from bench.machine import cpu_seconds, machine_busy_seconds, machine_facts
from bench.simulator import Credentials, Kube, Simulator

LEASE_TABLE = """
import sys, time
from modelfleet.kube import api_client
from modelfleet.operator.rollout.leases import LeaseTable
table = LeaseTable(api_client(sys.argv[1]), (sys.argv[2],))
table.start()
time.sleep(10**9)
"""
"""The operator's Lease path alone: what a renewal costs the operator, without kopf."""
OFF = 10.0**9
"""Interval 0 on the command line: no renewals, the control plane's own cost at rest."""


def _start_watcher(env: object, run_dir: Path, operator: bool) -> tuple[int, Callable[[], None]]:
    """The process that watches the Leases as the operator does: (its pid, how to stop it)."""
    from modelfleet.dev.components import start_operator
    from modelfleet.dev.environment import DevEnvironment

    assert isinstance(env, DevEnvironment) and env.apiserver is not None
    if operator:
        process = start_operator(run_dir, env.env(), name="operator-rest")
        return process.pid, process.stop
    table = subprocess.Popen(
        [sys.executable, "-c", LEASE_TABLE, str(env.apiserver.kubeconfig), NAMESPACE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        table.terminate()
        table.wait(10)

    return table.pid, stop


async def _measure(
    env: object,
    run_dir: Path,
    devices: int,
    intervals: list[float],
    seconds: float,
    operator: bool,
    profile: bool,
) -> None:
    from modelfleet.dev.environment import DevEnvironment

    assert isinstance(env, DevEnvironment) and env.apiserver is not None
    pki = env.apiserver.pki
    kube = Kube(Credentials(env.apiserver.url, pki.ca_cert, pki.admin_cert, pki.admin_key))
    sim = Simulator(kube, namespace=NAMESPACE, slot=SLOT, lease_interval=intervals[0] or OFF)
    started = time.monotonic()
    await sim.register(devices)
    print(f"{devices} devices registered in {time.monotonic() - started:.0f} s", flush=True)
    sim.start()
    watcher_pid, stop_watcher = await asyncio.to_thread(_start_watcher, env, run_dir, operator)
    if profile and operator:
        spy = Path(sys.executable).with_name("py-spy")
        out = Path(__file__).with_name("profiles") / f"operator-{devices}-startup.txt"
        subprocess.Popen(
            [str(spy), "record", "--pid", str(watcher_pid), "--format", "raw", "--rate", "50",
             "--nonblocking", "--duration", "20", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    print(f"watcher settled after {await settle(watcher_pid, time.monotonic()):.1f} s", flush=True)
    pids = {**find_pids(run_dir), "watcher": watcher_pid, "simulator": os.getpid()}
    pids.pop("minio", None)
    try:
        for interval in intervals:
            _pace(sim, interval)
            await asyncio.sleep(5.0)
            before = {n: cpu_seconds(p) for n, p in pids.items()}
            busy, calls, at = (
                machine_busy_seconds(),
                kube.counters.calls.get("lease", 0),
                time.monotonic(),
            )
            await asyncio.sleep(seconds)
            window = time.monotonic() - at
            cpu = {n: (cpu_seconds(p) - before[n]) / window for n, p in pids.items()}
            renewals = (kube.counters.calls.get("lease", 0) - calls) / window
            machine = (machine_busy_seconds() - busy) / window
            per_renewal = 1000 * cpu["kube-apiserver"] / renewals if renewals else float("nan")
            print(
                f"| {devices:,} | {interval:g} | {renewals:.1f} | {cpu['kube-apiserver']:.3f} | "
                f"{per_renewal:.2f} | {cpu['etcd']:.3f} | {cpu['watcher']:.3f} | "
                f"{cpu['simulator']:.3f} | {machine:.2f} |",
                flush=True,
            )
    finally:
        stop_watcher()
        await sim.close()
        await kube.close()


def _pace(sim: Simulator, interval: float) -> None:
    """Renew every `interval` (0: never) from now on, the devices spread evenly over it: the
    simulator's own heartbeat tasks would keep their old phases and bunch up on a change."""
    for task in sim.tasks[1:]:  # tasks[0] is the devices' watch
        task.cancel()
    del sim.tasks[1:]
    sim.lease_interval = interval or OFF
    if not interval:
        return
    for index, name in enumerate(sorted(sim.devices)):
        offset = interval * index / len(sim.devices)
        sim.tasks.append(asyncio.create_task(sim._heartbeat(name, offset)))


def main() -> int:
    from kubernetes import client

    from modelfleet.dev.environment import dev_environment
    from modelfleet.kube import api_client

    parser = argparse.ArgumentParser(prog="python -m bench.lease_cost", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--intervals", type=float, nargs="+", default=[60.0, 120.0, 0.0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--operator", action="store_true", help="the real operator watches")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"Command: `python -m bench.lease_cost {' '.join(sys.argv[1:])}`")
    print(*machine_facts().lines(), sep="\n")
    print(
        "\n| devices | renewal interval (s) | renewals/s | kube-apiserver CPU s/s | apiserver "
        "CPU ms/renewal | etcd CPU s/s | watcher CPU s/s | simulator CPU s/s | machine busy "
        "(cores) |\n|---|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    for devices in args.devices:
        with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
            run_dir = Path(tmp) / "lease-cost"
            with dev_environment(run_dir, object_storage=args.operator) as env:
                assert env.apiserver is not None
                with api_client(env.apiserver.kubeconfig) as api:
                    client.CoreV1Api(api).create_namespace(
                        client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
                    )
                asyncio.run(
                    _measure(
                        env,
                        run_dir,
                        devices,
                        args.intervals,
                        args.seconds,
                        args.operator,
                        args.profile,
                    )
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
