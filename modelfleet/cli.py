"""The `modelfleet` command (also `kubectl modelfleet`): one group, subcommands per concern."""

from __future__ import annotations

import click

from modelfleet.devenv.commands import dev


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelfleet")
def cli() -> None:
    """Convert PaddlePaddle models for edge runtimes, prove them, and roll them out to fleets."""


@cli.command()
def demo() -> None:
    """Run the end-to-end demo (conversion, fleet rollout, automatic rollback)."""
    click.echo("modelfleet demo: not yet - the demo lands with the product-surface issue.")


cli.add_command(dev)


def main() -> None:
    cli()
