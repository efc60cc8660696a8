"""kopf wiring: thin handlers that hand every change to the level-triggered controllers.

Only `@kopf.on.event` handlers are used (ModelConversions and their Jobs): they need no
finalizer (deleting an object never hangs while the operator is down) and store no progress
(nothing grows in annotations). EdgeDevices, EdgeDeployments and Leases are not kopf's: they
come from the fleet cache's list-and-watches (operator/rollout/fleet_cache.py), because kopf's
start-up grew quadratically with indexed objects; planning starts once their first LISTs are
in, so after a restart the operator sees the whole fleet and its heartbeats before it plans.
Periodic re-checks come from a resync loop, like an informer's resync period; deployments go
through a coalescing work queue so a burst of device updates costs one planning pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.errors import describe
from modelfleet.kube import api_client
from modelfleet.logs import configure_logging, get_logger
from modelfleet.operator import metrics
from modelfleet.operator.conversion.controller import ConversionController
from modelfleet.operator.conversion.jobs import CONVERSION_LABEL, MANAGED_BY, OPERATOR_NAME
from modelfleet.operator.integrity import IntegrityChecker
from modelfleet.operator.rollout.controller import WRITERS, DeploymentClaim, DeploymentController
from modelfleet.operator.rollout.fleet_cache import FleetCache
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
    fleet: FleetCache = field(init=False)
    queue: WorkQueue = field(init=False)
    ready: bool = False
    """All of the fleet cache's first LISTs are in: deployments may be planned."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


STARTED = time.monotonic()
"""When this module was imported: the start of the operator process, near enough."""


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
    api = api_client(connections=WRITERS + 4)  # the device writers and the reconcilers' reads
    storage = Storage.from_env()
    integrity = IntegrityChecker(storage, operator_settings.integrity_check_seconds)
    runtime = Runtime(
        settings=operator_settings,
        conversions=ConversionController(
            settings=operator_settings, storage=storage, api=api, integrity=integrity
        ),
        deployments=DeploymentController(storage=storage, api=api, integrity=integrity),
    )
    runtime.queue = WorkQueue(
        lambda key: _plan_deployment(runtime, key),
        on_error=lambda key, err: metrics.RECONCILE_ERRORS.labels("deployment").inc(),
    )
    loop = asyncio.get_running_loop()

    def enqueue(namespace: str, name: str, delay: float) -> None:
        """From a watch thread; before planning starts `_start_planning` enqueues them all."""
        if runtime.ready and not loop.is_closed():
            loop.call_soon_threadsafe(runtime.queue.add, (namespace, name), delay)

    def deployment_changed(namespace: str, name: str, claim: DeploymentClaim | None) -> None:
        if claim is None:
            metrics.forget(namespace, name)
        else:
            enqueue(namespace, name, 0.0)

    runtime.fleet = FleetCache(
        api_client(),  # its own connections: three held by watches would crowd the writers'
        operator_settings.namespaces,
        on_device=lambda namespace, name: enqueue(namespace, name, 0.2),
        on_deployment=deployment_changed,
    )
    runtime.fleet.start()
    metrics.serve()
    runtime.tasks = [
        asyncio.create_task(runtime.queue.run()),
        asyncio.create_task(_start_planning(runtime)),
        asyncio.create_task(_resync(runtime)),
    ]
    memo.runtime = runtime


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.fleet.stop()
    for task in memo.runtime.tasks:
        task.cancel()


async def _start_planning(runtime: Runtime) -> None:
    """Plans every deployment once the fleet cache's first LISTs are in; from then on device
    and deployment changes enqueue the deployments they concern."""
    while not runtime.fleet.synced:
        await asyncio.sleep(0.05)
    runtime.ready = True
    keys = runtime.fleet.deployment_keys()
    now = time.monotonic()
    log.info(
        "ready to plan",
        seconds_since_start=round(now - STARTED, 3),
        listed_in_s=round(now - runtime.fleet.started_at, 3),
        devices=len(runtime.fleet.devices.items()),
        deployments=len(keys),
    )
    for key in keys:
        runtime.queue.add(key)


def _enqueue_namespace(runtime: Runtime, namespace: str) -> None:
    """A conversion changed: the deployments of its namespace may be waiting for it."""
    if runtime.ready:
        for claim in runtime.fleet.claims(namespace):
            runtime.queue.add((namespace, claim.name), delay=0.2)


async def _plan_deployment(runtime: Runtime, key: Hashable) -> float | None:
    if not runtime.ready:
        return 1.0
    assert isinstance(key, tuple)
    namespace: str = key[0]
    name: str = key[1]
    resting = runtime.deployments.pacing.resting((namespace, name), time.monotonic())
    if resting > 0:  # planned a moment ago: pacing.py
        return resting
    devices = runtime.fleet.device_views(namespace)
    claims = runtime.fleet.claims(namespace)
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
            if runtime.ready:
                for key in runtime.fleet.deployment_keys():
                    runtime.queue.add(key, delay=0.2)
        except Exception as err:  # the loop must outlive any one failure
            log.warning("resync failed", error=describe(err))


@kopf.on.event(GROUP, VERSION, ModelConversion.PLURAL)
async def conversion_changed(
    *, type: str, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
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
