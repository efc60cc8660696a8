"""Integrity at rest: does an approved artifact in object storage still hold the bytes its
manifest promises (size and sha256)?

Called by the conversion controller on every pass, for each stored artifact (a mismatch makes
the conversion `ArtifactCorrupted`, see `corrupted_status`), and by the deployment controller on
every pass, for the artifact its spec resolves to (a mismatch resolves to nothing, so no device
is assigned it; devices already running it keep running) and for any other artifact a plan
assigns (the stable revision's, `intact_actions`). Both hold the same `IntegrityChecker`.

Cost. Each call stats the object (size and ETag, one HEAD request). The full sha256, one
streamed read of the object, runs only when this process knows nothing of the object yet (the
first pass after a start), when its size or ETag changed since the last hash (any overwrite
through the S3 API changes the ETag of a changed object), or when the last hash is older than
the period (`integrityCheckSeconds`, default 300 s), which also catches a change behind the S3
API's back (a disk edited under MinIO) within one period. So a steady fleet costs one HEAD per
artifact and pass plus one read per artifact and period. One lock per object keeps two passes
from hashing the same object at once.

Level-triggered: the verdict comes from storage on every pass and from nothing else; a
restarted operator hashes each artifact once and reaches the same verdict. Restoring the
object (or converting again into the same key) lifts it on the next pass.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from modelfleet.api.base import Condition
from modelfleet.conditions import set_condition
from modelfleet.operator.rollout.plans import Action, ArtifactRef, AssignRevision
from modelfleet.storage import ObjectNotFound, StorageError, parse_s3_uri

ARTIFACT_CORRUPTED: Final = "ArtifactCorrupted"
"""Conversion phase, and the Ready reason of conversions and deployments it blocks."""
DEFAULT_PERIOD_S: Final = 300.0


class ObjectReader(Protocol):
    """The storage calls the checker needs; `modelfleet.storage.Storage` satisfies it."""

    def stat(self, key: str, *, bucket: str | None = None) -> tuple[int, str]: ...

    def sha256(self, key: str, *, bucket: str | None = None) -> tuple[int, str]: ...


@dataclass(frozen=True)
class Found:
    """What storage holds under a key; both None when there is no object."""

    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class Hashed:
    """The last full hash of an object, and the size and ETag it was taken at."""

    size: int
    etag: str
    sha256: str
    at: float
    """Monotonic seconds."""


def needs_hash(cached: Hashed | None, *, size: int, etag: str, now: float, period: float) -> bool:
    """Hash again unless the object is unchanged (size, ETag) since a hash within `period`."""
    return cached is None or cached.size != size or cached.etag != etag or now - cached.at >= period


def mismatch(
    uri: str, *, sha256: str, size: int | None, found: Found, label: str = ""
) -> str | None:
    """None when the stored object matches; otherwise one line naming the target (`label`),
    the object and expected against found. `size` None: only the sha256 is promised (a
    deployment pinned to `{uri, sha256}`)."""
    if found.size is not None and size in (None, found.size) and found.sha256 == sha256:
        return None
    expected = f"{size} bytes, sha256 {sha256}" if size is not None else f"sha256 {sha256}"
    seen = "no object" if found.size is None else f"{found.size} bytes, sha256 {found.sha256}"
    where = f"{label}: {uri}" if label else uri
    return f"{where}: expected {expected}, found {seen}"


def corrupted_status(
    conditions: Sequence[Condition],
    mismatches: Sequence[str],
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Ready=False (ArtifactCorrupted) naming every mismatch; the other conditions stay as they
    are (the artifacts were converted, validated and approved; their bytes changed since)."""
    message = (
        f"{'; '.join(mismatches)}. No device is assigned a corrupted artifact (devices running "
        "it keep it) until the stored object matches its manifest again"
    )
    return set_condition(
        conditions,
        type="Ready",
        status="False",
        reason=ARTIFACT_CORRUPTED,
        message=message,
        now=now,
        observed_generation=generation,
    )


def intact_actions(
    actions: Sequence[Action], *, verified: str | None, check: Callable[[ArtifactRef], str | None]
) -> tuple[list[Action], dict[int, str]]:
    """The actions minus assignments of a corrupted artifact other than the `verified` one
    (sha256; the artifact the spec resolves to, checked before planning): a device catching up
    to a stable revision whose bytes changed is not moved to it. Roll-backs stay: agents keep
    the previous artifact, so they need no download. `check` runs once per artifact.
    Returns the kept actions and, per blocked revision, its mismatch."""
    found: dict[str, str | None] = {}
    kept: list[Action] = []
    blocked: dict[int, str] = {}
    for action in actions:
        if isinstance(action, AssignRevision) and action.artifact.sha256 != verified:
            sha256 = action.artifact.sha256
            if sha256 not in found:
                found[sha256] = check(action.artifact)
            mismatch = found[sha256]
            if mismatch:
                blocked[action.revision] = mismatch
                continue
        kept.append(action)
    return kept, blocked


@dataclass
class IntegrityChecker:
    """Stat every call, hash when `needs_hash` says so (module docstring)."""

    storage: ObjectReader
    period: float = DEFAULT_PERIOD_S
    clock: Callable[[], float] = time.monotonic
    _hashed: dict[tuple[str, str], Hashed] = field(default_factory=dict)
    _locks: defaultdict[tuple[str, str], threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )

    def found(self, uri: str) -> Found:
        """What is stored at `uri` now. While storage cannot be reached, the last hash taken
        (an unreachable store says nothing new about the bytes); StorageError if there is none."""
        bucket, key = parse_s3_uri(uri)
        with self._locks[(bucket, key)]:
            cached = self._hashed.get((bucket, key))
            try:
                size, etag = self.storage.stat(key, bucket=bucket)
            except ObjectNotFound:
                self._hashed.pop((bucket, key), None)
                return Found(None, None)
            except StorageError:
                if cached is None:
                    raise
                return Found(cached.size, cached.sha256)
            now = self.clock()
            if cached is None or needs_hash(
                cached, size=size, etag=etag, now=now, period=self.period
            ):
                hashed_size, sha256 = self.storage.sha256(key, bucket=bucket)
                cached = Hashed(hashed_size, etag, sha256, now)
                self._hashed[(bucket, key)] = cached
            return Found(cached.size, cached.sha256)

    def check(self, uri: str, *, sha256: str, size: int | None, label: str = "") -> str | None:
        """None when `uri` holds what was promised; else the mismatch (`mismatch`)."""
        return mismatch(uri, sha256=sha256, size=size, found=self.found(uri), label=label)
