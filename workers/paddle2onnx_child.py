"""Runs one paddle2onnx export in a child process (called by `modelfleet.workers.convert`).

paddle2onnx aborts the whole process (SIGABRT) on unsupported operators and swallows other
errors, so it never runs inside the worker itself. Its Python-side optimizer (Polygraphy,
which sets POLYGRAPHY_AUTOINSTALL_DEPS=1 and pip-installs onnx-graphsurgeon at run time) is
never reached: the export returns bytes (`save_file=None`), so only the C++ exporter runs.

    python -m modelfleet.workers.paddle2onnx_child MODEL PARAMS OUT.onnx OPSET
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_EXPORT_RAISED = 3
EXIT_NOTHING_WRITTEN = 4


def main(argv: list[str]) -> int:
    model, params, out, opset = argv
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    import paddle2onnx

    try:
        data = paddle2onnx.export(
            model,
            params,
            save_file=None,
            opset_version=int(opset),
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
    Path(out).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
