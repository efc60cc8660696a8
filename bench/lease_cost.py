"""The operator's CPU at rest with 1,000 devices, with and without Lease renewals.

    python -m bench.lease_cost [--devices 1000] [--seconds 60]

Not part of `make bench` (about 3 minutes). Registers the simulated devices (renewing their
Leases every 10 s), starts the operator, waits until its start-up settles, prints its CPU
seconds per second over 5 s windows; then switches the renewals to every 60 s and prints
again (the first minute after the switch has no renewals at all). With `--profile`, py-spy
records the operator's first 20 s (its start-up) into bench/profiles/.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fleet import NAMESPACE, SLOT, settle
from bench.machine import cpu_seconds
from bench.simulator import Credentials, Kube, Simulator


async def _measure(env: object, run_dir: Path, devices: int, seconds: float, profile: bool) -> None:
    from modelfleet.dev.components import start_operator
    from modelfleet.dev.environment import DevEnvironment

    assert isinstance(env, DevEnvironment) and env.apiserver is not None
    pki = env.apiserver.pki
    kube = Kube(Credentials(env.apiserver.url, pki.ca_cert, pki.admin_cert, pki.admin_key))
    sim = Simulator(kube, namespace=NAMESPACE, slot=SLOT, lease_interval=10.0)
    await sim.register(devices)
    sim.start()
    started = time.monotonic()
    operator = await asyncio.to_thread(start_operator, run_dir, env.env(), name="operator-rest")
    if profile:
        spy = Path(sys.executable).with_name("py-spy")
        out = Path(__file__).with_name("profiles") / f"operator-{devices}-startup.txt"
        subprocess.Popen(
            [str(spy), "record", "--pid", str(operator.pid), "--format", "raw", "--rate", "50",
             "--nonblocking", "--duration", "20", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    print(f"operator start-up: {await settle(operator.pid, started):.1f} s", flush=True)
    try:
        for label, interval in (("renewals every 10 s", 10.0), ("renewals every 60 s", 60.0)):
            sim.lease_interval = interval
            end = time.monotonic() + seconds
            last, at = cpu_seconds(operator.pid), time.monotonic()
            while time.monotonic() < end:
                await asyncio.sleep(5.0)
                now, cpu = time.monotonic(), cpu_seconds(operator.pid)
                renewals = kube.counters.calls.get("lease", 0)
                rate = (cpu - last) / (now - at)
                print(f"{label}: {rate:.3f} CPU s/s, lease calls so far {renewals}", flush=True)
                last, at = cpu, now
    finally:
        operator.stop()
        await sim.close()
        await kube.close()


def main() -> int:
    from kubernetes import client

    from modelfleet.dev.environment import dev_environment
    from modelfleet.kube import api_client

    parser = argparse.ArgumentParser(prog="python -m bench.lease_cost", description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        run_dir = Path(tmp) / "lease-cost"
        with dev_environment(run_dir) as env:
            assert env.apiserver is not None
            with api_client(env.apiserver.kubeconfig) as api:
                client.CoreV1Api(api).create_namespace(
                    client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
                )
            asyncio.run(_measure(env, run_dir, args.devices, args.seconds, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
