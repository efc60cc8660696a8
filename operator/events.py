"""Kubernetes Events (events.k8s.io/v1) for the phase transitions of ModelConversions and
EdgeDeployments, so `kubectl describe`, `kubectl events` and event exporters tell the story.

One Event per resource and reason, named by both: a transition that happens again (a rollout
aborting twice, a conversion failing again after a spec change) updates that Event's `series`
(count, lastObservedTime) instead of adding an object, as the Kubernetes event recorder does;
the API server keeps an Event's note immutable, so one whose note changes is replaced.
Events are per deployment, never per device, so a 5,000-device wave emits one Event, not
5,000. Reasons are the Ready condition's; the note is its message. Events are best effort: a
refused write is logged and never fails a reconcile.

Device failures (operator/rollout/device_events.py) are aggregates too: one Event per deployment,
revision and device reason, whose series count is the number of devices that failed so; it is
rewritten only when that number grows, so a restarted operator that counts the same devices
writes nothing new (`EventRecorder.aggregate`).

`transition` is pure (which Event, if any); `EventRecorder` writes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import API_VERSION
from modelfleet.errors import describe
from modelfleet.kube import OPERATOR_FIELD_MANAGER
from modelfleet.logs import get_logger

log = get_logger(__name__)
CONTROLLER = "modelfleet.io/operator"
NOTE_LIMIT = 1024
"""events.k8s.io/v1 refuses notes over 1 KiB."""
_WARNING_PHASES = frozenset(
    {"Failed", "Degraded", "RollingBack", "RolledBack", "ArtifactCorrupted"}
)


@dataclass(frozen=True)
class PhaseEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    note: str
    action: str


def transition(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> PhaseEvent | None:
    """The Event for a status change: a new phase, or a new Ready reason within one; None
    when neither changed (every other pass of a reconciler)."""
    old, new = _ready(before or {}), _ready(after)
    phase, reason = after.get("phase"), new.get("reason")
    if not phase or not reason:
        return None
    if (before or {}).get("phase") == phase and old.get("reason") == reason:
        return None
    kind: Literal["Normal", "Warning"] = "Warning" if phase in _WARNING_PHASES else "Normal"
    note = str(new.get("message") or phase)
    return PhaseEvent(kind, str(reason), _cut(note), str(phase))


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = status.get("conditions") or []
    found: Mapping[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    return found


def _cut(note: str) -> str:
    return note if len(note) <= NOTE_LIMIT else note[: NOTE_LIMIT - 1] + "…"


def event_name(name: str, uid: str, reason: str) -> str:
    return f"{name[:200]}.{hashlib.sha256(f'{uid}/{reason}'.encode()).hexdigest()[:16]}"


def event_body(
    regarding: Mapping[str, Any],
    event: PhaseEvent,
    now: dt.datetime,
    instance: str,
    *,
    key: str | None = None,
) -> dict[str, Any]:
    """The Event; named by `key` (default: the reason) within the regarded object."""
    meta = regarding["metadata"]
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(meta["name"], meta["uid"], key or event.reason),
            "namespace": meta["namespace"],
        },
        "eventTime": _micro(now),
        "reportingController": CONTROLLER,
        "reportingInstance": instance[:128],
        "action": event.action,
        "reason": event.reason,
        "note": event.note,
        "type": event.type,
        "regarding": {
            "apiVersion": API_VERSION,
            "kind": regarding["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
    }


def _micro(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class EventRecorder:
    api: client.ApiClient
    instance: str = os.environ.get("POD_NAME") or socket.gethostname()

    def record(
        self,
        regarding: Mapping[str, Any],
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        event = transition(before, after)
        if event is not None:
            self._write(regarding, event, key=event.reason, first=1, then=lambda seen: seen + 1)

    def aggregate(
        self, regarding: Mapping[str, Any], event: PhaseEvent, *, key: str, count: int
    ) -> bool:
        """Make the Event named by `key` count `count` occurrences; one that already counts as
        many is left alone. False when the write was refused (logged; a later pass retries)."""
        return self._write(
            regarding,
            event,
            key=key,
            first=count,
            then=lambda seen: count if count > seen else None,
        )

    def _write(
        self,
        regarding: Mapping[str, Any],
        event: PhaseEvent,
        *,
        key: str,
        first: int,
        then: Callable[[int], int | None],
    ) -> bool:
        """Create the Event counting `first`; if it exists, make it count `then(its count)`
        (None: leave it). The API server refuses changes to an Event's note and type, so an
        Event whose note or type changes is replaced (keeping its first eventTime), and only
        an unchanged one gets its series patched."""
        now = dt.datetime.now(dt.UTC)
        body = event_body(regarding, event, now, self.instance, key=key)
        events = client.EventsV1Api(self.api)
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            try:
                events.create_namespaced_event(
                    namespace, _counted(body, first, now), field_manager=OPERATOR_FIELD_MANAGER
                )
                return True
            except ApiException as err:
                if err.status != 409:
                    raise
            existing = events.read_namespaced_event(name, namespace)
            count = then(existing.series.count if existing.series else 1)
            if count is None:
                return True
            if existing.note == event.note and existing.type == event.type:
                series = _counted({}, count, now)["series"]
                events.patch_namespaced_event(
                    name, namespace, {"series": series}, field_manager=OPERATOR_FIELD_MANAGER
                )
            else:
                events.delete_namespaced_event(name, namespace)
                if existing.event_time is not None:
                    body["eventTime"] = _micro(existing.event_time)
                events.create_namespaced_event(
                    namespace, _counted(body, count, now), field_manager=OPERATOR_FIELD_MANAGER
                )
        except ApiException as err:  # Events are best effort (module docstring)
            log.warning("event not recorded", name=name, reason=event.reason, error=describe(err))
            return False
        return True


def _counted(body: dict[str, Any], count: int, now: dt.datetime) -> dict[str, Any]:
    """`body` with a series of `count`: events.k8s.io/v1 wants none below 2."""
    if count < 2:
        return body
    return {**body, "series": {"count": count, "lastObservedTime": _micro(now)}}
