"""`modelfleet operator run` and the commands that act on conversions (`approve`)."""

from __future__ import annotations

import click

from modelfleet.api.annotations import APPROVED_GENERATION_ANNOTATION
from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.kube import api_client
from modelfleet.operator.settings import NAMESPACES_ENV, watched_namespaces


@click.group()
def operator() -> None:
    """Run the ModelFleet operator."""


@operator.command("run")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Watch only these (repeatable) [default: MODELFLEET_NAMESPACES, else cluster-wide].",
)
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True)
@click.option("--verbose", is_flag=True)
def run(namespaces: tuple[str, ...], liveness: str, verbose: bool) -> None:
    """Run the operator in the foreground (configuration from MODELFLEET_* env variables).

    kopf's watches and the operator's own list-and-watch tables and resync read one setting
    (flags, else `MODELFLEET_NAMESPACES`): a shard whose kopf watched cluster-wide would plan
    the other shards' deployments with none of their Leases (docs/scale.md)."""
    import os

    import kopf

    import modelfleet.operator.handlers  # noqa: F401 - registers the handlers

    if namespaces:
        os.environ[NAMESPACES_ENV] = ",".join(namespaces)
    namespaces = watched_namespaces(os.environ)
    kopf.configure(verbose=verbose)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        liveness_endpoint=liveness or None,
    )


@click.command()
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--kubeconfig", type=click.Path(exists=True), default=None)
def approve(name: str, namespace: str, kubeconfig: str | None) -> None:
    """Approve the current generation of a ModelConversion with `approval: manual`."""
    from kubernetes import client

    with api_client(kubeconfig) as api:
        objects = client.CustomObjectsApi(api)
        current = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, ModelConversion.PLURAL, name
        )
        generation = current["metadata"]["generation"]
        objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            ModelConversion.PLURAL,
            name,
            {"metadata": {"annotations": {APPROVED_GENERATION_ANNOTATION: str(generation)}}},
        )
    click.echo(f"modelconversion/{name} generation {generation} approved")
