"""`modelfleet dev up|down`: the local control plane in the foreground, stopped by a signal."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from types import FrameType

import click

from modelfleet.dev.environment import dev_environment
from modelfleet.dev.errors import DevEnvError
from modelfleet.logs import configure_logging

DEFAULT_ENV_FILE = Path(".modelfleet/dev.env")
DEFAULT_RUN_DIR = Path(".modelfleet/run")
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


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent to reap it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return False
    return fields[0] != "Z"


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
    try:
        with dev_environment(run_dir.resolve(), modelfleet=True) as env:
            env.write_env_file(env_file, extra={PID_KEY: str(os.getpid())})
            click.echo(f"modelfleet dev environment ready; logs in {run_dir}/logs")
            click.echo(f"  export $(cat {env_file} | xargs)")
            click.echo("  stop with Ctrl-C or `modelfleet dev down`")
            while True:
                signal.pause()
    except (KeyboardInterrupt, _ShutdownRequestedError):
        click.echo("stopping")
    except DevEnvError as err:
        raise click.ClickException(str(err)) from err
    finally:
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
        if not _running(pid):
            click.echo("stopped")
            return
        time.sleep(0.2)
    raise click.ClickException(f"process {pid} still running after {timeout:.0f}s")
