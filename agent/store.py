"""The device's local model store: verified artifacts by sha256, and per-slot links.

Layout under the data dir (the runner is its only writer; one agent per data dir):

    objects/<sha256>.onnx          bytes whose size and sha256 were verified before they got
                                   this name; never modified (mode 0444)
    objects/<sha256>.probe.npz     the probe the artifact passed on this device, so a rollback
                                   to it needs no network
    staging/<sha256>.part          a download in progress, resumed after a restart
    slots/<slot>/current           symlink → ../../objects/<sha256>.onnx: the active model
    slots/<slot>/previous          symlink → the model active before it (instant rollback)
    slots/<slot>/records.json      {sha256: {revision, deployment, format, probe, runtime,
                                   request}} for the artifacts the links may name
    slots/<slot>/runtime.json      how to open the active model: engine, backends, options,
                                   inputs, outputs (`modelfleet.device`, for applications)
    slots/<slot>/activation.json   links, records and runtime.json before an activation that the
                                   --on-activate command has not confirmed yet
    agent.lock                     flock held by the running agent

Crash safety (SIGKILL at any instruction): every name that others read is created by writing a
temporary file or link, fsync, then `os.replace` (atomic on POSIX), then fsync of the
directory. So `current` always names a complete, verified file. Activation writes the record,
then `runtime.json`, then `previous`, then `current`; a crash in between leaves `current` on the
old model and at worst `previous == current`, which `read_slot` reports as no previous.
`runtime.json` names its own model file, so an application opening it always gets a probed
pair; the agent installs again after such a crash and rewrites both. Leftover `*.tmp` files
are removed at start; `.part` files are resumed or removed once the assignments are known.

With an --on-activate command an activation is only done when the command succeeded: the
slot's state before it is journaled first (`begin_activation`) and restored when the command
fails (`roll_back_activation`: records, runtime.json, then `current`, then `previous`). A
journal found at start means the agent died before the command confirmed: the slot is rolled
back, and the agent installs the assignment again and runs the command again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from modelfleet.agent.reconcile import Installed
from modelfleet.api.device import ProbeResult, RuntimeRequest, SlotRuntime
from modelfleet.device import RUNTIME_FILE

JOURNAL_FILE = "activation.json"
_JOURNALED = ("records.json", RUNTIME_FILE)
"""Written in this order by a rollback, before the links."""
SLOT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SHA256 = re.compile(r"^[a-f0-9]{64}$")
_CHUNK = 1 << 20


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.staging = root / "staging"
        self.slots = root / "slots"
        for directory in (self.objects, self.staging, self.slots):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock: IO[str] | None = None

    # -- artifacts ---------------------------------------------------------------------------

    def object_path(self, sha256: str) -> Path:
        return self.objects / f"{_checked(sha256)}.onnx"

    def probe_path(self, sha256: str) -> Path:
        return self.objects / f"{_checked(sha256)}.probe.npz"

    def staging_path(self, sha256: str, suffix: str = ".part") -> Path:
        return self.staging / f"{_checked(sha256)}{suffix}"

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def staged_bytes(self, sha256: str) -> int | None:
        try:
            return self.staging_path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def commit(self, sha256: str, staged: Path) -> Path:
        """Move verified bytes into the store under their sha256 (atomic, durable)."""
        target = self.object_path(sha256)
        _fsync_file(staged)
        staged.chmod(0o444)
        os.replace(staged, target)
        _fsync_dir(self.objects)
        _fsync_dir(staged.parent)
        return target

    def keep_probe(self, sha256: str, probe: Path) -> None:
        if probe.resolve() == self.probe_path(sha256).resolve():
            return
        _fsync_file(probe)
        os.replace(probe, self.probe_path(sha256))
        _fsync_dir(self.objects)

    def discard(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # -- slots -------------------------------------------------------------------------------

    def slot_names(self) -> list[str]:
        return sorted(
            p.name for p in self.slots.iterdir() if p.is_dir() and SLOT_NAME.match(p.name)
        )

    def current_link(self, slot: str) -> Path:
        return self.slots / _slot(slot) / "current"

    def read_slot(self, slot: str) -> tuple[Installed | None, Installed | None]:
        """(current, previous) from the links, with revision and probe from the records."""
        records = self._records(slot)
        current = self._linked(slot, "current")
        previous = self._linked(slot, "previous")
        if previous == current:
            previous = None
        return _installed(current, records), _installed(previous, records)

    def record(
        self,
        slot: str,
        sha256: str,
        *,
        revision: int,
        deployment: str,
        fmt: str,
        probe: ProbeResult | None,
        runtime: SlotRuntime | None = None,
        request: RuntimeRequest | None = None,
    ) -> None:
        """Remember what an artifact is in this slot (written before any link names it)."""
        records = self._records(slot)
        keep = {self._linked(slot, "current"), self._linked(slot, "previous"), _checked(sha256)}
        records = {sha: entry for sha, entry in records.items() if sha in keep}
        records[sha256] = {
            "revision": revision,
            "deployment": deployment,
            "format": fmt,
            "probe": probe.model_dump(by_alias=True, mode="json") if probe else None,
            "runtime": runtime.to_wire() if runtime else None,
            "request": request.to_wire() if request else None,
        }
        directory = self.slots / _slot(slot)
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / "records.json", json.dumps(records, indent=1).encode())

    def write_runtime(self, slot: str, document: dict[str, Any]) -> None:
        """Write the slot's runtime.json (atomic, durable); `document["model"]` is relative to
        the slot directory (`model_reference`)."""
        directory = self.slots / _slot(slot)
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / RUNTIME_FILE, json.dumps(document, indent=1).encode())

    def model_reference(self, sha256: str) -> str:
        """The stored model's path relative to a slot directory (what the links hold)."""
        return self._relative(sha256)

    def activate(self, slot: str, sha256: str) -> None:
        """Make `sha256` current; the old current becomes previous. The object must exist."""
        if not self.has_object(sha256):
            raise FileNotFoundError(f"{_checked(sha256)} is not in the store")
        directory = self.slots / _slot(slot)
        directory.mkdir(parents=True, exist_ok=True)
        current = self._linked(slot, "current")
        if current == sha256:
            return
        if current is not None:
            _link_atomic(directory / "previous", self._relative(current))
        _link_atomic(directory / "current", self._relative(sha256))

    def begin_activation(self, slot: str) -> None:
        """Journal the slot's links, records and runtime.json before an activation (atomic,
        durable)."""
        directory = self.slots / _slot(slot)
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str | None] = {}
        for name in _JOURNALED:
            try:
                files[name] = (directory / name).read_text()
            except FileNotFoundError:
                files[name] = None
        state = {
            "current": self._linked(slot, "current"),
            "previous": self._linked(slot, "previous"),
            "files": files,
        }
        _write_atomic(directory / JOURNAL_FILE, json.dumps(state).encode())

    def end_activation(self, slot: str) -> None:
        """The activation is confirmed: drop its journal."""
        directory = self.slots / _slot(slot)
        with contextlib.suppress(FileNotFoundError):
            (directory / JOURNAL_FILE).unlink()
            _fsync_dir(directory)

    def roll_back_activation(self, slot: str) -> bool:
        """Put back the journaled records, runtime.json and links, then drop the journal;
        False when there is none. A link whose artifact is gone is removed, not left dangling."""
        directory = self.slots / _slot(slot)
        state = self._journal(slot)
        if state is None:
            self.end_activation(slot)  # none, or unreadable: nothing to put back
            return False
        files = state.get("files")
        files = files if isinstance(files, dict) else {}
        for name in _JOURNALED:
            text = files.get(name)
            if isinstance(text, str):
                _write_atomic(directory / name, text.encode())
            else:
                self.discard(directory / name)
        for name in ("current", "previous"):
            sha = state.get(name)
            if isinstance(sha, str) and _SHA256.match(sha) and self.has_object(sha):
                _link_atomic(directory / name, self._relative(sha))
            else:
                self.discard(directory / name)
        _fsync_dir(directory)
        self.end_activation(slot)
        return True

    def pending_activations(self) -> list[str]:
        """Slots with an activation journal (an agent died before its command confirmed)."""
        return [slot for slot in self.slot_names() if (self.slots / slot / JOURNAL_FILE).exists()]

    def deactivate(self, slot: str) -> None:
        directory = self.slots / _slot(slot)
        for name in ("current", "previous", "records.json", RUNTIME_FILE, JOURNAL_FILE):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        shutil.rmtree(directory, ignore_errors=True)
        _fsync_dir(self.slots)

    # -- housekeeping ------------------------------------------------------------------------

    def try_lock(self) -> bool:
        """Take the data dir for this process (one agent per store; the kernel drops the lock
        when the process dies, SIGKILL included). False while another agent holds it."""
        if self._lock is None:
            self._lock = (self.root / "agent.lock").open("a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def linked(self) -> set[str]:
        """Every sha256 a `current` or `previous` link, a `runtime.json` or an activation
        journal names, over all slots (after a crash between the two, runtime.json may name
        what `current` does not)."""
        shas = set()
        for slot in self.slot_names():
            journal = self._journal(slot) or {}
            for sha in (
                self._linked(slot, "current"),
                self._linked(slot, "previous"),
                journal.get("current"),
                journal.get("previous"),
            ):
                if isinstance(sha, str) and _SHA256.match(sha):
                    shas.add(sha)
            shas.update(self._runtime_sha(slot))
        return shas

    def remove_temporaries(self) -> None:
        """At start: half-written files of a killed process (never `.part`, which resume)."""
        for directory in (self.objects, self.staging, self.slots, *self.slots.iterdir()):
            if directory.is_dir():
                for path in directory.glob("*.tmp"):
                    self.discard(path)

    def clean_staging(self, wanted: Iterable[str]) -> list[Path]:
        """Remove staged files except the downloads of the `wanted` artifacts."""
        keep = {f"{sha}.part" for sha in wanted}
        removed = []
        for path in self.staging.iterdir():
            if path.name not in keep:
                self.discard(path)
                removed.append(path)
        return removed

    def collect_garbage(self, wanted: Iterable[str]) -> list[str]:
        """Delete stored artifacts that no link names and no assignment wants."""
        keep = self.linked() | set(wanted)
        removed = []
        for path in self.objects.iterdir():
            sha = path.name.split(".", 1)[0]
            if sha not in keep:
                self.discard(path)
                if path.name.endswith(".onnx"):
                    removed.append(sha)
        return removed

    # -- internals ---------------------------------------------------------------------------

    def _linked(self, slot: str, name: str) -> str | None:
        link = self.slots / _slot(slot) / name
        try:
            target = os.readlink(link)
        except (FileNotFoundError, OSError):
            return None
        sha = Path(target).name.removesuffix(".onnx")
        if not _SHA256.match(sha) or not link.exists():
            return None
        return sha

    def _runtime_sha(self, slot: str) -> set[str]:
        try:
            sha = json.loads((self.slots / _slot(slot) / RUNTIME_FILE).read_text()).get("sha256")
        except (FileNotFoundError, ValueError, AttributeError):
            return set()
        return {sha} if isinstance(sha, str) and _SHA256.match(sha) else set()

    def _journal(self, slot: str) -> dict[str, Any] | None:
        try:
            state = json.loads((self.slots / _slot(slot) / JOURNAL_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _relative(self, sha256: str) -> str:
        return os.path.join("..", "..", "objects", f"{_checked(sha256)}.onnx")

    def _records(self, slot: str) -> dict[str, dict[str, Any]]:
        path = self.slots / _slot(slot) / "records.json"
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _installed(sha: str | None, records: dict[str, dict[str, Any]]) -> Installed | None:
    if sha is None:
        return None
    entry = records.get(sha) or {}
    revision = entry.get("revision")
    probe, runtime, request = entry.get("probe"), entry.get("runtime"), entry.get("request")
    return Installed(
        sha256=sha,
        revision=revision if isinstance(revision, int) else None,
        probe=ProbeResult.model_validate(probe) if isinstance(probe, dict) else None,
        runtime=SlotRuntime.model_validate(runtime) if isinstance(runtime, dict) else None,
        request=RuntimeRequest.model_validate(request) if isinstance(request, dict) else None,
    )


def _checked(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
    return sha256


def _slot(slot: str) -> str:
    if not SLOT_NAME.match(slot):
        raise ValueError(f"slot name {slot[:80]!r} is not a DNS label")
    return slot


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _link_atomic(link: Path, target: str) -> None:
    """Point `link` at `target` in one step: a new link under a temporary name, then rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
