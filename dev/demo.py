"""`modelfleet demo` (`make demo`): the whole story on a laptop, with real components.

A local control plane (etcd, kube-apiserver, MinIO, operator, job runner), a small Paddle image
classifier converted to ONNX fp32 and int8 and proven against Paddle Inference, 12 real agents
on three sites, a rollout in waves of one revision with two variants (int8 on ONNX Runtime, fp32
on OpenVINO for one site's Intel PCs), then a deliberately broken artifact that the canary's
probe rejects: the operator rolls it back automatically. Ends with `DEMO OK` or
`DEMO FAILED: reason` and leaves no process behind.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from modelfleet.logs import configure_logging

SITES = ("north", "south", "east")
DEVICES = 12
WAVES: list[int | str] = [1, "50%", "100%"]


class DemoError(Exception):
    """A step of the demo did not reach its expected state; the message says which."""


@dataclass
class Step:
    console: Console

    def __call__(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")


def wait_until(
    what: str, check: Callable[[], Any], *, timeout: float, tick: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if tick:
            tick()
        time.sleep(0.5)
    raise DemoError(f"{what} did not happen within {timeout:.0f}s")


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the run (logs, data) here instead of a temporary directory.",
)
def demo(workdir: Path | None) -> None:
    """Run the end-to-end demo (conversion, fleet rollout, automatic rollback)."""
    from modelfleet.dev.demo_story import run_story

    configure_logging(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module="paddle")
    console = Console()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelfleet-demo-") as scratch:
        root = (workdir or Path(scratch)).resolve()
        try:
            summary = run_story(root, console, Step(console))
        except Exception as err:  # the demo reports every failure in one line
            console.print(f"[red]DEMO FAILED: {err}[/]")
            console.print(f"logs: {root / 'run' / 'logs'}")
            sys.exit(1)
    console.print(f"[green]DEMO OK[/] {summary} in {time.monotonic() - started:.0f}s")
