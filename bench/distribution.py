"""Benchmark 2: artifact distribution from MinIO.

N agents download one artifact at once through the agent's own code path
(`modelfleet.agent.download.download`: presigned URL, 256 KiB chunks, a `should_stop` check
per chunk that takes a lock as `Assignments.moved` does, staging file), one thread each.
The baseline, in the same run and the same way (N threads, same URL, each into its own file),
is a raw GET with `shutil.copyfileobj` and a 1 MiB buffer. Aggregate throughput = N x size /
wall time of the whole batch. Runs alternate (raw, agent, raw, agent) and the best of each is
kept, to take the shared machine's noise out of the ratio.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.report import Section, Table, fmt
from bench.stats import meets, ratio

TARGET_RATIO = 0.8
MIB = 1024 * 1024


def _raw_get(url: str, dest: Path) -> int:
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
        shutil.copyfileobj(response, out, MIB)
    return dest.stat().st_size


def _agent_get(url: str, dest: Path, size: int) -> int:
    from modelfleet.agent.download import download

    lock = threading.Lock()
    latest = {"sha256": "same"}

    def moved() -> bool:
        with lock:
            return latest["sha256"] != "same"

    dest.unlink(missing_ok=True)
    return download(url, dest, size=size, should_stop=moved).received


def _batch(agents: int, fetch: Callable[[Path], int], root: Path) -> tuple[float, int]:
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"agent-{i}.bin" for i in range(agents)]
    for path in paths:
        path.unlink(missing_ok=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=agents) as pool:
        total = sum(pool.map(fetch, paths))
    elapsed = time.perf_counter() - started
    for path in paths:
        path.unlink(missing_ok=True)
    return elapsed, total


def run(work: Path, *, quick: bool) -> Section:
    from modelfleet.dev.environment import dev_environment
    from modelfleet.storage import Storage

    size = (16 if quick else 64) * MIB
    counts = (1, 4) if quick else (1, 4, 16)
    rounds = 2 if quick else 3
    section = Section("distribution", "2. Artifact distribution: agent download vs raw GET")
    table = Table(
        f"Aggregate throughput, one {size // MIB} MiB object (MiB/s, best of {rounds})",
        ("agents", "raw GET", "agent download", "ratio agent / raw"),
    )
    shares: list[float] = []
    with dev_environment(work / "distribution", kubernetes=False) as env:
        storage = Storage.from_env(env.env())
        key = "bench/distribution/model.onnx"
        source = work / "distribution-object.bin"
        with source.open("wb") as out:
            for _ in range(size // MIB):
                out.write(os.urandom(MIB))
        storage.put_file(key, source)
        url = storage.presigned_get_url(key)
        scratch = work / "distribution-downloads"
        for agents in counts:
            raw_best = agent_best = 0.0
            for _ in range(rounds):
                elapsed, total = _batch(agents, lambda p: _raw_get(url, p), scratch)
                assert total == agents * size
                raw_best = max(raw_best, total / MIB / elapsed)
                elapsed, total = _batch(agents, lambda p: _agent_get(url, p, size), scratch)
                assert total == agents * size
                agent_best = max(agent_best, total / MIB / elapsed)
            share = ratio(agent_best, raw_best)
            shares.append(share)
            table.add(agents, raw_best, agent_best, share)
    section.tables.append(table)
    worst = min(shares) if shares else float("nan")
    section.target(
        "agent download / raw GET throughput (worst N)",
        fmt(worst),
        f">= {TARGET_RATIO}",
        meets(worst, TARGET_RATIO, higher_is_better=True),
    )
    section.notes.append(
        "MinIO, the agents and the baseline share the 2 cores: throughput is CPU-bound here, "
        "so the ratio measures the agent's per-byte overhead, not a network."
    )
    return section
