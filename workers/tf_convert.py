"""TensorFlow targets: the checked fp32 ONNX → onnx2tf → a SavedModel or a .tflite, checked.

Called by `modelfleet.workers.convert.convert_model` for `tf-savedmodel`, `tflite`,
`tflite-fp16` and `tflite-dynamic-range`, after the fp32 ONNX passed its own checks.
onnx2tf runs as a child process of the TensorFlow environment (`tf_runtimes.tf_python`), with
that environment's bin/ first on PATH (it runs `onnxsim` by name) and, in its working
directory, the calibration sample file it would otherwise download
(`calibration_image_sample_data_20x128x128x3_float32.npy`, written here from a fixed seed).

Its exit code is not trusted: the file the target needs must exist, load in the runtime that
will run it (TensorFlow's `serving_default` signature for a SavedModel, LiteRT for a .tflite)
and run once; the TFLite targets get `-rtpo Erf` because LiteRT has no Erf (GELU's), only the
select TensorFlow ops devices do not carry. Each tensor's layout is read off the artifact's
signature against the ONNX model's (`modelfleet.layouts.detect_layout`) and recorded in the
manifest with its name in that signature.

The SavedModel directory is published as one deterministic tar (`model.savedmodel.tar`:
sorted members, no owners, no times), so its sha256 is the artifact's identity like a file's.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.api.conversion import Target
from modelfleet.artifacts import TensorSignature, model_file
from modelfleet.layouts import detect_layout
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import InvalidModel, UnsupportedOperator
from modelfleet.workers.isolation import STAGE_TIMEOUT_S, Child, crash, output_tail
from modelfleet.workers.runtimes import OnnxInfo
from modelfleet.workers.tf_runtimes import ChildRefused, TfChild, load_failure, tf_env, tf_python

CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
STAGE_ONNX2TF = "onnx2tf"
SAVED_MODEL_PARTS = ("saved_model.pb", "variables", "assets", "fingerprint.pb")
TFLITE_FILES = {"tflite": "model_float32.tflite", "tflite-fp16": "model_float16.tflite"}

Signature = tuple[list[TensorSignature], list[TensorSignature]]


def convert_to_tf(
    fp32: Path, info: OnnxInfo, target: Target, out_dir: Path, work: Path
) -> Signature:
    """Write `out_dir/<model_file(format)>` from the checked `fp32` ONNX; its signature (names,
    shapes and layouts as the artifact has them). A classified WorkerError on failure."""
    directory = (work / "onnx2tf").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    saved = directory / "saved_model"
    onnx_path = directory / "model.onnx"  # onnx2tf names its .tflite files after it
    shutil.copyfile(fp32, onnx_path)
    run_onnx2tf(onnx_path, saved, directory, tflite=target.format != "tf-savedmodel")
    final = out_dir / model_file(target.format)
    child = TfChild(directory / "check")
    try:
        if target.format == "tf-savedmodel":
            _require(saved / "saved_model.pb", "onnx2tf wrote no SavedModel")
            loaded = _load_and_run(child, "savedmodel", saved, f"{target.format} SavedModel")
            write_tar(saved, final)
        else:
            made = saved / TFLITE_FILES.get(target.format, "model_dynamic_range_quant.tflite")
            if target.format == "tflite-dynamic-range":
                _require(saved / "saved_model.pb", "onnx2tf wrote no SavedModel")
                try:
                    child.ask({"op": "dynamic_range", "saved_model": str(saved), "out": str(made)})
                except ChildRefused as err:
                    raise InvalidModel(f"dynamic-range quantization failed: {err}") from err
            _require(made, f"onnx2tf wrote no {made.name}")
            loaded = _load_and_run(child, "tflite", made, f"{target.format} model")
            shutil.copyfile(made, final)
    finally:
        child.close()
    return match_signature(info, loaded)


def run_onnx2tf(onnx_path: Path, out: Path, directory: Path, *, tflite: bool) -> None:
    """onnx2tf as a child of the TensorFlow environment; its outcome is judged by the files."""
    np.save(directory / CALIBRATION_FILE, calibration_images())
    tool = tf_python().parent / "onnx2tf"
    argv = [str(tool), "-i", str(onnx_path), "-o", str(out), "-osd", "-n"]
    if tflite:
        argv += ["-rtpo", "Erf"]
    child = Child(STAGE_ONNX2TF, directory / "onnx2tf.log", argv=argv, env=tf_env())
    try:
        returncode = child.wait(STAGE_TIMEOUT_S)
    finally:
        child.close()
    if returncode is None or returncode < 0:
        raise crash(STAGE_ONNX2TF, returncode, child.output(), STAGE_TIMEOUT_S)
    if not (out / "saved_model.pb").is_file():
        raise UnsupportedOperator(
            [],
            message=f"onnx2tf could not convert the model (exit {returncode}): "
            f"{output_tail(child.output())}",
        )


def calibration_images() -> np.ndarray[Any, np.dtype[np.float32]]:
    """What onnx2tf would download for a model with a 3-channel image input: any fixed data
    does, its float conversions never use it."""
    return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)


def write_tar(directory: Path, out: Path) -> None:
    """The SavedModel's parts as a tar whose bytes depend only on their contents."""

    def clean(member: tarfile.TarInfo) -> tarfile.TarInfo:
        member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
        member.mode = 0o755 if member.isdir() else 0o644
        return member

    partial = out.with_name(f".{out.name}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(_parts(directory)):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False, filter=clean)
    partial.replace(out)


def _parts(directory: Path) -> list[Path]:
    found: list[Path] = []
    for name in SAVED_MODEL_PARTS:
        path = directory / name
        if path.exists():
            found.append(path)
            found.extend(path.rglob("*") if path.is_dir() else [])
    return found


def _require(path: Path, message: str) -> None:
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        raise InvalidModel(f"{message} ({path.name} missing or empty)")


def _load_and_run(child: TfChild, kind: str, path: Path, what: str) -> dict[str, Any]:
    """Load `path` and run it once on zeros: a converter that wrote something unrunnable is
    caught here, before anything is published."""
    try:
        loaded = child.ask({"op": "load", "kind": kind, "path": str(path), "threads": 1})
        zeros = {
            t["name"]: np.zeros([d or 1 for d in (t["shape"] or [1])], dtype=t["dtype"])
            for t in loaded["inputs"]
        }
        feeds, outputs = child.npz("zeros"), child.npz("out")
        np.savez(feeds, allow_pickle=False, **zeros)
        child.ask({"op": "run", "in": str(feeds), "out": str(outputs)})
    except ChildRefused as err:
        raise load_failure(str(err), what) from err
    return loaded


def match_signature(info: OnnxInfo, loaded: dict[str, Any]) -> Signature:
    """The manifest signature: each ONNX tensor, found in the artifact's by name (inputs; an
    output also as onnx2tf's `output_<i>`), with the artifact's shape and layout."""
    inputs = _match(info.inputs, loaded["inputs"], what="input", default_last=True)
    outputs = _match(info.outputs, loaded["outputs"], what="output", default_last=True)
    return inputs, outputs


def _match(
    onnx: Sequence[TensorInfo], artifact: Sequence[dict[str, Any]], *, what: str, default_last: bool
) -> list[TensorSignature]:
    by_name = {str(t["name"]): t for t in artifact}
    if len(by_name) != len(onnx):
        raise InvalidModel(
            f"the artifact has {len(by_name)} {what}s ({', '.join(sorted(by_name))}), the ONNX "
            f"model {len(onnx)} ({', '.join(t.name for t in onnx)})"
        )
    found: list[TensorSignature] = []
    for index, tensor in enumerate(onnx):
        mine = by_name.get(tensor.name) or by_name.get(f"{what}_{index}")
        if mine is None:
            raise InvalidModel(
                f"ONNX {what} {tensor.name} has no counterpart among the artifact's "
                f"{', '.join(sorted(by_name))}"
            )
        shape = mine["shape"]
        try:
            layout = detect_layout(tensor.shape, shape, default_last=default_last)
        except ValueError as err:
            raise InvalidModel(f"{what} {tensor.name}: {err}") from err
        dims: list[int | str] = [
            d if d is not None else f"{tensor.name}_dim{n}" for n, d in enumerate(shape or [])
        ]
        runtime = str(mine["name"])
        found.append(
            TensorSignature(
                name=tensor.name,
                dtype=str(mine["dtype"]),
                shape=dims,
                layout=layout,
                runtime_name=None if runtime == tensor.name else runtime,
            )
        )
    return found
