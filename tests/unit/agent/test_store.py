"""The local store: verified objects, current/previous links, crash leftovers, GC."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelfleet.agent.store import Store, sha256_file
from modelfleet.api.device import ProbeResult


def put(store: Store, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    staged = store.staging_path(sha)
    staged.write_bytes(data)
    store.commit(sha, staged)
    return sha


def install(store: Store, slot: str, data: bytes, revision: int) -> str:
    sha = put(store, data)
    store.record(slot, sha, revision=revision, deployment="d", fmt="onnx", probe=None)
    store.activate(slot, sha)
    return sha


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def test_commit_names_verified_bytes_by_sha_and_makes_them_read_only(store: Store) -> None:
    sha = put(store, b"model one")
    path = store.object_path(sha)
    assert path.read_bytes() == b"model one" and sha256_file(path) == sha
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert store.staged_bytes(sha) is None


def test_activation_moves_current_to_previous(store: Store) -> None:
    one = install(store, "detector", b"one", 1)
    probe = ProbeResult(max_abs=1e-6, latency_ms=0.5)
    two = put(store, b"two")
    store.record("detector", two, revision=2, deployment="d", fmt="onnx", probe=probe)
    store.activate("detector", two)
    current, previous = store.read_slot("detector")
    assert current is not None and (current.sha256, current.revision, current.probe) == (
        two,
        2,
        probe,
    )
    assert previous is not None and (previous.sha256, previous.revision) == (one, 1)
    assert store.current_link("detector").read_bytes() == b"two"
    assert os.readlink(store.current_link("detector")) == f"../../objects/{two}.onnx"


def test_rolling_back_swaps_current_and_previous(store: Store) -> None:
    one = install(store, "s", b"one", 1)
    two = install(store, "s", b"two", 2)
    store.activate("s", one)
    current, previous = store.read_slot("s")
    assert current is not None and previous is not None
    assert (current.sha256, previous.sha256) == (one, two)


def test_a_crash_between_the_two_links_leaves_current_intact(store: Store) -> None:
    one = install(store, "s", b"one", 1)
    two = put(store, b"two")
    store.record("s", two, revision=2, deployment="d", fmt="onnx", probe=None)
    # activate() wrote `previous` (→ one) and was killed before `current` moved
    slot_dir = store.slots / "s"
    os.symlink(f"../../objects/{one}.onnx", slot_dir / "previous")
    current, previous = store.read_slot("s")
    assert current is not None and current.sha256 == one and current.revision == 1
    assert previous is None


def test_gc_keeps_linked_and_wanted_artifacts_only(store: Store) -> None:
    install(store, "a", b"one", 1)
    two = install(store, "a", b"two", 2)
    three = install(store, "a", b"three", 3)
    wanted = put(store, b"four")
    unwanted = put(store, b"five")
    store.probe_path(unwanted).write_bytes(b"probe")
    removed = store.collect_garbage({wanted})
    assert set(removed) == {hashlib.sha256(b"one").hexdigest(), unwanted}
    assert {p.name for p in store.objects.iterdir()} == {
        f"{two}.onnx",
        f"{three}.onnx",
        f"{wanted}.onnx",
    }


def test_gc_keeps_an_artifact_another_slot_uses(store: Store) -> None:
    shared = install(store, "a", b"shared", 1)
    install(store, "b", b"shared", 4)
    install(store, "a", b"x", 2)
    install(store, "a", b"y", 3)
    store.collect_garbage(set())
    assert store.has_object(shared)


def test_deactivate_removes_the_slot_and_gc_then_the_files(store: Store) -> None:
    sha = install(store, "a", b"one", 1)
    store.deactivate("a")
    assert store.slot_names() == [] and store.read_slot("a") == (None, None)
    store.collect_garbage(set())
    assert not store.has_object(sha)


def test_leftovers_of_a_killed_process_are_cleaned_but_downloads_kept(store: Store) -> None:
    wanted, stale = "c" * 64, "d" * 64
    store.staging_path(wanted).write_bytes(b"partial")
    store.staging_path(stale).write_bytes(b"partial")
    store.staging_path(wanted, ".probe.tmp").write_bytes(b"x")
    (store.slots / "s").mkdir()
    (store.slots / "s" / ".records.json.123.tmp").write_text("{")
    (store.objects / ".half.tmp").write_bytes(b"x")
    store.remove_temporaries()
    assert not (store.slots / "s" / ".records.json.123.tmp").exists()
    assert not (store.objects / ".half.tmp").exists()
    store.clean_staging({wanted})
    assert [p.name for p in store.staging.iterdir()] == [f"{wanted}.part"]


def test_a_link_to_a_missing_object_is_no_model(store: Store) -> None:
    sha = install(store, "s", b"one", 1)
    store.object_path(sha).chmod(0o644)
    store.object_path(sha).unlink()
    assert store.read_slot("s") == (None, None)


@pytest.mark.parametrize("slot", ["..", "a/b", "", "UPPER", "x" * 64])
def test_slot_names_that_are_not_dns_labels_are_refused(store: Store, slot: str) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        store.current_link(slot)


def test_shas_are_checked_before_they_name_files(store: Store) -> None:
    with pytest.raises(ValueError, match="sha256"):
        store.object_path("../../etc/passwd")


def test_one_agent_per_data_dir(tmp_path: Path) -> None:
    first = Store(tmp_path / "data")
    assert first.try_lock()
    code = (
        "import sys, pathlib; from modelfleet.agent.store import Store; "
        "print(Store(pathlib.Path(sys.argv[1])).try_lock())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "False"


def test_gc_keeps_the_artifact_runtime_json_names_before_current_does(store: Store) -> None:
    install(store, "a", b"one", 1)
    written = put(store, b"two")  # a crash after runtime.json, before the current link
    store.write_runtime("a", {"engine": "onnxruntime", "sha256": written, "model": "m"})
    store.collect_garbage(set())
    assert store.has_object(written)
    store.write_runtime("a", {"engine": "onnxruntime", "sha256": "not a sha", "model": "m"})
    store.collect_garbage(set())
    assert not store.has_object(written)


def test_a_journaled_activation_rolls_back_links_records_and_runtime(store: Store) -> None:
    one = install(store, "detector", b"one", 1)
    two = install(store, "detector", b"two", 2)
    store.write_runtime("detector", {"engine": "onnxruntime", "sha256": two})
    slot_dir = store.current_link("detector").parent
    before = {name: (slot_dir / name).read_text() for name in ("records.json", "runtime.json")}

    store.begin_activation("detector")
    three = install(store, "detector", b"three", 3)
    store.write_runtime("detector", {"engine": "openvino", "sha256": three})
    assert store.pending_activations() == ["detector"]
    assert {one, two, three} <= store.linked()  # the journal keeps what it may put back

    assert store.roll_back_activation("detector")
    current, previous = store.read_slot("detector")
    assert current is not None and (current.sha256, current.revision) == (two, 2)
    assert previous is not None and (previous.sha256, previous.revision) == (one, 1)
    assert {name: (slot_dir / name).read_text() for name in before} == before
    assert store.pending_activations() == [] and not store.roll_back_activation("detector")


def test_rolling_back_a_first_activation_leaves_no_model(store: Store) -> None:
    store.begin_activation("detector")
    install(store, "detector", b"one", 1)
    store.write_runtime("detector", {"engine": "onnxruntime"})
    assert store.roll_back_activation("detector")
    assert store.read_slot("detector") == (None, None)
    slot_dir = store.current_link("detector").parent
    assert not any((slot_dir / n).exists() for n in ("current", "runtime.json", "records.json"))


def test_a_confirmed_activation_drops_its_journal(store: Store) -> None:
    install(store, "detector", b"one", 1)
    store.begin_activation("detector")
    two = install(store, "detector", b"two", 2)
    store.end_activation("detector")
    assert store.pending_activations() == [] and not store.roll_back_activation("detector")
    current, _ = store.read_slot("detector")
    assert current is not None and current.sha256 == two
