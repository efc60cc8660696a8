"""The paddle2onnx child process: what it runs (`main`) and the worker's handle on it
(`PaddleChild`), used by `modelfleet.workers.convert` and the convert-validate Job.

paddle2onnx aborts the whole process (SIGABRT) on unsupported operators and swallows other
errors, so it never runs inside the worker itself. Its Python-side optimizer (Polygraphy,
which sets POLYGRAPHY_AUTOINSTALL_DEPS=1 and pip-installs onnx-graphsurgeon at run time) is
never reached: the export returns bytes (`save_file=None`), so only the C++ exporter runs.

    echo '{"model": M, "params": P, "out": O, "opset": 17, "reference": null}' |
        python -m modelfleet.workers.paddle2onnx_child

The child imports paddle2onnx (and Paddle) first, then reads its one command, that JSON line,
from stdin; end of input instead means there is nothing to convert, and it exits 0. So the
convert-validate Job
starts it before it has downloaded anything, and Paddle's import (most of a small model's
conversion time) runs while the worker imports, downloads and checks.

O (OUT.onnx) appears (renamed into place) only once the export succeeded. Before the export the
child writes paddle2onnx's supported operators next to it (`SUPPORTED_OPERATORS`): the worker
names the unsupported operators of a failed export from it, without importing paddle2onnx.

With a reference directory (a convert-validate Job) the child, Paddle being imported already,
then records the Paddle Inference reference the validation asks for there
(`modelfleet.workers.references`), so the worker process never imports Paddle itself.

This module imports nothing heavy at the top: the worker imports it to start the child early.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelfleet.workers.isolation import Child, enter_stage

MODULE = "modelfleet.workers.paddle2onnx_child"
SUPPORTED_OPERATORS = "supported-operators.json"  # next to OUT.onnx
EXIT_EXPORT_RAISED = 3
EXIT_NOTHING_WRITTEN = 4
STAGE_EXPORT = "paddle2onnx"
STAGE_REFERENCE = "Paddle reference"


class PaddleChild(Child):
    """The paddle2onnx child (`isolation.Child`), started with nothing to do yet: `send` hands
    it its one command. Its stdout and stderr go to `log_path` from the start (import-time
    output included)."""

    def __init__(self, log_path: Path) -> None:
        super().__init__(MODULE, log_path)

    def send_export(
        self, *, model: Path, params: Path, out: Path, opset: int, reference: Path | None
    ) -> None:
        self.send(
            {
                "model": str(model.resolve()),  # the child runs in its own directory
                "params": str(params.resolve()),
                "out": str(out.resolve()),
                "opset": opset,
                "reference": None if reference is None else str(reference.resolve()),
            }
        )


@contextmanager
def early_child(work_dir: Path | None) -> Iterator[PaddleChild | None]:
    """A child started now, in a scratch directory of its own, ended and removed on exit.

    None when it cannot start: the conversion then starts its own and reports what fails.
    """
    directory: Path | None = None
    child: PaddleChild | None = None
    try:
        directory = Path(tempfile.mkdtemp(prefix="modelfleet-paddle2onnx-", dir=work_dir))
        child = PaddleChild(directory / "paddle2onnx.log")
    except OSError:
        child = None
    try:
        yield child
    finally:
        if child is not None:
            child.close()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    import paddle2onnx
    from paddle2onnx.utils import get_all_supported_operators_pir

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker needed no conversion after all
    command = json.loads(line)
    enter_stage(STAGE_EXPORT)
    model, params, out = command["model"], command["params"], command["out"]
    opset, reference = int(command["opset"]), command.get("reference")

    # Before the export, which may abort: the worker names unsupported operators from it.
    supported = sorted(get_all_supported_operators_pir())
    Path(out).with_name(SUPPORTED_OPERATORS).write_text(json.dumps(supported))
    try:
        data = paddle2onnx.export(
            model,
            params,
            save_file=None,
            opset_version=opset,
            auto_upgrade_opset=False,
            verbose=True,
            enable_onnx_checker=True,
            enable_optimize=True,
            optimize_tool="None",
        )
    except Exception as err:  # paddle2onnx leaves `onnx_model_str` unbound when export fails
        print(f"modelfleet: paddle2onnx raised {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_EXPORT_RAISED
    if not data:
        print("modelfleet: paddle2onnx returned no model", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    partial = Path(f"{out}.partial")
    partial.write_bytes(data)
    os.replace(partial, out)
    if reference:
        from modelfleet.workers.paddle_reference import record_reference

        enter_stage(STAGE_REFERENCE)
        record_reference(Path(reference), Path(model), Path(params))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is written and closed: skip Paddle's slow teardown
