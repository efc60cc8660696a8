"""A missing server binary is a readable error that says how to get it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.dev.errors import DevEnvError
from modelfleet.dev.tools import find_tool


def test_missing_binary_says_run_make_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELFLEET_TOOLS", str(tmp_path))
    monkeypatch.setenv("MODELFLEET_TOOLS_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevEnvError, match=r"kube-apiserver not found.*run `make tools`"):
        find_tool("kube-apiserver")


def test_explicit_tools_directory_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = tmp_path / "etcd"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("MODELFLEET_TOOLS", str(tmp_path))
    assert find_tool("etcd") == binary
