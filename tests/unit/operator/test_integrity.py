"""Integrity at rest: when a stored artifact counts as corrupted and when it is read again.
What a corrupted artifact does to its conversion and to a deployment is tested with their
planners (unit/conversion/test_plan_conversion.py, unit/planner/test_artifact_corrupted.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from modelfleet.operator.integrity import (
    Found,
    Hashed,
    IntegrityChecker,
    intact_actions,
    mismatch,
    needs_hash,
)
from modelfleet.operator.rollout.plans import ArtifactRef, AssignRevision, RollBack
from modelfleet.storage import ObjectNotFound, StorageError

URI = "s3://modelfleet/artifacts/d/onnx/model.onnx"
GOOD = "a" * 64
BAD = "b" * 64


@pytest.mark.parametrize(
    ("size", "found", "expected"),
    [
        pytest.param(10, Found(10, GOOD), None, id="intact"),
        pytest.param(None, Found(12, GOOD), None, id="pinned: only the sha256 is promised"),
        pytest.param(
            10,
            Found(10, BAD),
            f"onnx: {URI}: expected 10 bytes, sha256 {GOOD}, found 10 bytes, sha256 {BAD}",
            id="same size, other bytes",
        ),
        pytest.param(
            10,
            Found(12, GOOD),
            f"onnx: {URI}: expected 10 bytes, sha256 {GOOD}, found 12 bytes, sha256 {GOOD}",
            id="size differs",
        ),
        pytest.param(
            10,
            Found(None, None),
            f"onnx: {URI}: expected 10 bytes, sha256 {GOOD}, found no object",
            id="deleted",
        ),
        pytest.param(
            None,
            Found(10, BAD),
            f"onnx: {URI}: expected sha256 {GOOD}, found 10 bytes, sha256 {BAD}",
            id="pinned, other bytes",
        ),
    ],
)
def test_mismatch_names_target_object_expected_and_found(
    size: int | None, found: Found, expected: str | None
) -> None:
    assert mismatch(URI, sha256=GOOD, size=size, found=found, label="onnx") == expected


@pytest.mark.parametrize(
    ("cached", "size", "etag", "now", "expected"),
    [
        pytest.param(None, 10, "e1", 0.0, True, id="never hashed (first pass after a start)"),
        pytest.param(Hashed(10, "e1", GOOD, 0.0), 10, "e1", 299.0, False, id="unchanged, fresh"),
        pytest.param(Hashed(10, "e1", GOOD, 0.0), 10, "e2", 1.0, True, id="ETag changed"),
        pytest.param(Hashed(10, "e1", GOOD, 0.0), 11, "e1", 1.0, True, id="size changed"),
        pytest.param(Hashed(10, "e1", GOOD, 0.0), 10, "e1", 300.0, True, id="period over"),
    ],
)
def test_an_object_is_hashed_again_only_when_changed_or_due(
    cached: Hashed | None, size: int, etag: str, now: float, expected: bool
) -> None:
    assert needs_hash(cached, size=size, etag=etag, now=now, period=300.0) is expected


@dataclass
class FakeStore:
    """One object: (bytes' sha256, size, etag); counts full reads."""

    digest: str = GOOD
    size: int = 10
    etag: str = "e1"
    present: bool = True
    down: bool = False
    reads: int = 0
    keys: list[tuple[str | None, str]] = field(default_factory=list)

    def stat(self, key: str, *, bucket: str | None = None) -> tuple[int, str]:
        self.keys.append((bucket, key))
        if self.down:
            raise StorageError("stat: connection refused")
        if not self.present:
            raise ObjectNotFound("stat: not found")
        return self.size, self.etag

    def sha256(self, key: str, *, bucket: str | None = None) -> tuple[int, str]:
        self.reads += 1
        return self.size, self.digest


def make_checker(store: FakeStore, clock: list[float]) -> IntegrityChecker:
    return IntegrityChecker(store, period=300.0, clock=lambda: clock[0])


def test_the_checker_reads_an_object_once_per_change_or_period() -> None:
    store, clock = FakeStore(), [0.0]
    checker = make_checker(store, clock)
    for _ in range(5):
        assert checker.check(URI, sha256=GOOD, size=10) is None
    assert store.reads == 1 and store.keys[0] == ("modelfleet", "artifacts/d/onnx/model.onnx")
    store.digest, store.etag = BAD, "e2"  # overwritten through the S3 API
    assert checker.check(URI, sha256=GOOD, size=10) is not None
    assert store.reads == 2
    store.etag = "e1"
    store.digest = GOOD  # restored
    assert checker.check(URI, sha256=GOOD, size=10) is None
    store.digest = BAD  # changed behind the S3 API: same size and ETag
    clock[0] = 299.0
    assert checker.check(URI, sha256=GOOD, size=10) is None
    clock[0] = 600.0
    assert checker.check(URI, sha256=GOOD, size=10) is not None


def test_a_missing_object_is_corrupted_and_an_unreachable_store_keeps_the_last_verdict() -> None:
    store, clock = FakeStore(), [0.0]
    checker = make_checker(store, clock)
    store.down = True
    with pytest.raises(StorageError):  # nothing known yet: the caller decides
        checker.check(URI, sha256=GOOD, size=10)
    store.down = False
    store.digest, store.etag = BAD, "e2"
    assert checker.check(URI, sha256=GOOD, size=10) is not None
    store.down = True
    assert checker.check(URI, sha256=GOOD, size=10) is not None
    store.down, store.present = False, False
    assert checker.check(URI, sha256=GOOD, size=10) == (
        f"{URI}: expected 10 bytes, sha256 {GOOD}, found no object"
    )


def test_assignments_of_another_corrupted_artifact_are_dropped_but_roll_backs_stay() -> None:
    """Rolling out revision 3 (verified); devices catching up to stable revision 2, whose bytes
    changed, are not moved; a roll-back to it stays (the device kept the artifact)."""
    current = ArtifactRef(GOOD, "s3://m/artifacts/3/onnx/model.onnx", "onnx", 10)
    stable = ArtifactRef(BAD, URI, "onnx", 10)
    actions = [
        AssignRevision("cam-1", "cam", 3, current),
        AssignRevision("cam-2", "cam", 2, stable),
        AssignRevision("cam-3", "cam", 2, stable),
        RollBack("cam-4", "cam", 3, 2, stable),
    ]
    checked: list[str] = []

    def check(artifact: ArtifactRef) -> str | None:
        checked.append(artifact.uri)
        return "corrupted" if artifact.sha256 == BAD else None

    kept, blocked = intact_actions(actions, verified=GOOD, check=check)
    assert kept == [actions[0], actions[3]]
    assert blocked == {2: "corrupted"}
    assert checked == [URI]
    assert intact_actions(actions, verified=GOOD, check=lambda a: None) == (actions, {})
