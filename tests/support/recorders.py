"""Witnesses of a fault case that see every step, not only the end: every write of a device's
assignments and every Job ever created (from a watch: modelfleet.informers), and every target
the agents' `current` links pointed at on disk (sampled). Each answers one invariant of the
fault matrix (docs/faults.md)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.informers import Informer, Key, Resource

Body = dict[str, Any]


@dataclass(frozen=True)
class AssignmentWrite:
    device: str
    slot: str
    assignment: Body | None
    resource_version: str


class AssignmentLog:
    """Every change of every `EdgeDevice.spec.models[slot]` in a namespace, in order, from a
    watch while the `with` block runs (`record` is what the watch calls)."""

    def __init__(self, api: client.ApiClient | None, namespace: str) -> None:
        self.writes: list[AssignmentWrite] = []
        self._lock = threading.Lock()
        self._api, self._namespace = api, namespace
        self._informer: Informer[Body] | None = None

    def record(self, key: Key, old: Body | None, new: Body | None) -> None:
        before = ((old or {}).get("spec") or {}).get("models") or {}
        after = ((new or {}).get("spec") or {}).get("models") or {}
        version = (new or old or {}).get("metadata", {}).get("resourceVersion", "")
        with self._lock:
            for slot in sorted(set(before) | set(after)):
                if before.get(slot) != after.get(slot):
                    self.writes.append(AssignmentWrite(key[1], slot, after.get(slot), version))

    def __enter__(self) -> AssignmentLog:
        assert self._api is not None
        self._informer = Informer(
            self._api,
            Resource(GROUP, VERSION, "edgedevices"),
            lambda body: body,
            namespaces=(self._namespace,),
            on_change=self.record,
        )
        self._informer.start()
        assert self._informer.wait_synced(30), "the EdgeDevice watch never listed"
        return self

    def __exit__(self, *_: object) -> None:
        if self._informer is not None:
            self._informer.stop()

    def of(self, slot: str) -> list[AssignmentWrite]:
        with self._lock:
            return [w for w in self.writes if w.slot == slot]

    def rewrites(self, slot: str) -> list[str]:
        """Writes that changed an assignment without changing its revision: a double
        assignment (a second presigned URL or assignment time for one revision)."""
        last: dict[str, Body | None] = {}
        found = []
        for write in self.of(slot):
            before = last.get(write.device)
            after = write.assignment
            if before and after and before.get("revision") == after.get("revision"):
                found.append(
                    f"{write.device} rev {after.get('revision')} at {write.resource_version}"
                )
            last[write.device] = after
        return found

    def revisions(self, slot: str, device: str) -> list[int | None]:
        """The revisions a device was assigned in `slot`, in order (initial state first)."""
        return [(w.assignment or {}).get("revision") for w in self.of(slot) if w.device == device]


class JobLog:
    """Every Job created in a namespace (by uid), also those since deleted by their TTL."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.created: dict[str, str] = {}
        """uid → Job name."""
        self._lock = threading.Lock()
        self._informer: Informer[Body] = Informer(
            api,
            Resource("batch", "v1", "jobs"),
            lambda body: body["metadata"],
            namespaces=(namespace,),
            on_change=self._changed,
        )

    def _changed(self, _: Key, old: Body | None, new: Body | None) -> None:
        if new is not None:
            with self._lock:
                self.created[new["uid"]] = new["name"]

    def __enter__(self) -> JobLog:
        self._informer.start()
        assert self._informer.wait_synced(30), "the Job watch never listed"
        return self

    def __exit__(self, *_: object) -> None:
        self._informer.stop()

    def names(self, prefix: str = "") -> list[str]:
        """One entry per Job created (a name twice: created, deleted, created again)."""
        with self._lock:
            return sorted(n for n in self.created.values() if n.startswith(prefix))


@dataclass
class LinkWatch:
    """Samples the `slots/<slot>/current` links under the agents' data dirs every 20 ms: once
    a slot has a model, `current` must always name a stored file whose bytes hash to the
    sha256 in its name and that is one of the artifacts the test published."""

    data_dirs: list[Path]
    allowed: Container[str]
    """The published artifacts' sha256s (a live view: artifacts published later count)."""
    slot: str = "*"
    """The slot to watch (a glob); other slots hold other deployments' artifacts."""
    broken: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    _had: set[Path] = field(default_factory=set)
    _hashes: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LinkWatch:
        self._thread = threading.Thread(target=self._run, name="link-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for data_dir in self.data_dirs:
                slots = data_dir / "slots"
                links = list(slots.glob(f"{self.slot}/current")) if slots.is_dir() else []
                for link in {*links, *(p for p in self._had if p.is_relative_to(data_dir))}:
                    self._check(link)

    def _check(self, link: Path) -> None:
        try:
            target = link.parent / os.readlink(link)
            sha = target.name.removesuffix(".onnx")
            digest = (
                self._hashes.get(str(target)) or hashlib.sha256(target.read_bytes()).hexdigest()
            )
        except OSError as err:
            if link in self._had:
                self.broken.append(f"{link}: {type(err).__name__}: {err}")
            return
        self._hashes[str(target)] = digest
        self._had.add(link)
        self.seen.add(sha)
        if digest != sha or sha not in self.allowed:
            self.broken.append(f"{link} -> {target.name} (bytes hash to {digest[:12]})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
