"""The raw baseline of benchmark 3, run as its own process: paddle2onnx's Python API, then
the same seeded inputs through Paddle Inference and ONNX Runtime, compared with numpy.

    python bench/raw_convert.py MODEL PARAMS OUT.onnx INPUTS_JSON SAMPLES none|polygraphy

`none` exports as ModelFleet does (paddle2onnx's C++ optimizer only); `polygraphy` keeps
paddle2onnx's default Python-side Polygraphy optimizer. Nothing is ever pip-installed
(POLYGRAPHY_AUTOINSTALL_DEPS=0, PIP_NO_INDEX=1).
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    model, params, out, inputs_json, samples, optimizer = argv
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    os.environ["PIP_NO_INDEX"] = "1"
    import numpy as np
    import onnxruntime as ort
    import paddle2onnx
    from paddle import inference

    paddle2onnx.export(
        model,
        params,
        save_file=out,
        opset_version=17,
        enable_onnx_checker=True,
        optimize_tool="None" if optimizer == "none" else "polygraphy",
    )
    config = inference.Config(model, params)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    specs = json.loads(inputs_json)
    worst = 0.0
    for index in range(int(samples)):
        rng = np.random.default_rng(index)
        feeds = {}
        for spec in specs:
            low, high = spec.get("range") or (0.0, 1.0)
            shape = tuple(int(d) for d in spec["shape"])
            feeds[spec["name"]] = rng.uniform(float(low), float(high), size=shape).astype("float32")
        for name, value in feeds.items():
            predictor.get_input_handle(name).copy_from_cpu(value)
        predictor.run()
        expected = [
            predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()
        ]
        got = session.run(None, feeds)
        for e, g in zip(expected, got, strict=True):
            worst = max(worst, float(np.max(np.abs(e - g))))
            if not np.allclose(e, g, atol=1e-4, rtol=1e-3):
                print(f"mismatch: max abs {worst}")
                return 1
    print(f"ok: max abs {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
