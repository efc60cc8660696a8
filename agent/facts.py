"""Device facts for `status.facts`: what a fleet operator selects and debugs by.

Collected at start and refreshed by the runner (free disk changes as models come and go).
ONNX Runtime is imported here, lazily, so `modelfleet --help` stays fast.
"""

from __future__ import annotations

import platform
import shutil
from importlib import metadata
from pathlib import Path

from modelfleet.api.device import DeviceFacts, RuntimeFacts

DISK_GRANULARITY = 1 << 20
"""Free disk is reported in whole MiB, so a few bytes of logs do not make a status write."""


def collect_facts(data_dir: Path) -> DeviceFacts:
    return DeviceFacts(
        arch=platform.machine() or None,
        os=_os_name(),
        agent_version=agent_version(),
        runtime=runtime_facts(),
        free_disk_bytes=free_disk(data_dir),
    )


def runtime_facts() -> RuntimeFacts:
    try:
        import onnxruntime as ort
    except ImportError:
        return RuntimeFacts()
    return RuntimeFacts(
        onnxruntime=str(ort.__version__),
        execution_providers=[str(p) for p in ort.get_available_providers()],
    )


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
