"""A fleet of simulated devices in one asyncio loop, making the agent's API calls.

Per device, as `agent/devices.py` and `agent/heartbeats.py` do: create the EdgeDevice (labels
set once), write its facts to status, create the `coordination.k8s.io` Lease named after it
and renew it every `lease_interval` seconds, jittered as the agent's (merge patch of
renewTime; the agent's defaults: a 600 s lease renewed every 150 s ±10%). When the device's
`spec.models[slot]` names a revision it has not handled, it reports the status phases of
`pattern` as whole-slot merge patches on the status subresource, one after the other, with
no real download, verify or probe in between.

One difference from real agents, on purpose: the devices share one namespace-wide watch
instead of one field-selected watch each (a thousand watches from one Python process would
measure this process, not the control plane). The apiserver therefore fans out fewer watch
events than a real fleet would make it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from modelfleet.agent.heartbeats import LEASE_SECONDS, micro_time, renewal_delay

GROUP_PATH = "/apis/modelfleet.io/v1alpha1"
LEASE_PATH = "/apis/coordination.k8s.io/v1"
MERGE = {"Content-Type": "application/merge-patch+json"}

PATTERNS: dict[str, tuple[str, ...]] = {
    "every-phase": ("Downloading", "Verifying", "Activating", "Healthy"),
    "agent-slow": ("Downloading", "Healthy"),
    "agent": ("Healthy",),
}
"""Status writes per rollout. `every-phase`: the agent with `--report-every-phase` (its default
before commit aeace2f); `agent-slow`: the agent when activation outlasts its progress grace
period (5 s; its default for every activation before the grace existed); `agent`: the agent
when activation is quicker than that, as for these simulated devices (the outcome only)."""


def slot_status(
    phase: str, revision: int, active: int | None, sha256: str | None, previous: int | None
) -> dict[str, Any]:
    """The whole-slot status an agent writes for `phase` of `revision`."""
    healthy = phase == "Healthy"
    return {
        "targetRevision": revision,
        "activeRevision": active,
        "activeSha256": sha256,
        "previousRevision": previous,
        "phase": phase,
        "reason": "ProbePassed" if healthy else "",
        "message": f"{phase.lower()} revision {revision}",
        "probe": {"maxAbs": 0.0, "latencyMs": 0.1} if healthy else None,
        "lastUpdateTime": rfc3339(datetime.now(UTC)),
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Credentials:
    url: str
    ca_cert: Path
    client_cert: Path
    client_key: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass
class Counters:
    """Client-side API calls, by kind."""

    calls: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """kind → (end time, seconds) of each successful call"""

    def timed(self, kind: str, ended: float, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append((ended, seconds))

    def add(self, kind: str, ok: bool = True) -> None:
        target = self.calls if ok else self.errors
        target[kind] = target.get(kind, 0) + 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.calls)


class Kube:
    """A minimal async client: just the calls the simulator and the recorder make."""

    def __init__(
        self, credentials: Credentials, *, connections: int = 64, counters: Counters | None = None
    ) -> None:
        """`counters`: another client's, to count both as one (the simulator's two pools)."""
        self.base = credentials.url
        connector = aiohttp.TCPConnector(limit=connections, ssl=credentials.ssl_context())
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )
        self.counters = counters or Counters()
        self.watch_restarts = 0

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        kind: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]:
        status, payload = 0, None
        for attempt in range(5):
            started = time.perf_counter()
            try:
                async with self.session.request(
                    method, self.base + path, json=body, headers=headers
                ) as response:
                    status = response.status
                    payload = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                self.counters.add(kind, ok=False)
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if status in ok:
                self.counters.add(kind)
                self.counters.timed(kind, time.time(), time.perf_counter() - started)
                return status, payload
            self.counters.add(kind, ok=False)
            if status not in (429, 500, 502, 503, 504):
                return status, payload
            await asyncio.sleep(0.2 * (attempt + 1))
        return status, payload

    async def watch(
        self, path: str, resource_version: str
    ) -> AsyncIterator[tuple[float, dict[str, Any]]]:
        """(receive time, event) from one watch stream until it ends; BOOKMARKs are skipped.
        An ERROR event (e.g. 410 Gone) ends it: the caller lists again, as informers do."""
        url = (
            f"{self.base}{path}?watch=1&allowWatchBookmarks=true"
            f"&resourceVersion={resource_version}&timeoutSeconds=1800"
        )
        async with self.session.get(
            url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        ) as response:
            if response.status != 200:
                return
            async for line in response.content:
                if not line.strip():
                    continue
                received = time.time()
                event = json.loads(line)
                kind = event.get("type")
                if kind == "ERROR":
                    return
                if kind != "BOOKMARK":
                    yield received, event

    async def informer(
        self,
        path: str,
        stop: asyncio.Event,
        *,
        on_list: Callable[[float, dict[str, Any]], None],
        on_event: Callable[[float, dict[str, Any]], None],
    ) -> int:
        """List then watch, again after every end or error, until `stop`; returns restarts."""
        restarts = -1
        while not stop.is_set():
            restarts += 1
            self.watch_restarts += 1 if restarts else 0
            try:
                _, listing = await self.request("list", "GET", path)
                listed = time.time()
                for item in listing.get("items") or []:
                    on_list(listed, item)
                version = str(listing["metadata"]["resourceVersion"])
                async for received, event in self.watch(path, version):
                    on_event(received, event)
            except asyncio.CancelledError:
                raise
            except Exception:  # a benchmark watch must outlive the server's hiccups
                await asyncio.sleep(0.2)
        return restarts


@dataclass
class SimDevice:
    name: str
    labels: dict[str, str]
    handled: int | None = None
    active: int | None = None
    active_sha: str | None = None
    previous: int | None = None


class Simulator:
    def __init__(
        self,
        kube: Kube,
        *,
        leases: Kube | None = None,
        namespace: str,
        slot: str,
        pattern: str = "agent",
        lease_duration: int = LEASE_SECONDS,
        lease_interval: float = LEASE_SECONDS / 4,
    ) -> None:
        self.kube = kube
        self.leases = leases or kube
        """Renewals' own client: through the devices' pool, 133 renewals/s at 20,000 devices
        queued their status writes for 40 s (p50), a limit of the simulator, not of the
        control plane; real devices each have their own connection."""
        self.namespace = namespace
        self.slot = slot
        self.pattern = pattern
        self.lease_duration = lease_duration
        self.lease_interval = lease_interval
        self.devices: dict[str, SimDevice] = {}
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.in_progress: set[asyncio.Task[None]] = set()
        self.on_status: Callable[[str, str, float], None] | None = None
        self.paused = False
        """True: assignments are not acted on (the raw writer writes the outcome itself)."""

    @property
    def devices_path(self) -> str:
        return f"{GROUP_PATH}/namespaces/{self.namespace}/edgedevices"

    @property
    def leases_path(self) -> str:
        return f"{LEASE_PATH}/namespaces/{self.namespace}/leases"

    async def register(self, count: int, *, concurrency: int = 32) -> None:
        """Create `count` devices (EdgeDevice, facts, Lease) as agents do on first start."""
        sites = ("north", "south", "east")
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            name = f"sim-{index:05d}"
            labels = {"site": sites[index % 3], "hardware": "cpu", "channel": "stable"}
            device = SimDevice(name, labels)
            async with gate:
                body = {
                    "apiVersion": "modelfleet.io/v1alpha1",
                    "kind": "EdgeDevice",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {},
                }
                await self.kube.request("register", "POST", self.devices_path, body)
                facts = {
                    "arch": "x86_64",
                    "os": "Linux",
                    "agentVersion": "0.1.0",
                    "runtime": {"onnxruntime": "1.31.1", "executionProviders": ["CPU"]},
                    "freeDiskBytes": 10**10,
                }
                await self.kube.request(
                    "facts",
                    "PATCH",
                    f"{self.devices_path}/{name}/status",
                    {"status": {"facts": facts}},
                    headers=MERGE,
                )
                now = micro_time(datetime.now(UTC))
                lease = {
                    "metadata": {"name": name},
                    "spec": {
                        "holderIdentity": name,
                        "leaseDurationSeconds": self.lease_duration,
                        "renewTime": now,
                        "acquireTime": now,
                    },
                }
                await self.kube.request("lease", "POST", self.leases_path, lease, ok=(201, 409))
            self.devices[name] = device

        await asyncio.gather(*(one(i) for i in range(count)))

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._watch()))
        for index, name in enumerate(sorted(self.devices)):
            offset = self.lease_interval * index / max(1, len(self.devices))
            self.tasks.append(asyncio.create_task(self._heartbeat(name, offset)))

    async def close(self) -> None:
        self.stop.set()
        for task in [*self.tasks, *self.in_progress]:
            task.cancel()
        for task in [*self.tasks, *self.in_progress]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _heartbeat(self, name: str, offset: float) -> None:
        await asyncio.sleep(offset)
        while not self.stop.is_set():
            spec = {
                "holderIdentity": name,
                "leaseDurationSeconds": self.lease_duration,
                "renewTime": micro_time(datetime.now(UTC)),
            }
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await self.leases.request(
                    "lease", "PATCH", f"{self.leases_path}/{name}", {"spec": spec}, headers=MERGE
                )
            await asyncio.sleep(
                renewal_delay(self.lease_interval, first=False, failed=False, draw=random.random())
            )

    async def _watch(self) -> None:
        def seen(_: float, body: dict[str, Any]) -> None:
            self._seen(body)

        def event(_: float, change: dict[str, Any]) -> None:
            if change.get("type") in ("ADDED", "MODIFIED"):
                self._seen(change["object"])

        await self.kube.informer(self.devices_path, self.stop, on_list=seen, on_event=event)

    def _seen(self, body: dict[str, Any]) -> None:
        device = self.devices.get(body["metadata"]["name"])
        assignment = ((body.get("spec") or {}).get("models") or {}).get(self.slot)
        if device is None or not assignment or self.paused:
            return
        revision = int(assignment["revision"])
        if device.handled == revision:
            return
        device.handled = revision
        task = asyncio.create_task(self._activate(device, revision, assignment["sha256"]))
        self.in_progress.add(task)
        task.add_done_callback(self.in_progress.discard)

    async def _activate(self, device: SimDevice, revision: int, sha256: str) -> None:
        for phase in PATTERNS[self.pattern]:
            if phase == "Healthy":
                device.previous, device.active, device.active_sha = (
                    device.active,
                    revision,
                    sha256,
                )
            status = slot_status(phase, revision, device.active, device.active_sha, device.previous)
            await self.kube.request(
                "status",
                "PATCH",
                f"{self.devices_path}/{device.name}/status",
                {"status": {"slots": {self.slot: status}}},
                headers=MERGE,
            )
