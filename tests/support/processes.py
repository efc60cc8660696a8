"""Finding processes by their command line: proof that a test left nothing running, and the
pid of a server to pause."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _command_lines() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every live process but this one."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        yield int(entry.name), argv


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes (other than this one) that contain `text`."""
    return [" ".join(argv) for _, argv in _command_lines() if text in " ".join(argv)]


def pid_of(*fragments: str) -> int:
    """The one live process with every fragment in one of its arguments."""
    found = [
        pid
        for pid, argv in _command_lines()
        if all(any(fragment in arg for arg in argv) for fragment in fragments)
    ]
    assert len(found) == 1, f"expected one process with {fragments}, found {found}"
    return found[0]
