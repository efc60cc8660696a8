"""The TensorFlow child: loads, runs and times SavedModels and TFLite models, in `.venv-tf`.

onnx2tf pins numpy, onnx, onnxruntime and TensorFlow at versions that clash with ours, so
TensorFlow never loads in the worker: this file runs as a script of the TensorFlow
environment's own Python (`tf_runtimes.TfChild` starts it) and imports nothing of modelfleet,
only the standard library, numpy and the runtime it is asked for.

Protocol: one JSON object a line on stdin, one JSON answer a line on the process's original
stdout (native code's prints are sent to stderr, which the worker logs). Tensors travel in
.npz files named in the commands. A failure is `{"error": "Type: message"}`; the child goes on.

    {"op": "load", "kind": "savedmodel"|"tflite", "path": P, "threads": N}
        → {"runtime", "inputs": [{name, dtype, shape}], "outputs": [...]} (signature names;
          a SavedModel through its `serving_default` signature, as TF Serving loads it; a
          .tflite through LiteRT's interpreter and that signature, as a device runs it)
    {"op": "run", "in": NPZ, "out": NPZ}                 → {"ok": true}
    {"op": "benchmark", "in": NPZ, "warmup": W, "iterations": I} → {"timings_ms": [...]}
    {"op": "dynamic_range", "saved_model": D, "out": P}  → {"ok": true}
        (TFLiteConverter with the default optimisation and no representative data: int8
        weights, float activations: what onnx2tf's -odrqt does, with the signature kept)
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

SIGNATURE = "serving_default"


class Loaded:
    """One loaded model: `run` takes and returns arrays by signature name."""

    def __init__(self, kind: str, path: str, threads: int) -> None:
        if kind == "savedmodel":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            self._tf = tf
            self._model = tf.saved_model.load(path)
            self._fn = self._model.signatures[SIGNATURE]
            _, spec = self._fn.structured_input_signature
            self.inputs = [_spec(name, s) for name, s in spec.items()]
            self.outputs = [_spec(name, s) for name, s in self._fn.structured_outputs.items()]
            self.runtime = f"tensorflow {tf.__version__} (SavedModel {SIGNATURE}, CPU)"
        else:
            from ai_edge_litert import interpreter as litert

            interpreter = litert.Interpreter(model_path=path, num_threads=threads)
            self._runner = interpreter.get_signature_runner(SIGNATURE)
            self.inputs = [_detail(n, d) for n, d in self._runner.get_input_details().items()]
            self.outputs = [_detail(n, d) for n, d in self._runner.get_output_details().items()]
            self.runtime = f"ai-edge-litert {_version('ai-edge-litert')} (TFLite interpreter, CPU)"
        self.kind = kind

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.kind == "savedmodel":
            tensors = {k: self._tf.constant(v) for k, v in feeds.items()}
            return {k: np.asarray(v) for k, v in self._fn(**tensors).items()}
        return {k: np.asarray(v) for k, v in self._runner(**feeds).items()}


def _spec(name: str, spec: Any) -> dict[str, Any]:
    shape = None if spec.shape.rank is None else [d for d in spec.shape.as_list()]
    return {"name": name, "dtype": spec.dtype.name, "shape": shape}


def _detail(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    return {
        "name": name,
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [None if int(d) < 0 else int(d) for d in dims],
    }


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _feeds(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: np.asarray(data[key]) for key in data.files}


def _dynamic_range(saved_model: str, out: str) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[SIGNATURE])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = converter.convert()
    partial = f"{out}.partial"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, out)


def handle(command: dict[str, Any], state: dict[str, Loaded]) -> dict[str, Any]:
    op = command["op"]
    if op == "load":
        loaded = Loaded(command["kind"], command["path"], int(command.get("threads") or 1))
        state["model"] = loaded
        return {"runtime": loaded.runtime, "inputs": loaded.inputs, "outputs": loaded.outputs}
    if op == "run":
        outputs = state["model"].run(_feeds(command["in"]))
        partial = f"{command['out']}.partial.npz"
        np.savez(partial, **outputs)  # type: ignore[arg-type]  # numpy 1.26 here: no allow_pickle
        os.replace(partial, command["out"])
        return {"ok": True}
    if op == "benchmark":
        model, feeds = state["model"], _feeds(command["in"])
        for _ in range(int(command["warmup"])):
            model.run(feeds)
        timings = []
        for _ in range(int(command["iterations"])):
            start = time.perf_counter()
            model.run(feeds)
            timings.append((time.perf_counter() - start) * 1000.0)
        return {"timings_ms": timings}
    if op == "dynamic_range":
        _dynamic_range(command["saved_model"], command["out"])
        return {"ok": True}
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # native prints must not mix in
    sys.stdout = sys.stderr
    state: dict[str, Loaded] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = handle(json.loads(line), state)
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:600]
            answer = {"error": f"{type(err).__name__}: {first}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # TensorFlow's teardown is slow and has nothing left to write
