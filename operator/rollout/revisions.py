"""Revision bookkeeping for the rollout planner: which artifact is which revision.

Each new release the deployment's spec resolves to (the default artifact's sha256 and each
variant's artifact, selector, runtime and tolerance; variants.py) becomes the next revision
number, recorded in `status.history` (trimmed to `revisionHistoryLimit`, never dropping the
current or the stable record, which rollbacks need). `RolloutProgress` is the part of the
status that carries a rollout from one pass to the next.

Manual rollback (spec.model changed back to an older artifact) is one of two things, chosen
so that a rollback never moves devices needlessly:
- back to the *stable* revision's artifact: the fleet already runs it, so no new rollout.
  The current revision becomes the stable one again (no new number), the abandoned
  revision's record gets outcome RolledBack, and its devices go back at once, without waves
  (Argo Rollouts' fast-track rollback to the stable ReplicaSet);
- back to any other older artifact: a new revision number and record, as Deployments and
  Argo do, rolled out in waves like any new artifact. Agents that kept that artifact (same
  sha256) need no download.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Literal

from modelfleet.api.deployment import EdgeDeploymentStatus, RevisionRecord, VariantArtifact
from modelfleet.conditions import format_time
from modelfleet.operator.rollout.plans import ArtifactRef
from modelfleet.operator.rollout.variants import artifact_for

Mode = Literal["waiting", "rolling", "aborted", "stable"]


@dataclass(frozen=True)
class ResolvedArtifact:
    """The approved artifact the deployment's spec.model resolves to right now, with each
    variant's (empty without spec.variants)."""

    sha256: str
    format: str
    uri: str
    size_bytes: int
    conversion: str | None = None
    conversion_generation: int | None = None
    probe_uri: str | None = None
    variants: tuple[VariantArtifact, ...] = ()

    @property
    def ref(self) -> ArtifactRef:
        """The default artifact: what devices no variant matches run."""
        return ArtifactRef(self.sha256, self.uri, self.format, self.size_bytes, self.probe_uri)

    def same_release(self, record: RevisionRecord | None) -> bool:
        """Whether `record` is this release: the same default artifact and the same variants."""
        return (
            record is not None
            and record.sha256 == self.sha256
            and record.variants == list(self.variants)
        )


@dataclass(frozen=True)
class RolloutProgress:
    """The part of the status that carries the rollout from one pass to the next."""

    history: tuple[RevisionRecord, ...]
    current: int | None
    stable: int | None
    wave: int
    wave_started_at: str | None
    wave_completed_at: str | None
    promoted_wave: int | None

    @classmethod
    def of(cls, status: EdgeDeploymentStatus) -> RolloutProgress:
        return cls(
            history=tuple(sorted(status.history, key=lambda r: r.revision)),
            current=status.current_revision,
            stable=status.stable_revision,
            wave=status.wave or 0,
            wave_started_at=status.wave_started_at,
            wave_completed_at=status.wave_completed_at,
            promoted_wave=status.promoted_wave,
        )

    def record(self, revision: int | None) -> RevisionRecord | None:
        return self._records.get(revision)

    @cached_property
    def _records(self) -> dict[int | None, RevisionRecord]:
        """By revision: a pass looks up a record per device."""
        return {r.revision: r for r in self.history}

    def with_record(self, revision: int | None, **changes: object) -> RolloutProgress:
        """A copy with `changes` made to one history record (records are never mutated)."""
        history = tuple(
            r.model_copy(update=changes) if r.revision == revision else r for r in self.history
        )
        return replace(self, history=history)

    @property
    def mode(self) -> Mode:
        """waiting: no revision yet; rolling; aborted: ended without success; stable."""
        record = self.record(self.current)
        if record is None:
            return "waiting"
        if record.outcome == "Succeeded":
            return "stable"
        if record.finished_at is not None:
            return "aborted"
        return "rolling"


def track_artifact(
    progress: RolloutProgress,
    artifact: ResolvedArtifact | None,
    *,
    history_limit: int,
    last_wave: int,
    highest_seen: int = 0,
    now: datetime,
) -> RolloutProgress:
    """Start a new revision when the artifact changed.

    `highest_seen`: the highest revision of ours any device holds. New numbers are above it
    too, so a number is never reused even if the status (and its history) was lost.
    """
    current = progress.record(progress.current)
    if artifact is None or artifact.same_release(current):
        return _trimmed(progress, history_limit)

    stamp = format_time(now)
    back_to_stable = artifact.same_release(progress.record(progress.stable))
    if current is not None and current.finished_at is None:
        outcome = "RolledBack" if back_to_stable else "Superseded"
        progress = progress.with_record(current.revision, outcome=outcome, finished_at=stamp)
    if back_to_stable:
        progress = replace(
            progress,
            current=progress.stable,
            wave=last_wave,
            wave_started_at=None,
            wave_completed_at=None,
        )
        return _trimmed(progress, history_limit)

    known = [r.revision for r in progress.history]
    revision = 1 + max([*known, progress.current or 0, progress.stable or 0, highest_seen])
    record = RevisionRecord(
        revision=revision,
        sha256=artifact.sha256,
        format=artifact.format,
        uri=artifact.uri,
        size_bytes=artifact.size_bytes,
        probe_uri=artifact.probe_uri,
        conversion=artifact.conversion,
        conversion_generation=artifact.conversion_generation,
        variants=list(artifact.variants),
        started_at=stamp,
        outcome="Progressing",
    )
    progress = replace(
        progress,
        history=(*progress.history, record),
        current=revision,
        wave=0,
        wave_started_at=stamp,
        wave_completed_at=None,
        promoted_wave=None,
    )
    return _trimmed(progress, history_limit)


def artifact_of(
    record: RevisionRecord, labels: Mapping[str, str], *, resolved: ResolvedArtifact | None
) -> ArtifactRef:
    """What a device with `labels` runs in a recorded revision (its variant's artifact): from
    the resolved release when it is the same, else as recorded."""
    if resolved is not None and resolved.same_release(record):
        return artifact_for(resolved, labels)
    return artifact_for(record, labels)


def _trimmed(progress: RolloutProgress, limit: int) -> RolloutProgress:
    """The oldest records go first, but never the current or the stable one."""
    keep = {progress.current, progress.stable}
    history = list(progress.history)
    while len(history) > limit:
        oldest = next((r for r in history if r.revision not in keep), None)
        if oldest is None:
            break
        history.remove(oldest)
    return replace(progress, history=tuple(history))
