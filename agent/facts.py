"""Device facts for `status.facts`: what a fleet operator selects and debugs by.

Collected at registration and refreshed after the runner's passes, at most every
`every_seconds` (free disk changes as models come and go); written only when they changed.
The engines (`runtime.engines`: ONNX Runtime with its execution providers, OpenVINO with its
devices) and the accelerators (`accelerators`) are asked once per process: loading the engines'
plugins is slow and what is installed does not change under a running agent. They are imported
lazily, so `modelfleet --help` stays fast.
"""

from __future__ import annotations

import functools
import platform
import shutil
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path

from modelfleet import engines
from modelfleet.agent import accelerators
from modelfleet.agent.devices import DeviceApi, retrying
from modelfleet.api.device import AcceleratorFacts, DeviceFacts, EngineFacts, RuntimeFacts
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)

DISK_GRANULARITY = 1 << 20
"""Free disk is reported in whole MiB."""
DISK_STEP = 256 << 20
"""Free disk is written again only once it moved this far from what status holds (or an eighth
of it, when little is left): logs and downloads move it a little all the time, and one write per
changed MiB every 5 minutes was up to 67 status writes/s at 20,000 devices
(bench/FINDINGS.md §1.A). A filling disk is still told while there is room to act."""


class FactsReporter:
    def __init__(
        self,
        devices: DeviceApi,
        data_dir: Path,
        *,
        every_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.devices = devices
        self.data_dir = data_dir
        self.every_seconds = every_seconds
        self.clock = clock
        self.facts: DeviceFacts | None = None
        """What the EdgeDevice's status holds, as far as this agent knows."""
        self.due = 0.0

    def seed(self, facts: DeviceFacts | None) -> None:
        self.facts = facts

    def refresh(self, *, force: bool = False) -> None:
        now = self.clock().timestamp()
        if not force and now < self.due:
            return
        self.due = now + self.every_seconds
        facts = collect_facts(self.data_dir)
        if self.facts is not None and same_facts(facts, self.facts):
            return
        try:
            retrying("facts", lambda: self.devices.write_facts(facts))
        except Exception as err:  # facts are informative; next refresh tries again
            log.warning("facts write failed", error=describe(err))
            return
        self.facts = facts
        log.info(
            "facts updated",
            arch=facts.arch,
            onnxruntime=facts.runtime.onnxruntime,
            accelerators=accelerators.names(facts.accelerators),
        )


def same_facts(found: DeviceFacts, reported: DeviceFacts) -> bool:
    """True when `found` is `reported` but for free disk moved less than `disk_step`."""
    if found.model_copy(update={"free_disk_bytes": reported.free_disk_bytes}) != reported:
        return False
    free, told = found.free_disk_bytes, reported.free_disk_bytes
    if free is None or told is None:
        return free == told
    return abs(free - told) < disk_step(told)


def disk_step(free: int) -> int:
    return max(DISK_GRANULARITY, min(DISK_STEP, free // 8))


def collect_facts(data_dir: Path) -> DeviceFacts:
    return DeviceFacts(
        arch=platform.machine() or None,
        os=_os_name(),
        agent_version=agent_version(),
        runtime=runtime_facts(),
        accelerators=list(installed_accelerators()),
        free_disk_bytes=free_disk(data_dir),
    )


def runtime_facts() -> RuntimeFacts:
    installed = installed_engines()
    onnxruntime = next((e for e in installed if e.name == engines.ONNXRUNTIME), None)
    return RuntimeFacts(
        onnxruntime=onnxruntime.version if onnxruntime else None,
        execution_providers=list(onnxruntime.backends) if onnxruntime else [],
        engines=list(installed),
    )


@functools.cache
def installed_engines() -> tuple[EngineFacts, ...]:
    return tuple(engines.installed())


@functools.cache
def installed_accelerators() -> tuple[AcceleratorFacts, ...]:
    return tuple(accelerators.detect())


def free_disk(data_dir: Path) -> int:
    free = shutil.disk_usage(data_dir).free
    return free - free % DISK_GRANULARITY


def agent_version() -> str | None:
    try:
        return metadata.version("modelfleet")
    except metadata.PackageNotFoundError:
        return None


def _os_name() -> str:
    system = platform.system() or "unknown"
    if system == "Linux":
        try:
            pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
        except OSError:
            pretty = None
        return f"Linux {platform.release()}" + (f" ({pretty})" if pretty else "")
    return f"{system} {platform.release()}".strip()
