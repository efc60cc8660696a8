"""Device heartbeats for the rollout planner: Lease renewTimes from a plain list + watch.

Agents renew one `coordination.k8s.io/v1` Lease per device (agent/heartbeats.py). As a kopf
index every renewal was a full kopf event (diff-base, cause detection, index bookkeeping):
~2 ms of operator CPU each, 0.2 of a core per 1,000 devices at a 10 s heartbeat, and the Leases
doubled the objects in kopf's roughly quadratic start-up (bench/FINDINGS.md). The planner needs
one timestamp per device, so this keeps exactly that from a list followed by a watch on raw
JSON, relisting when the watch expires (410 Gone) or breaks, as an informer does.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError

from modelfleet.conditions import parse_time
from modelfleet.logs import get_logger

log = get_logger(__name__)
Key = tuple[str, str]
"""(namespace, lease name); a device's Lease is named after the device."""
WATCH_TIMEOUT_S = 300
RETRY_S = 2.0


class WatchExpiredError(Exception):
    """The watch's resourceVersion is gone; the table must be relisted."""


@dataclass
class LeaseTable:
    api: client.ApiClient
    namespaces: tuple[str, ...] = ()
    """Watched namespaces; empty: cluster-wide."""
    _renewed: dict[Key, dt.datetime] = field(default_factory=dict)
    _listed: set[str | None] = field(default_factory=set)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watches: set[Any] = field(default_factory=set)

    @property
    def synced(self) -> bool:
        """False until every scope was listed once: before that each device looks offline."""
        return len(self._listed) == len(self._scopes())

    def renew_time(self, namespace: str, name: str) -> dt.datetime | None:
        return self._renewed.get((namespace, name))

    def start(self) -> None:
        """One daemon thread per scope (not the event loop's executor, which would hold up
        the operator's exit for as long as a watch request stays open)."""
        for scope in self._scopes():
            threading.Thread(
                target=self._follow, args=(scope,), name=f"leases-{scope}", daemon=True
            ).start()

    def stop(self) -> None:
        """Ends the watches now: an open watch also delays an apiserver's graceful shutdown."""
        self._stopping.set()
        for response in list(self._watches):
            response.shutdown()

    def _follow(self, scope: str | None) -> None:
        stop = self._stopping
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    version = self._relist(scope)
                    self._listed.add(scope)
                version = self._watch(scope, version)
            except WatchExpiredError:
                version = None
            except (ApiException, HTTPError, OSError, ValueError, KeyError) as err:
                if stop.is_set():
                    return
                log.warning("lease watch failed; relisting", namespace=scope, error=str(err))
                version = None
                stop.wait(RETRY_S)

    def _scopes(self) -> tuple[str | None, ...]:
        return self.namespaces or (None,)

    def _get(self, scope: str | None, timeout: float, **query: Any) -> Any:
        """The raw response: JSON is read by hand, the client's models are too slow here."""
        leases = client.CoordinationV1Api(self.api)
        options = {"_preload_content": False, "_request_timeout": timeout, **query}
        if scope:
            return leases.list_namespaced_lease(scope, **options)
        return leases.list_lease_for_all_namespaces(**options)

    def _relist(self, scope: str | None) -> str:
        response = self._get(scope, 60)
        try:
            listed = json.loads(response.data)
        finally:
            response.release_conn()
        fresh = {
            key: renewed for key, renewed in map(_renewal, listed["items"]) if renewed is not None
        }
        for key in [k for k in list(self._renewed) if scope is None or k[0] == scope]:
            if key not in fresh:
                self._renewed.pop(key, None)
        self._renewed.update(fresh)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    def _watch(self, scope: str | None, version: str) -> str:
        response = self._get(
            scope,
            WATCH_TIMEOUT_S + 30,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
        )
        self._watches.add(response)
        try:
            for event in _events(response):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(obj.get("message", ""))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    self._renewed.pop(_key(obj), None)
                elif kind in ("ADDED", "MODIFIED"):
                    key, renewed = _renewal(obj)
                    if renewed is not None:
                        self._renewed[key] = renewed
        finally:
            self._watches.discard(response)
            response.release_conn()
        return version


def _events(response: Any) -> Iterator[dict[str, Any]]:
    for line in iter_resp_lines(response):
        if line.strip():
            yield json.loads(line)


def _key(lease: dict[str, Any]) -> Key:
    meta = lease["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _renewal(lease: dict[str, Any]) -> tuple[Key, dt.datetime | None]:
    renewed = (lease.get("spec") or {}).get("renewTime")
    return _key(lease), parse_time(renewed) if renewed else None
