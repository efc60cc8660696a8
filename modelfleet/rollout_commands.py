"""`modelfleet rollback|promote|pause|resume`: each one declarative patch of an EdgeDeployment.

Rollback is what a GitOps user would do by reverting `spec.model`: the patch pins the chosen
revision's artifact (uri + sha256), because the ModelConversion may since have produced a
different one. A revision with variants cannot be pinned so (a pinned artifact is one file,
variants are several formats of one conversion): rollback refuses it and says so; returning
to a revision without variants also removes `spec.variants`. Promotion names both the
revision and the wave, so a stale promotion can never release a wave of a later rollout.
"""

from __future__ import annotations

from typing import Any

import click

from modelfleet.api.annotations import PROMOTE_ANNOTATION, promotion_value
from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.deployment import EdgeDeployment, EdgeDeploymentStatus
from modelfleet.kube import api_client


def previous_revision(status: EdgeDeploymentStatus) -> int:
    """The revision `rollback` returns to by default: the newest one before the current one,
    like `kubectl rollout undo`.

    Revisions the operator already rolled back are skipped (returning to a model the fleet
    refused helps no one), and so are revisions of the current artifact, since pinning the
    model the fleet runs changes nothing: that was a silent no-op rollback before."""
    history = {record.revision: record for record in status.history}
    current = history.get(status.current_revision) if status.current_revision else None
    if current is None:
        raise click.ClickException("nothing to roll back: no revision has been rolled out yet")
    earlier = [
        record.revision
        for record in status.history
        if record.revision < current.revision
        and record.outcome != "RolledBack"
        and record.sha256 != current.sha256
    ]
    if not earlier:
        raise click.ClickException(
            f"nothing to roll back to: revision {current.revision} is the only one in history "
            f"with a different artifact that was not rolled back"
        )
    return max(earlier)


def rollback_patch(status: EdgeDeploymentStatus, to_revision: int) -> dict[str, Any]:
    """The spec.model patch that returns to `to_revision`."""
    history = {record.revision: record for record in status.history}
    if to_revision not in history:
        known = ", ".join(str(r) for r in sorted(history)) or "none"
        raise click.ClickException(f"revision {to_revision} not in history (known: {known})")
    record = history[to_revision]
    if record.variants:
        raise click.ClickException(
            f"revision {to_revision} has variants ({', '.join(v.name for v in record.variants)}), "
            f"which a pinned artifact cannot carry: restore that revision's spec.model and "
            f"spec.variants (e.g. git revert); the operator then restores each variant's artifact"
        )
    return {
        "spec": {
            "model": {
                "conversion": None,
                "uri": record.uri,
                "sha256": record.sha256,
                "format": record.format,
            },
            "variants": None,
        }
    }


def promote_patch(status: EdgeDeploymentStatus) -> dict[str, Any]:
    if status.current_revision is None or status.wave is None:
        raise click.ClickException("nothing to promote: no rollout in progress")
    value = promotion_value(status.current_revision, status.wave)
    return {"metadata": {"annotations": {PROMOTE_ANNOTATION: value}}}


class _Deployments:
    def __init__(self, kubeconfig: str | None, namespace: str) -> None:
        from kubernetes import client

        self._api = api_client(kubeconfig)
        self._objects = client.CustomObjectsApi(self._api)
        self.namespace = namespace

    def status(self, name: str) -> EdgeDeploymentStatus:
        raw = self._objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, EdgeDeployment.PLURAL, name
        )
        current = dict(raw.get("status") or {})
        current.pop("kopf", None)
        return EdgeDeploymentStatus.model_validate(current)

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self._objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, EdgeDeployment.PLURAL, name, body
        )


_namespace = click.option("--namespace", "-n", default="default", show_default=True)
_kubeconfig = click.option("--kubeconfig", type=click.Path(exists=True), default=None)


@click.command()
@click.argument("name")
@click.option(
    "--to-revision",
    type=int,
    default=None,
    help="Default: the newest earlier revision with a different artifact, not rolled back.",
)
@_namespace
@_kubeconfig
def rollback(name: str, to_revision: int | None, namespace: str, kubeconfig: str | None) -> None:
    """Point an EdgeDeployment back at an earlier revision's artifact."""
    deployments = _Deployments(kubeconfig, namespace)
    status = deployments.status(name)
    target = previous_revision(status) if to_revision is None else to_revision
    patch = rollback_patch(status, target)
    deployments.patch(name, patch)
    model = patch["spec"]["model"]
    click.echo(
        f"edgedeployment/{name} rolled back from revision {status.current_revision} to "
        f"revision {target}: model pinned to {model['uri']} ({model['sha256'][:12]})"
    )


@click.command()
@click.argument("name")
@_namespace
@_kubeconfig
def promote(name: str, namespace: str, kubeconfig: str | None) -> None:
    """Release the next wave of a rollout paused between waves."""
    deployments = _Deployments(kubeconfig, namespace)
    patch = promote_patch(deployments.status(name))
    deployments.patch(name, patch)
    click.echo(
        f"edgedeployment/{name} promoted ({patch['metadata']['annotations'][PROMOTE_ANNOTATION]})"
    )


def _set_paused(name: str, namespace: str, kubeconfig: str | None, paused: bool) -> None:
    _Deployments(kubeconfig, namespace).patch(name, {"spec": {"paused": paused}})
    click.echo(f"edgedeployment/{name} {'paused' if paused else 'resumed'}")


@click.command()
@click.argument("name")
@_namespace
@_kubeconfig
def pause(name: str, namespace: str, kubeconfig: str | None) -> None:
    """Freeze a rollout: no device gets a new assignment until resumed."""
    _set_paused(name, namespace, kubeconfig, paused=True)


@click.command()
@click.argument("name")
@_namespace
@_kubeconfig
def resume(name: str, namespace: str, kubeconfig: str | None) -> None:
    """Continue a paused rollout."""
    _set_paused(name, namespace, kubeconfig, paused=False)
