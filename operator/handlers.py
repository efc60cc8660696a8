"""kopf wiring: thin handlers that hand every change to the level-triggered controllers.

Only `@kopf.on.event` handlers and indexes are used: they need no finalizer (deleting an
object never hangs while the operator is down) and store no progress (nothing grows in
annotations). kopf fills the indexes from its watches before any handler runs, and Lease
renewals come from their own light watch (operator/rollout/leases.py), so after a restart
the operator sees the whole fleet and its heartbeats before it plans. Periodic re-checks come from a
resync loop, like an informer's resync period; deployments go through a coalescing work queue
so a burst of device updates costs one planning pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.base import GROUP, VERSION, LabelSelector
from modelfleet.api.conversion import ModelConversion
from modelfleet.api.deployment import EdgeDeployment
from modelfleet.api.device import EdgeDevice
from modelfleet.errors import describe
from modelfleet.kube import api_client
from modelfleet.logs import configure_logging, get_logger
from modelfleet.operator import metrics
from modelfleet.operator.conversion.controller import ConversionController
from modelfleet.operator.conversion.jobs import CONVERSION_LABEL, MANAGED_BY, OPERATOR_NAME
from modelfleet.operator.integrity import IntegrityChecker
from modelfleet.operator.rollout.controller import (
    DeploymentClaim,
    DeploymentController,
    DeviceViews,
)
from modelfleet.operator.rollout.leases import LeaseTable
from modelfleet.operator.settings import OperatorSettings
from modelfleet.operator.workqueue import WorkQueue
from modelfleet.storage import Storage

log = get_logger(__name__)


@dataclass
class Runtime:
    """Shared by all handlers. kopf gives each object a shallow copy of the operator's memo,
    so anything a handler must change for everyone lives in this one object."""

    settings: OperatorSettings
    conversions: ConversionController
    deployments: DeploymentController
    leases: LeaseTable
    views: DeviceViews = field(default_factory=DeviceViews)
    queue: WorkQueue = field(init=False)
    indexes: tuple[Any, Any] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_logging()
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelfleet.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # One INFO line per handled event was ~5% of the operator's CPU at 1,000 devices (bench).
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    # The resources are known; scanning would need CRD (and Namespace) list rights that the
    # least-privilege RBAC does not grant, and retries forbidden lists for about a minute.
    settings.scanning.disabled = True
    operator_settings = OperatorSettings.from_env()
    api = api_client()
    storage = Storage.from_env()
    integrity = IntegrityChecker(storage, operator_settings.integrity_check_seconds)
    runtime = Runtime(
        settings=operator_settings,
        conversions=ConversionController(
            settings=operator_settings, storage=storage, api=api, integrity=integrity
        ),
        deployments=DeploymentController(storage=storage, api=api, integrity=integrity),
        leases=LeaseTable(api, operator_settings.namespaces),
    )
    runtime.leases.start()
    runtime.queue = WorkQueue(
        lambda key: _plan_deployment(runtime, key),
        on_error=lambda key, err: metrics.RECONCILE_ERRORS.labels("deployment").inc(),
    )
    metrics.serve()
    runtime.tasks = [
        asyncio.create_task(runtime.queue.run()),
        asyncio.create_task(_resync(runtime)),
    ]
    memo.runtime = runtime


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.leases.stop()
    for task in memo.runtime.tasks:
        task.cancel()


@kopf.index(GROUP, VERSION, EdgeDevice.PLURAL)
def devices_by_namespace(*, namespace: str | None, body: kopf.Body, **_: Any) -> Any:
    return {
        namespace: {
            "metadata": dict(body.metadata),
            "spec": dict(body.spec),
            "status": dict(body.status),
        }
    }


@kopf.index(GROUP, VERSION, EdgeDeployment.PLURAL)
def deployments_by_namespace(*, namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> Any:
    selector = LabelSelector.model_validate(spec.get("selector") or {})
    return {namespace: DeploymentClaim(name=name, slot=spec.get("slot") or name, selector=selector)}


def _remember_indexes(runtime: Runtime, kwargs: dict[str, Any]) -> None:
    """kopf hands indexes only to handlers; the queue's workers read them from the runtime."""
    if runtime.indexes is None:
        runtime.indexes = (kwargs["devices_by_namespace"], kwargs["deployments_by_namespace"])


def _enqueue_namespace(runtime: Runtime, namespace: str) -> None:
    if runtime.indexes is None:
        return
    _, deployments = runtime.indexes
    for claim in deployments.get(namespace, ()):
        runtime.queue.add((namespace, claim.name), delay=0.2)


async def _plan_deployment(runtime: Runtime, key: Hashable) -> float | None:
    if runtime.indexes is None or not runtime.leases.synced:
        return 1.0
    assert isinstance(key, tuple)
    namespace: str = key[0]
    name: str = key[1]
    devices_index, deployments = runtime.indexes
    devices = runtime.views.of(
        namespace, devices_index.get(namespace, ()), runtime.leases.renew_time
    )
    claims = list(deployments.get(namespace, ()))
    return await asyncio.to_thread(
        runtime.deployments.reconcile,
        namespace,
        name,
        devices=devices,
        claims=claims,
        now=dt.datetime.now(dt.UTC),
    )


def _list_conversions(objects: Any, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
    """Cluster-wide, or per watched namespace (a namespaced Role cannot list cluster-wide)."""
    plural = ModelConversion.PLURAL
    if not namespaces:
        items: list[dict[str, Any]] = objects.list_cluster_custom_object(GROUP, VERSION, plural)[
            "items"
        ]
        return items
    return [
        item
        for namespace in namespaces
        for item in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)[
            "items"
        ]
    ]


async def _resync(runtime: Runtime) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(runtime.conversions.api)
    settings = runtime.settings
    while True:
        await asyncio.sleep(settings.resync_seconds)
        try:
            for item in await asyncio.to_thread(_list_conversions, objects, settings.namespaces):
                meta = item["metadata"]
                await asyncio.to_thread(
                    runtime.conversions.reconcile, meta["namespace"], meta["name"]
                )
            if runtime.indexes is not None:
                for namespace in list(runtime.indexes[1].keys()):
                    _enqueue_namespace(runtime, namespace)
        except Exception as err:  # the loop must outlive any one failure
            log.warning("resync failed", error=describe(err))


@kopf.on.event(GROUP, VERSION, ModelConversion.PLURAL)
async def conversion_changed(
    *, type: str, name: str, namespace: str | None, memo: Any, **kwargs: Any
) -> None:
    _remember_indexes(memo.runtime, kwargs)
    if not namespace:
        return
    if type == "DELETED":
        metrics.forget(namespace, name)
        return
    await _reconcile_conversion(memo.runtime, namespace, name)
    _enqueue_namespace(memo.runtime, namespace)


async def _reconcile_conversion(runtime: Runtime, namespace: str, name: str) -> None:
    try:
        await asyncio.to_thread(runtime.conversions.reconcile, namespace, name)
    except Exception:
        metrics.RECONCILE_ERRORS.labels("conversion").inc()
        raise


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY: OPERATOR_NAME})
async def job_changed(*, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    owner = labels.get(CONVERSION_LABEL)
    if owner and namespace:
        await _reconcile_conversion(memo.runtime, namespace, owner)


@kopf.on.event(GROUP, VERSION, EdgeDeployment.PLURAL)
async def deployment_changed(
    *, type: str, name: str, namespace: str | None, memo: Any, **kwargs: Any
) -> None:
    _remember_indexes(memo.runtime, kwargs)
    if namespace and type == "DELETED":
        metrics.forget(namespace, name)
    elif namespace:
        memo.runtime.queue.add((namespace, name))


@kopf.on.event(GROUP, VERSION, EdgeDevice.PLURAL)
async def device_changed(*, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    _remember_indexes(memo.runtime, kwargs)
    if namespace:
        _enqueue_namespace(memo.runtime, namespace)
