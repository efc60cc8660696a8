"""The agent's own EdgeDevice: registration, status writes and the watch that feeds the runner.

Every call names the device (the identity may touch nothing else, see `identity`): reads are a
list or watch with the field selector `metadata.name=<device>`, writes go to the status
subresource as JSON merge patches. A slot's status is written whole, with explicit nulls, so
fields of an earlier phase (an old `reason`) do not linger; a removed slot is a null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import API_VERSION, GROUP, VERSION
from modelfleet.api.device import DeviceFacts, EdgeDevice, SlotStatus
from modelfleet.backoff import Backoff, retry
from modelfleet.informers import Informer, Key, Resource
from modelfleet.kube import AGENT_FIELD_MANAGER
from modelfleet.logs import get_logger

log = get_logger(__name__)
PLURAL = EdgeDevice.PLURAL
EDGE_DEVICES = Resource(GROUP, VERSION, PLURAL)
TIMEOUT = 30.0
"""Seconds for one API call: a hung connection must not stall the agent."""
API_BACKOFF = Backoff(initial=0.5, max=30.0)
"""Registration, status writes and the watch: 0.5 s, doubling to 30 s while the API is away
(a status write gives up after three attempts: the next pass writes it again)."""


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
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                body,
                field_manager=AGENT_FIELD_MANAGER,
                _request_timeout=TIMEOUT,
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
            field_manager=AGENT_FIELD_MANAGER,
            _request_timeout=TIMEOUT,
        )

    def write_slot(self, slot: str, status: SlotStatus | None) -> None:
        value = None if status is None else status.model_dump(by_alias=True, mode="json")
        self.patch_status({"slots": {slot: value}})

    def write_facts(self, facts: DeviceFacts) -> None:
        self.patch_status({"facts": facts.model_dump(by_alias=True, mode="json")})


class DeviceWatch:
    """The latest EdgeDevice, kept by the shared informer: a list, then a watch from the list's
    version; a new list on every error, on expiry (410) and every `relist_seconds` (the
    watch's timeout). `on_change` runs when the device's uid or spec changes, not on the status
    writes the agent makes itself."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        on_change: Callable[[], None],
        relist_seconds: float = 300.0,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self._informer = Informer(
            api,
            EDGE_DEVICES,
            EdgeDevice.model_validate,
            namespaces=(namespace,),
            field_selector=f"metadata.name={name}",
            on_change=self._changed,
            watch_seconds=int(relist_seconds),
            relist_after_watch=True,
            backoff=API_BACKOFF,
        )

    def latest(self) -> EdgeDevice | None:
        return self._informer.get(self.namespace, self.name)

    def wait_synced(self, timeout: float) -> bool:
        return self._informer.wait_synced(timeout)

    def start(self) -> None:
        self._informer.start()

    def stop(self) -> None:
        self._informer.stop()

    def _changed(self, _: Key, old: EdgeDevice | None, new: EdgeDevice | None) -> None:
        if _fingerprint(old) != _fingerprint(new):
            self.on_change()


def _fingerprint(device: EdgeDevice | None) -> Any:
    if device is None:
        return None
    return (device.metadata.get("uid"), device.spec.model_dump())


def retrying(what: str, call: Callable[[], Any], *, attempts: int = 3) -> Any:
    """Retry a short API call on transient failures (connection, 5xx, 429)."""
    return retry(
        call,
        backoff=API_BACKOFF,
        retry_on=_transient,
        attempts=attempts,
        on_retry=lambda attempt, _, __: log.info("api call retry", what=what, attempt=attempt),
    )


def _transient(err: BaseException) -> bool:
    if isinstance(err, ApiException):
        return err.status in (429, 500, 502, 503, 504)
    return isinstance(err, OSError)
