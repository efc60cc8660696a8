"""The matrix's witnesses can fail: a rewritten assignment and a `current` link that names the
wrong bytes or vanishes are seen (the cases only ever show them passing)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from support.recorders import AssignmentLog, LinkWatch

pytestmark = [pytest.mark.faults]


def _body(revision: int, url: str, version: str) -> dict[str, Any]:
    assignment = {"revision": revision, "url": url, "sha256": "a" * 64}
    return {"metadata": {"resourceVersion": version}, "spec": {"models": {"cam": assignment}}}


def test_a_second_write_of_one_revision_is_a_double_assignment() -> None:
    log = AssignmentLog(None, "ns")
    log.record(("ns", "dev-1"), None, _body(1, "u1", "1"))
    log.record(("ns", "dev-1"), _body(1, "u1", "1"), _body(2, "u2", "2"))
    assert log.rewrites("cam") == []
    log.record(("ns", "dev-1"), _body(2, "u2", "2"), _body(2, "u3", "3"))
    assert log.rewrites("cam") == ["dev-1 rev 2 at 3"]
    assert log.revisions("cam", "dev-1") == [1, 2, 2]


def _store(root: Path, data: bytes, name: str | None = None) -> Path:
    objects = root / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    path = objects / f"{name or hashlib.sha256(data).hexdigest()}.onnx"
    path.write_bytes(data)
    return path


def _link(root: Path, target: Path) -> None:
    slot = root / "slots" / "cam"
    slot.mkdir(parents=True, exist_ok=True)
    tmp = slot / ".current.tmp"
    os.symlink(os.path.relpath(target, slot), tmp)
    os.replace(tmp, slot / "current")


def test_a_current_link_to_wrong_bytes_or_none_is_broken(tmp_path: Path) -> None:
    good = _store(tmp_path, b"model")
    sha = good.name.removesuffix(".onnx")
    _link(tmp_path, good)
    with LinkWatch([tmp_path], {sha}, slot="cam") as watch:
        time.sleep(0.2)
        assert watch.broken == [] and watch.seen == {sha}
        _link(tmp_path, _store(tmp_path, b"other bytes", name="b" * 64))
        time.sleep(0.2)
        (tmp_path / "slots" / "cam" / "current").unlink()
        time.sleep(0.2)
    assert any("bytes hash to" in b for b in watch.broken), watch.broken
    assert any("FileNotFoundError" in b for b in watch.broken), watch.broken
