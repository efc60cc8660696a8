"""TensorFlow runtimes for validation: a SavedModel through TensorFlow, a .tflite through
LiteRT, both in the TensorFlow environment's child (`tf_child`), never in this process.

Used by `modelfleet.workers.tf_convert` (the conversion's load-and-run check) and by the
validate step (`candidate_runner`), whose `TfRunner` is a `runtimes.Runner` in the source
model's terms: tensors by the source's names, channels-first. The manifest records each
artifact tensor's layout and its name in the artifact's signature; `TfRunner` transposes
inputs to that layout and outputs back (`modelfleet.layouts`), so a layout the record gets
wrong shows as numbers in the wrong order, and fails the comparison.

The environment is `.venv-tf` beside the source tree (`make tf-venv`), or the Python that
`MODELFLEET_TF_PYTHON` names (the TensorFlow worker image sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.api.conversion import TF_FORMATS
from modelfleet.artifacts import Manifest, TensorSignature
from modelfleet.layouts import from_layout, shape_from_layout, to_layout
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import InvalidModel, UnsupportedOperator, WorkerError
from modelfleet.workers.isolation import NO_INSTALL_ENV, output_tail
from modelfleet.workers.runtimes import Array, OrtRunner, Runner, default_threads

ENV_TF_PYTHON = "MODELFLEET_TF_PYTHON"
CHILD_SCRIPT = Path(__file__).with_name("tf_child.py")
TF_VENV = Path(__file__).resolve().parents[1] / ".venv-tf"
# TensorFlow's C++ logging (and oneDNN's notice) is noise in every message that quotes a log.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
ANSWER_TIMEOUT_S = 1800


def tf_python() -> Path:
    """The TensorFlow environment's Python; WorkerError when there is none here."""
    named = os.environ.get(ENV_TF_PYTHON)
    python = Path(named) if named else TF_VENV / "bin" / "python"
    if not python.is_file():
        raise WorkerError(
            f"the TensorFlow toolchain is not installed here ({python} is missing): build it "
            f"with `make tf-venv`, or run the TensorFlow worker image (docker/worker-tf)"
        )
    return python


def tf_env() -> dict[str, str]:
    """The child's environment: its own bin/ first on PATH (onnx2tf runs `onnxsim` by name)."""
    bin_dir = str(tf_python().parent)
    return {
        **NO_INSTALL_ENV,
        **QUIET_ENV,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONNOUSERSITE": "1",
    }


@contextmanager
def candidate_runner(
    path: Path, manifest: Manifest, *, work_dir: Path, what: str
) -> Iterator[Runner]:
    """The runtime that validates an artifact: ONNX Runtime for ONNX formats; TensorFlow's
    `serving_default` signature for a SavedModel (unpacked from its tar); LiteRT for a .tflite,
    the latter two in the source's terms of `manifest` (names and layouts)."""
    if manifest.format not in TF_FORMATS:
        yield OrtRunner(path, what=what)
        return
    kind, model = "tflite", path
    if manifest.format == "tf-savedmodel":
        kind, model = "savedmodel", extract_tar(path, work_dir / "savedmodel")
    runner = TfRunner(
        model,
        kind=kind,
        inputs=manifest.inputs,
        outputs=manifest.outputs,
        work_dir=work_dir / "tf-runtime",
        what=what,
    )
    try:
        yield runner
    finally:
        runner.close()


def extract_tar(archive: Path, into: Path) -> Path:
    """A `model.savedmodel.tar` unpacked to a SavedModel directory (plain members only)."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError) as err:
        raise InvalidModel(f"{archive.name} is not a readable SavedModel tar: {err}") from err
    if not (into / "saved_model.pb").is_file():
        raise InvalidModel(f"{archive.name} holds no saved_model.pb")
    return into


class TfChild:
    """The `tf_child` protocol's worker side: one child, requests answered in order."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory.resolve()
        self.log_path = self.directory / "tf-child.log"
        env = {**os.environ, **tf_env()}
        env.pop("PYTHONPATH", None)  # nothing of this environment may shadow TensorFlow's
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(tf_python()), str(CHILD_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=self.directory,
            )
        self._count = 0

    def ask(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """The child's answer; its error as `ChildRefused`, its death as InvalidModel."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.flush()
            line = stdout.readline()
        except OSError:
            line = b""
        if not line:
            code = self._process.wait()
            raise InvalidModel(
                f"the TensorFlow child exited {code} during {command['op']}; last output: "
                f"{self.tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise ChildRefused(str(answer["error"]))
        return answer

    def tail(self) -> str:
        try:
            return output_tail(self.log_path.read_text(errors="replace"))
        except OSError:
            return ""

    def npz(self, stem: str) -> Path:
        self._count += 1
        return self.directory / f"{stem}-{self._count}.npz"

    def close(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with suppress(OSError):
                stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class ChildRefused(Exception):  # noqa: N818 (the child's own error, translated by the callers)
    pass


def load_failure(message: str, what: str) -> WorkerError:
    """A model LiteRT or TensorFlow refuses: an op it lacks (TFLite's select TensorFlow ops,
    `FlexErf`) is UnsupportedOperator naming it, anything else InvalidModel."""
    if "Select TensorFlow op" in message or "Flex" in message:
        ops = sorted(set(_flex_ops(message))) or ["(a select TensorFlow op)"]
        return UnsupportedOperator(
            ops,
            message=f"{what} needs TensorFlow op(s) {', '.join(ops)} that the LiteRT runtime "
            f"does not have (select TF ops): {message}",
        )
    return InvalidModel(f"{what} does not load or run: {message}")


def _flex_ops(message: str) -> list[str]:
    return [word[4:].strip("().,") for word in message.split() if word.startswith("(Flex")]


class TfRunner:
    """A TensorFlow artifact as a `runtimes.Runner` in the source's terms (names, layouts) of
    its manifest signature. Close it (`close`) to end its child."""

    def __init__(
        self,
        path: Path,
        *,
        kind: str,
        inputs: Sequence[TensorSignature],
        outputs: Sequence[TensorSignature],
        work_dir: Path,
        threads: int | None = None,
        what: str = "TensorFlow artifact",
    ) -> None:
        self._child = TfChild(work_dir)
        try:
            answer = self._child.ask(
                {
                    "op": "load",
                    "kind": kind,
                    "path": str(path.resolve()),
                    "threads": threads or default_threads(),
                }
            )
        except ChildRefused as err:
            self._child.close()
            raise load_failure(str(err), f"{what} {path.name}") from err
        except WorkerError:
            self._child.close()
            raise
        self.name = str(answer["runtime"])
        self.signature = (list(answer["inputs"]), list(answer["outputs"]))
        self._in = list(inputs)
        self._out = list(outputs)
        self.what = f"{what} {path.name}"
        self.inputs = [_source_info(sig) for sig in self._in]
        self.outputs = [_source_info(sig) for sig in self._out]

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        arrays = {
            _runtime(sig): to_layout(np.asarray(feeds[sig.name]), sig.layout) for sig in self._in
        }
        answer = self._exchange("run", arrays)
        with np.load(answer, allow_pickle=False) as data:
            got = {key: np.asarray(data[key]) for key in data.files}
        answer.unlink(missing_ok=True)
        missing = [_runtime(s) for s in self._out if _runtime(s) not in got]
        if missing:
            raise InvalidModel(
                f"{self.what} returned {sorted(got)}, not the manifest's outputs {missing}"
            )
        return [from_layout(got[_runtime(s)], s.layout) for s in self._out]

    def benchmark(self, feeds: Mapping[str, Array], *, warmup: int, iterations: int) -> list[float]:
        """Seconds per run, timed in the child around the runtime's own call (no file I/O)."""
        arrays = {
            _runtime(sig): to_layout(np.asarray(feeds[sig.name]), sig.layout) for sig in self._in
        }
        inputs = self._child.npz("bench")
        np.savez(inputs, allow_pickle=False, **arrays)
        try:
            answer = self._child.ask(
                {"op": "benchmark", "in": str(inputs), "warmup": warmup, "iterations": iterations}
            )
        except ChildRefused as err:
            raise load_failure(str(err), self.what) from err
        return [float(ms) / 1000.0 for ms in answer["timings_ms"]]

    def _exchange(self, op: str, arrays: Mapping[str, Array]) -> Path:
        inputs, outputs = self._child.npz("in"), self._child.npz("out")
        np.savez(inputs, allow_pickle=False, **arrays)
        try:
            self._child.ask({"op": op, "in": str(inputs), "out": str(outputs)})
        except ChildRefused as err:
            raise load_failure(str(err), self.what) from err
        finally:
            inputs.unlink(missing_ok=True)
        return outputs

    def close(self) -> None:
        self._child.close()


def _source_info(sig: TensorSignature) -> TensorInfo:
    """A manifest tensor as the source model has it: its name, channels-first dimensions."""
    dims = shape_from_layout(sig.shape, sig.layout)
    return TensorInfo(sig.name, sig.dtype, tuple(d if isinstance(d, int) else None for d in dims))


def _runtime(sig: TensorSignature) -> str:
    return sig.runtime_name or sig.name
