"""The `modelfleet` command (also `kubectl modelfleet`): one group, subcommands per concern.

Subcommands are imported only when invoked, so `modelfleet --help` does not load kopf, Paddle
or ONNX Runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, str] = {
    "agent": "modelfleet.agent.commands:agent_command",
    "approve": "modelfleet.operator.commands:approve",
    "convert": "modelfleet.workers.commands:convert_command",
    "demo": "modelfleet.dev.demo:demo",
    "device": "modelfleet.agent.commands:device_command",
    "dev": "modelfleet.dev.commands:dev",
    "operator": "modelfleet.operator.commands:operator",
    "pause": "modelfleet.rollout_commands:pause",
    "plan": "modelfleet.operator.preview_commands:plan",
    "promote": "modelfleet.rollout_commands:promote",
    "resume": "modelfleet.rollout_commands:resume",
    "rollback": "modelfleet.rollout_commands:rollback",
    "status": "modelfleet.status:status",
    "validate": "modelfleet.workers.commands:validate_command",
}
HELP: dict[str, str] = {
    "agent": "Run the device agent: keep this device's models in line with its EdgeDevice.",
    "approve": "Approve the current generation of a manual-approval ModelConversion.",
    "convert": "Convert a Paddle model directory to ONNX (fp32, fp16 or int8).",
    "demo": "Run the end-to-end demo (conversion, fleet rollout, automatic rollback).",
    "device": "Provision device identities (ServiceAccount, RBAC, kubeconfig).",
    "dev": "Run a local control plane: etcd, kube-apiserver, MinIO (no cluster needed).",
    "operator": "Run the ModelFleet operator.",
    "pause": "Freeze an EdgeDeployment's rollout.",
    "plan": "Preview a rollout against the live fleet: waves, artifacts, skipped devices.",
    "promote": "Release the next wave of a rollout paused between waves.",
    "resume": "Continue a paused EdgeDeployment.",
    "rollback": "Point an EdgeDeployment back at an earlier revision.",
    "status": "Show conversions (per-target error, speedup) and deployments.",
    "validate": "Compare an ONNX model with its Paddle source and report per-output metrics.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, HELP[name]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelfleet")
def cli() -> None:
    """Convert PaddlePaddle models for edge runtimes, prove them, and roll them out to fleets."""


def main() -> None:
    cli()
