"""The fleet benchmark's baselines, measured against the same API server and devices as the
rollouts: a plain client's LIST of every EdgeDevice, and a "raw writer" doing exactly the
writes a rollout needs per device, as fast as the API server takes them.

Raw writer: per device, the spec assignment (a merge patch of `spec.models[slot]` with the
assignment the operator wrote in the last rollout, so the same presigned URL sizes, a new
revision) and then the device's outcome (the whole-slot Healthy status merge patch the
`agent` pattern writes). `concurrency` devices are in flight at once over the raw writer's
own aiohttp session (bench/fleet.py tries 16, which came closest to the API server's limit in
a hand measurement of issue 14, and 64, and keeps the faster). The simulator is paused
meanwhile so it does not add its own status writes. Updates/min = devices / (first write
sent → last write answered) x 60.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bench.fleet_targets import StoredSize, stored_size
from bench.simulator import MERGE, Kube, slot_status
from bench.stats import per_minute

DEFAULT_CONCURRENCY = 16
LIST_PAGE = 500
"""The operator's informer page size (modelfleet.informers.PAGE_SIZE)."""


@dataclass(frozen=True)
class RawResult:
    devices: int
    seconds: float
    writes: int
    errors: int
    concurrency: int

    @property
    def updates_per_min(self) -> float:
        return per_minute(self.devices, self.seconds)


@dataclass(frozen=True)
class Baselines:
    """Per fleet size: the raw writer and an EdgeDevice as stored after the rollouts."""

    raw: RawResult
    stored: StoredSize


async def raw_rollout(
    kube: Kube,
    devices_path: str,
    names: list[str],
    *,
    slot: str,
    assignment: dict[str, Any],
    revision: int,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> RawResult:
    """Assign `revision` to every device, then write its Healthy outcome: two writes each."""
    pending = list(reversed(names))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while pending:
            name = pending.pop()
            path = f"{devices_path}/{name}"
            wire = {**assignment, "revision": revision}
            status, _ = await kube.request(
                "raw", "PATCH", path, {"spec": {"models": {slot: wire}}}, headers=MERGE
            )
            errors += status != 200
            outcome = slot_status("Healthy", revision, revision, wire.get("sha256"), None)
            status, _ = await kube.request(
                "raw",
                "PATCH",
                f"{path}/status",
                {"status": {"slots": {slot: outcome}}},
                headers=MERGE,
            )
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return RawResult(len(names), seconds, 2 * len(names), errors, concurrency)


async def timed_list(kube: Kube, devices_path: str) -> tuple[float, int]:
    """Seconds for one LIST of every EdgeDevice, paginated like the operator's informer and
    decoded to JSON, and how many objects it returned."""
    started = time.perf_counter()
    count, token = 0, ""
    while True:
        query = f"?limit={LIST_PAGE}" + (f"&continue={quote(token)}" if token else "")
        status, page = await kube.request("list", "GET", devices_path + query)
        if status != 200:
            raise RuntimeError(f"LIST {devices_path} answered {status}")
        count += len(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return time.perf_counter() - started, count


async def read_stored(kube: Kube, path: str) -> StoredSize:
    """One object read back as the API server serves it (JSON, managedFields included)."""
    async with kube.session.get(kube.base + path, headers={"Accept": "application/json"}) as r:
        r.raise_for_status()
        return stored_size(await r.read())
