"""`modelfleet dev up|down`: the local control plane in the foreground, stopped by a signal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
from pydantic.alias_generators import to_camel
from rich.console import Console
from rich.table import Table

from modelfleet.dev.component_states import derive_status, process_running, read_records
from modelfleet.dev.environment import dev_environment
from modelfleet.dev.errors import DevEnvError
from modelfleet.dev.supervision import Supervisor
from modelfleet.logs import configure_logging
from modelfleet.status import age

DEFAULT_ENV_FILE = Path(".modelfleet/dev.env")
DEFAULT_RUN_DIR = Path(".modelfleet/run")
STATE_DIR = "state"
"""Under the run dir: the supervisor's component records, read by `dev status`."""
PID_KEY = "MODELFLEET_DEV_PID"


class _ShutdownRequestedError(Exception):
    """Raised from the SIGTERM handler so every `with` block unwinds and stops its server."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _ShutdownRequestedError


def read_env_file(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as err:
        raise click.ClickException(
            f"{path}: no such env file (is `modelfleet dev up` running?)"
        ) from err
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@click.group()
def dev() -> None:
    """Run a local control plane: etcd, kube-apiserver, MinIO, job runner, operator."""


@dev.command("up")
@click.option(
    "--env-file", type=click.Path(path_type=Path), default=DEFAULT_ENV_FILE, show_default=True
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUN_DIR,
    show_default=True,
    help="Data and logs of the servers; emptied at start.",
)
def dev_up(env_file: Path, run_dir: Path) -> None:
    """Start everything, write ENV_FILE, and stay in the foreground until SIGINT/SIGTERM."""
    configure_logging()
    shutil.rmtree(run_dir, ignore_errors=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    supervisor = Supervisor(run_dir.resolve() / STATE_DIR)
    try:
        with dev_environment(run_dir.resolve(), modelfleet=True, supervisor=supervisor) as env:
            env.write_env_file(env_file, extra={PID_KEY: str(os.getpid())})
            click.echo(f"modelfleet dev environment ready; logs in {run_dir}/logs")
            click.echo(f"  export $(cat {env_file} | xargs)")
            click.echo("  stop with Ctrl-C or `modelfleet dev down`; `modelfleet dev status`")
            supervisor.run()
    except (KeyboardInterrupt, _ShutdownRequestedError):
        click.echo("stopping")
    except DevEnvError as err:
        raise click.ClickException(str(err)) from err
    finally:
        supervisor.close()
        env_file.unlink(missing_ok=True)


@dev.command("down")
@click.option(
    "--env-file", type=click.Path(path_type=Path), default=DEFAULT_ENV_FILE, show_default=True
)
@click.option("--timeout", type=float, default=60.0, show_default=True)
def dev_down(env_file: Path, timeout: float) -> None:
    """Stop the environment that `dev up` started with ENV_FILE."""
    values = read_env_file(env_file)
    if PID_KEY not in values:
        raise click.ClickException(
            f"{env_file}: no {PID_KEY}; was it written by `modelfleet dev up`?"
        )
    pid = int(values[PID_KEY])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        env_file.unlink(missing_ok=True)
        click.echo(f"process {pid} was not running; removed {env_file}")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_running(pid):
            click.echo("stopped")
            return
        time.sleep(0.2)
    raise click.ClickException(f"process {pid} still running after {timeout:.0f}s")


@dev.command("status")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUN_DIR,
    show_default=True,
    help="The run dir `dev up` was given.",
)
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def dev_status(run_dir: Path, output: str) -> None:
    """Each component of the environment: running, restarting or stopped, pid, restarts,
    last exit, uptime. Read from the supervisor's records and the live process table."""
    records = read_records(run_dir / STATE_DIR)
    if not records:
        raise click.ClickException(
            f"{run_dir / STATE_DIR}: no component records (is `modelfleet dev up "
            f"--run-dir {run_dir}` running?)"
        )
    now = dt.datetime.now(dt.UTC)
    rows = [derive_status(r, running=process_running, now=now) for r in records]
    if output == "json":
        listed = [{to_camel(k): v for k, v in dataclasses.asdict(row).items()} for row in rows]
        click.echo(json.dumps(listed, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("COMPONENT", "STATE", "PID", "RESTARTS", "LAST EXIT", "UPTIME", "DETAIL"):
        table.add_column(column)
    for row, record in zip(rows, records, strict=True):
        uptime = age(record.started_at, now) if row.uptime_seconds is not None else "-"
        table.add_row(
            row.name,
            row.state,
            str(row.pid or "-"),
            str(row.restarts),
            row.last_exit,
            uptime,
            row.detail,
        )
    (Console() if sys.stdout.isatty() else Console(width=100_000)).print(table)
