"""`modelfleet demo`: the end-to-end walk-through (lands with the product-surface issue)."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Run the end-to-end demo (conversion, fleet rollout, automatic rollback)."""
    click.echo("modelfleet demo: not yet - the demo lands with the product-surface issue.")
