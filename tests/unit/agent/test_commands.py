"""Command-line parsing, and that loading the commands stays light for `modelfleet --help`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from modelfleet.agent.commands import agent_command, device_command, parse_labels


def test_labels() -> None:
    assert parse_labels("site=berlin, hardware=jetson,,") == {
        "site": "berlin",
        "hardware": "jetson",
    }
    assert parse_labels(None) == {} and parse_labels("empty=") == {"empty": ""}


@pytest.mark.parametrize("text", ["site", "=x", "a=b,c"])
def test_malformed_labels(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_labels(text)


def test_importing_the_commands_loads_no_heavy_module() -> None:
    code = (
        "import sys, modelfleet.agent.commands; "
        "print(sorted(m for m in ('onnxruntime', 'numpy', 'kubernetes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_texts() -> None:
    runner = CliRunner()
    assert "--device-name" in runner.invoke(agent_command, ["--help"]).output
    assert "--out" in runner.invoke(device_command, ["provision", "--help"]).output


def test_an_unbalanced_on_activate_command_is_a_usage_error(tmp_path: Path) -> None:
    argv = ["--device-name=d", f"--data-dir={tmp_path}", "--on-activate=reload 'detector"]
    result = CliRunner().invoke(agent_command, argv)
    assert result.exit_code == 2 and "--on-activate" in result.output
