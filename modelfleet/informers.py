"""One list-and-watch, as client-go's informers: a paginated LIST, a WATCH from the list's
resourceVersion, a new LIST when the watch expires (410 Gone) or breaks, and a local store
keyed by (namespace, name) that consumers read instead of asking the API server.

Objects are read as raw JSON (`param_serialize` + `call_api`, lines split by the client's own
`iter_resp_lines`). Each informer is given the resource and a `parse` function that turns an
object's JSON into the view its consumers need (a Lease's renewTime, an EdgeDevice's
DeviceView); views are cached by resourceVersion, so a relist parses only what changed, and
the store holds views, not the JSON (an EdgeDevice's JSON is ~10x its view in memory). A LIST
is applied page by page, so no more than one page of JSON is alive at once. An object `parse`
rejects (ValueError, e.g. version skew with the writer) is logged and its last good view kept.

Why not `kubernetes.watch.Watch` (kubernetes 37), even with `deserialize=False`, which would
spare the generated models (too slow for thousands of objects, absent for custom resources):
with `deserialize=False` its ERROR branch reads `event["raw_object"]`, which only the
deserializing path sets, so a 410 Gone raises KeyError instead of a relist; it tracks the
resourceVersion only while deserializing, so after a dropped connection it resumes from the
version it started with and replays everything since; and it has no LIST, so pagination,
the store, the parse cache and the relist would be ours anyway. What stays hand-written is the
event loop over `iter_resp_lines` (about 30 lines). kopf's indexes were the other candidate
and the reason this module exists for EdgeDevices: kopf's start-up grows quadratically with
the objects it indexes (bench/FINDINGS.md).

Used by the operator's fleet cache (`operator.rollout.fleet_cache`: EdgeDevices,
EdgeDeployments), its Lease table (`operator.rollout.leases`) and the agent's watch on its own
EdgeDevice (`agent.devices`). One daemon thread per watched namespace (not an event loop's
executor, which would hold up the operator's exit while a watch request is open).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from modelfleet.backoff import Backoff, Stopped, retry
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)
V = TypeVar("V")
Key = tuple[str, str]
"""(namespace, name)."""

WATCH_BACKOFF = Backoff(initial=0.5, max=30.0)
"""A failed list or watch is tried again after 0.5 s, doubling to 30 s while it keeps failing."""
LIST_TIMEOUT_S = 60.0
PAGE_SIZE = 500


@dataclass(frozen=True)
class Resource:
    """A collection of the API: `group` "" is the core group."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str | None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


class WatchExpiredError(Exception):
    """The watch's resourceVersion is gone (410); the store must be relisted."""


@dataclass(frozen=True)
class _Entry(Generic[V]):
    version: str
    view: V


class Informer(Generic[V]):
    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        parse: Callable[[dict[str, Any]], V],
        *,
        namespaces: tuple[str, ...] = (),
        field_selector: str | None = None,
        on_change: Callable[[Key, V | None, V | None], None] | None = None,
        watch_seconds: int = 300,
        relist_after_watch: bool = False,
        backoff: Backoff = WATCH_BACKOFF,
        page_size: int = PAGE_SIZE,
    ) -> None:
        """`namespaces` empty: cluster-wide. `on_change(key, old, new)` runs on the watch
        thread for every object whose view was replaced (None: absent). A watch ends after
        `watch_seconds`; the next one continues from the last resourceVersion seen, or from a
        fresh LIST with `relist_after_watch` (a periodic resync)."""
        self.api = api
        self.resource = resource
        self.parse = parse
        self.namespaces = namespaces
        self.field_selector = field_selector
        self.on_change = on_change
        self.watch_seconds = max(1, int(watch_seconds))
        self.relist_after_watch = relist_after_watch
        self.backoff = backoff
        self.page_size = page_size
        self._store: dict[Key, _Entry[V]] = {}
        self._lock = threading.Lock()
        self._listed: set[str | None] = set()
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._responses: set[Any] = set()

    # -- reading -----------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """False until every namespace was listed once: before that the store is partial."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def get(self, namespace: str, name: str) -> V | None:
        with self._lock:
            entry = self._store.get((namespace, name))
        return entry.view if entry else None

    def items(self) -> dict[Key, V]:
        with self._lock:
            return {key: entry.view for key, entry in self._store.items()}

    def in_namespace(self, namespace: str) -> dict[str, V]:
        """name → view of the objects in one namespace."""
        with self._lock:
            return {key[1]: e.view for key, e in self._store.items() if key[0] == namespace}

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        for scope in self._scopes():
            threading.Thread(
                target=self.run, args=(scope,), name=f"{self.resource.plural}-{scope}", daemon=True
            ).start()

    def stop(self) -> None:
        """Ends the watches now: an open watch also delays an API server's graceful shutdown."""
        self._stopping.set()
        for response in list(self._responses):
            response.shutdown()

    def run(self, scope: str | None) -> None:
        """List and watch one namespace (None: all) until `stop`; survives anything the
        server does, backing off while it keeps failing."""
        while not self._stopping.is_set():
            try:
                retry(
                    lambda: self._list_and_watch(scope),
                    backoff=self.backoff,
                    retry_on=lambda err: isinstance(err, Exception),
                    stop=self._stopping,
                    on_retry=lambda _, err, delay: self._failed(scope, err, delay),
                )
            except Stopped:
                return

    def _failed(self, scope: str | None, err: BaseException, delay: float) -> None:
        if not self._stopping.is_set():
            log.warning(
                "watch failed; relisting",
                resource=self.resource.plural,
                namespace=scope,
                error=describe(err),
                retry_in_s=round(delay, 2),
            )

    def _scopes(self) -> tuple[str | None, ...]:
        return self.namespaces or (None,)

    def _list_and_watch(self, scope: str | None) -> None:
        """Returns to be called again at once: the watch expired or a resync is due."""
        version = self._relist(scope)
        while not self._stopping.is_set():
            try:
                version = self._watch(scope, version)
            except WatchExpiredError:
                return
            if self.relist_after_watch:
                return

    # -- list --------------------------------------------------------------------------------

    def _relist(self, scope: str | None) -> str:
        """LIST page by page into the store; objects the LIST no longer has are removed."""
        seen: set[Key] = set()
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.page_size)]
            if token:
                query.append(("continue", token))
            response = self._open(scope, LIST_TIMEOUT_S, query)
            try:
                page = json.loads(response.data)
            finally:
                response.release_conn()
            for obj in page.get("items") or []:
                key = _key(obj)
                seen.add(key)
                self._apply(key, obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        with self._lock:
            gone = [k for k in self._store if (scope is None or k[0] == scope) and k not in seen]
        for key in gone:
            self._apply(key, None)
        self._listed.add(scope)
        if len(self._listed) == len(self._scopes()):
            self._synced.set()
        version: str = meta["resourceVersion"]
        return version

    # -- watch -------------------------------------------------------------------------------

    def _watch(self, scope: str | None, version: str) -> str:
        response = self._open(
            scope,
            self.watch_seconds + 30,
            [
                ("watch", True),
                ("resourceVersion", version),
                ("allowWatchBookmarks", True),
                ("timeoutSeconds", self.watch_seconds),
            ],
            expires=True,
        )
        self._responses.add(response)
        try:
            for event in _events(response):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpiredError(obj.get("message", ""))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    self._apply(_key(obj), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._apply(_key(obj), obj)
                if self._stopping.is_set():
                    break
        finally:
            self._responses.discard(response)
            response.release_conn()
        return version

    def _open(
        self,
        scope: str | None,
        timeout: float,
        query: list[tuple[str, Any]],
        *,
        expires: bool = False,
    ) -> Any:
        """The raw urllib3 response, its body not read yet. `expires`: a 410 answer means the
        resourceVersion asked for is gone (WatchExpiredError)."""
        if self.field_selector:
            query = [*query, ("fieldSelector", self.field_selector)]
        request = self.api.param_serialize(
            "GET",
            self.resource.path(scope),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=timeout).response
        if response.status >= 400:
            body = response.data
            response.release_conn()
            if expires and response.status == 410:
                raise WatchExpiredError(_status_message(body))
            raise ApiException(status=response.status, reason=_status_message(body))
        return response

    # -- store -------------------------------------------------------------------------------

    def _apply(self, key: Key, obj: dict[str, Any] | None) -> None:
        """Put the object's view in the store (None: remove it); parse only a new version."""
        with self._lock:
            old = self._store.get(key)
        if obj is None:
            if old is None:
                return
            with self._lock:
                self._store.pop(key, None)
            new = None
        else:
            version = str(obj.get("metadata", {}).get("resourceVersion", ""))
            if old is not None and old.version == version:
                return
            try:
                entry = _Entry(version, self.parse(obj))
            except ValueError as err:
                log.error(
                    "object not understood; kept the last one",
                    resource=self.resource.plural,
                    object="/".join(key),
                    error=describe(err),
                )
                return
            with self._lock:
                self._store[key] = entry
            new = entry
        if self.on_change is not None:
            self.on_change(key, old.view if old else None, new.view if new else None)


def _events(response: Any) -> Iterator[dict[str, Any]]:
    for line in iter_resp_lines(response):
        if line.strip():
            yield json.loads(line)


def _key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _status_message(body: bytes) -> str:
    """The `message` of a metav1.Status body, else nothing (never the raw body)."""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:200]
