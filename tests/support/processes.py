"""Finding processes by their command line: proof that a test left nothing running, and a
server to pause."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes (other than this one) that contain `text`."""
    return list(_mentioning(text).values())


def pid_mentioning(text: str) -> int:
    """The one live process (other than this one) whose command line contains `text`."""
    found = _mentioning(text)
    assert len(found) == 1, f"{len(found)} processes mention {text!r}: {found}"
    return next(iter(found))


def _mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found[int(entry.name)] = cmdline
    return found


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP the process for the block (a server that hangs: connections are accepted by the
    kernel and never answered), SIGCONT after it, whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
