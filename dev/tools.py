"""Finds the server binaries that `make tools` builds (or that a user supplies)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelfleet.dev.errors import DevEnvError

TOOL_NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "minio", "helm")


def _cache_dirs() -> list[Path]:
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = Path(os.environ.get("MODELFLEET_TOOLS_CACHE", cache_home / "modelfleet" / "tools"))
    if not root.is_dir():
        return []
    bins = [d / "bin" for d in root.iterdir() if (d / "bin").is_dir()]
    return sorted(bins, key=lambda d: d.stat().st_mtime, reverse=True)


def find_tool(name: str) -> Path:
    """$MODELFLEET_TOOLS first, then PATH, then the newest `make tools` cache."""
    explicit = os.environ.get("MODELFLEET_TOOLS")
    candidates = [Path(explicit) / name] if explicit else []
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    candidates.extend(d / name for d in _cache_dirs())
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise DevEnvError(
        f"{name} not found in $MODELFLEET_TOOLS, PATH or the tools cache: run `make tools`"
    )
