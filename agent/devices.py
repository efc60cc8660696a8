"""The agent's own EdgeDevice: registration, status writes and the watch that feeds the runner.

Every call names the device (the identity may touch nothing else, see `identity`): reads are a
list or watch with the field selector `metadata.name=<device>`, writes go to the status
subresource as JSON merge patches. A slot's status is written whole, with explicit nulls, so
fields of an earlier phase (an old `reason`) do not linger; a removed slot is a null.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelfleet.api.base import API_VERSION, GROUP, VERSION
from modelfleet.api.device import DeviceFacts, EdgeDevice, SlotStatus
from modelfleet.logs import get_logger

log = get_logger(__name__)
PLURAL = EdgeDevice.PLURAL
TIMEOUT = 30.0
"""Seconds for one API call: a hung connection must not stall the agent."""


class DeviceApi:
    def __init__(self, api: client.ApiClient, *, namespace: str, name: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.selector = f"metadata.name={name}"

    def read(self) -> tuple[EdgeDevice | None, str]:
        """(the device or None, the list's resourceVersion to watch from)."""
        listing = self.objects.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            field_selector=self.selector,
            _request_timeout=TIMEOUT,
        )
        items = listing.get("items") or []
        version = str(listing.get("metadata", {}).get("resourceVersion", ""))
        return (EdgeDevice.model_validate(items[0]) if items else None), version

    def register(self, labels: Mapping[str, str]) -> EdgeDevice:
        """Create the EdgeDevice if absent (labels are set only here); return it."""
        device, _ = self.read()
        if device is not None:
            current = device.metadata.get("labels") or {}
            differing = {k: v for k, v in labels.items() if current.get(k) != v}
            if differing:
                log.warning("labels differ from --labels; kept as registered", labels=differing)
            return device
        body = {
            "apiVersion": API_VERSION,
            "kind": EdgeDevice.KIND,
            "metadata": {"name": self.name, "labels": dict(labels)},
            "spec": {},
        }
        try:
            created = self.objects.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=TIMEOUT
            )
        except ApiException as err:
            if err.status != 409:
                raise
            device, _ = self.read()
            if device is None:
                raise
            return device
        log.info("device registered", labels=dict(labels))
        return EdgeDevice.model_validate(created)

    def patch_status(self, status: Mapping[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            {"status": dict(status)},
            _request_timeout=TIMEOUT,
        )

    def write_slot(self, slot: str, status: SlotStatus | None) -> None:
        value = None if status is None else status.model_dump(by_alias=True, mode="json")
        self.patch_status({"slots": {slot: value}})

    def write_facts(self, facts: DeviceFacts) -> None:
        self.patch_status({"facts": facts.model_dump(by_alias=True, mode="json")})


class DeviceWatch:
    """Keeps the latest EdgeDevice in memory: list, then watch from the list's version; a new
    list on every error, on expiry (410) and every `relist_seconds` (the watch's timeout)."""

    def __init__(
        self,
        devices: DeviceApi,
        *,
        on_change: Callable[[], None],
        relist_seconds: float = 300.0,
        stop: threading.Event,
    ) -> None:
        self.devices = devices
        self.on_change = on_change
        self.relist_seconds = max(1, int(relist_seconds))
        self.stop = stop
        self._lock = threading.Lock()
        self._device: EdgeDevice | None = None
        self._synced = threading.Event()

    def latest(self) -> EdgeDevice | None:
        with self._lock:
            return self._device

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                device, version = self.devices.read()
                self._set(device)
                self._synced.set()
                self._watch(version)
                failures = 0
            except Exception as err:  # the watch must survive anything the server does
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 30.0)
                log.warning("device watch failed", error=_describe(err), retry_in_s=delay)
                self.stop.wait(delay)

    def _watch(self, version: str) -> None:
        stream = watch.Watch()
        for event in stream.stream(
            self.devices.objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.devices.namespace,
            PLURAL,
            field_selector=self.devices.selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.relist_seconds,
            _request_timeout=self.relist_seconds + 30,
        ):
            if self.stop.is_set():
                stream.stop()
                return
            kind = event.get("type")
            obj = event.get("object")
            if kind in ("ADDED", "MODIFIED") and isinstance(obj, dict):
                try:
                    self._set(EdgeDevice.model_validate(obj))
                except ValidationError as err:  # version skew with the controller
                    log.error("EdgeDevice not understood; kept the last one", error=str(err))
            elif kind == "DELETED":
                self._set(None)

    def _set(self, device: EdgeDevice | None) -> None:
        with self._lock:
            changed = _fingerprint(self._device) != _fingerprint(device)
            self._device = device
        if changed:
            self.on_change()


def _fingerprint(device: EdgeDevice | None) -> Any:
    if device is None:
        return None
    return (device.metadata.get("uid"), device.spec.model_dump())


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}"
    return f"{type(err).__name__}: {str(err)[:200]}"


def retrying(what: str, call: Callable[[], Any], *, attempts: int = 3) -> Any:
    """Retry a short API call on transient failures (connection, 5xx, 429)."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ApiException as err:
            if err.status not in (429, 500, 502, 503, 504) or attempt == attempts:
                raise
        except OSError:
            if attempt == attempts:
                raise
        log.info("api call retry", what=what, attempt=attempt)
        time.sleep(0.5 * attempt)
    return None
