"""Failpoints for real processes, as etcd's gofail: run a component with one function wrapped so
that the process stops itself (SIGSTOP) at an exact point of its work; the test then kills it
(SIGKILL), and the kill lands there, not somewhere near.

    python -m support.breakpoints --at modelfleet.agent.steps:Steps._verify \
        [--after] [--when 'args[2].revision == 2'] -- modelfleet.agent --device-name=...

runs `python -m modelfleet.agent --device-name=...` with `Steps._verify` wrapped: on the first
call for which `--when` holds (evaluated with `args`, `kwargs` and, with `--after`, `result`),
the process writes its pid to `--mark` (if given) and stops, before (or with `--after`, after)
the real call. Only the first hit stops; later calls run through. The component's code is the
product's own: nothing but the moment is chosen. A target that does not exist fails at start,
so a renamed function breaks the test loudly instead of silently never stopping.

Used through `support.faults.stopped_at` and `Fleet.start_agent(stop_at=...)`; used only by
tests (tests/faults).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import runpy
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _resolve(target: str) -> tuple[Any, str, Callable[..., Any]]:
    """`module:Class.method` or `module:function` → (owner, attribute name, function)."""
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    function = getattr(owner, name)
    if not callable(function):
        raise TypeError(f"{target} is not callable")
    return owner, name, function


def install(target: str, *, after: bool, when: str | None, mark: Path | None) -> None:
    owner, name, function = _resolve(target)
    fired = threading.Event()
    lock = threading.Lock()

    def hit(scope: dict[str, Any]) -> bool:
        if fired.is_set():
            return False
        if when is not None and not eval(when, {}, scope):
            return False
        with lock:
            if fired.is_set():
                return False
            fired.set()
        return True

    def stop() -> None:
        if mark is not None:
            mark.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not after and hit({"args": args, "kwargs": kwargs}):
            stop()
        result = function(*args, **kwargs)
        if after and hit({"args": args, "kwargs": kwargs, "result": result}):
            stop()
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m support.breakpoints")
    parser.add_argument("--at", required=True, help="module:qualname of the function")
    parser.add_argument("--after", action="store_true", help="stop after the call returns")
    parser.add_argument("--when", help="Python expression over args, kwargs (and result)")
    parser.add_argument("--mark", type=Path, help="file that gets the pid when stopped")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- module [args...]")
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("name the module to run after --")
    install(options.at, after=options.after, when=options.when, mark=options.mark)
    module, _, function = command[0].partition(":")
    sys.argv = [module, *command[1:]]
    if function:
        getattr(importlib.import_module(module), function)()
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
