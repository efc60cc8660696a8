"""kopf wiring: thin handlers that hand every change to the level-triggered controllers.

Only `@kopf.on.event` handlers are used: they need no finalizer (so deleting a conversion
never hangs while the operator is down) and store no progress (nothing grows in annotations).
Periodic re-checks come from a resync loop, like an informer's resync period.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.kube import api_client
from modelfleet.logs import configure_logging, get_logger
from modelfleet.operator.controller import ConversionController
from modelfleet.operator.jobs import CONVERSION_LABEL, MANAGED_BY, OPERATOR_NAME
from modelfleet.operator.settings import OperatorSettings
from modelfleet.storage import Storage

log = get_logger(__name__)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_logging()
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelfleet.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    operator_settings = OperatorSettings.from_env()
    memo.conversions = ConversionController(
        settings=operator_settings, storage=Storage.from_env(), api=api_client()
    )
    memo.resync = asyncio.create_task(_resync(memo.conversions, operator_settings))


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()


async def _resync(controller: ConversionController, settings: OperatorSettings) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(controller.api)
    while True:
        await asyncio.sleep(settings.resync_seconds)
        try:
            listed = await asyncio.to_thread(
                objects.list_cluster_custom_object, GROUP, VERSION, ModelConversion.PLURAL
            )
            for item in listed["items"]:
                meta = item["metadata"]
                if settings.namespaces and meta["namespace"] not in settings.namespaces:
                    continue
                await asyncio.to_thread(controller.reconcile, meta["namespace"], meta["name"])
        except Exception as err:  # the loop must outlive any one failure
            log.warning("resync failed", error=str(err))


@kopf.on.event(GROUP, VERSION, ModelConversion.PLURAL)
async def conversion_changed(
    *, type: str, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    if type != "DELETED" and namespace:
        await asyncio.to_thread(memo.conversions.reconcile, namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY: OPERATOR_NAME})
async def job_changed(*, labels: kopf.Labels, namespace: str | None, memo: Any, **_: Any) -> None:
    owner = labels.get(CONVERSION_LABEL)
    if owner and namespace:
        await asyncio.to_thread(memo.conversions.reconcile, namespace, owner)
