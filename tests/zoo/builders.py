"""Build one zoo architecture from code and save it as a Paddle inference model (PIR).

`python -m zoo.builders NAME OUT_DIR` (run by the harness, one process per architecture, so a
Paddle crash while building is recorded, not fatal) writes `OUT_DIR/inference.json` +
`inference.pdiparams`. Weights are seeded random; BatchNorm gets realistic running statistics
from three train-mode forward passes on random inputs, so activations have a trained net's
scale (an untrained BatchNorm is the identity and leaves logits near zero).

The architecture table (names, inputs, what each exercises) is `catalog.ARCHITECTURES`; this
module is the Paddle side and imports Paddle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle import nn

from zoo import nets
from zoo.catalog import ARCHITECTURES, Architecture

PREFIX = "inference"
CALIBRATION_PASSES = 3
CALIBRATION_BATCH = 4


class _MainLogits(nn.Layer):
    """paddle.vision's GoogLeNet returns (logits, aux1, aux2); inference exports keep logits."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Any) -> Any:
        return self.inner(x)[0]


VISION = ("resnet50", "mobilenetv3", "shufflenetv2", "densenet121", "googlenet")


def _vision(name: str) -> Callable[[], Any]:
    def make() -> Any:
        from paddle.vision import models

        factories: dict[str, Callable[[], Any]] = {
            "resnet50": lambda: models.resnet50(pretrained=False),
            "mobilenetv3": lambda: models.mobilenet_v3_small(pretrained=False),
            "shufflenetv2": lambda: models.shufflenet_v2_x1_0(pretrained=False),
            "densenet121": lambda: models.densenet121(pretrained=False),
            "googlenet": lambda: _MainLogits(models.googlenet(pretrained=False)),
        }
        model = factories[name]()
        with paddle.no_grad():  # their default init leaves some logits ~1e-8 for any input
            for layer in model.sublayers():
                if isinstance(layer, nn.Conv2D):
                    nn.initializer.KaimingNormal()(layer.weight)
        return model

    return make


FACTORIES: dict[str, Callable[[], Any]] = {
    **{n: _vision(n) for n in VISION},
    "ocr-rec": nets.OcrRecognizer,
    "ocr-det": nets.DbDetector,
    "ernie": nets.ErnieLike,
    "yoloe": lambda: nets.YoloeLike(nms=False),
    "yoloe-nms": lambda: nets.YoloeLike(nms=True),
    "yoloe-upsize": lambda: nets.YoloeLike(by_size=True),
    "yoloe-nms-upsize": lambda: nets.YoloeLike(nms=True, by_size=True),
    "unet": nets.UNet,
    "groupnorm-gelu": nets.GroupNormGelu,
    "layernorm-se": nets.LayerNormSe,
}


def random_feeds(arch: Architecture, rng: np.random.Generator, batch: int) -> list[Any]:
    """Inputs within each input's range, at its run shape with `batch` rows."""
    feeds = []
    for spec in arch.inputs:
        shape = [batch, *spec.run_shape[1:]]
        lo, hi = spec.value_range
        if spec.dtype == "int64":
            value = rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(np.int64)
        else:
            value = rng.uniform(lo, hi, size=shape).astype(spec.dtype)
        feeds.append(paddle.to_tensor(value))
    return feeds


def build(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Build, give BatchNorm statistics, check the outputs vary, save; returns the model file."""
    arch = ARCHITECTURES[name]
    paddle.seed(seed)
    model = FACTORIES[name]()
    rng = np.random.default_rng(seed)
    has_bn = any(isinstance(m, nn.layer.norm._BatchNormBase) for m in model.sublayers())
    if has_bn:
        model.train()
        with paddle.no_grad():
            for _ in range(CALIBRATION_PASSES):
                model(*random_feeds(arch, rng, CALIBRATION_BATCH))
    model.eval()
    _check_spread(name, model, arch, rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [
        paddle.static.InputSpec([None if d == -1 else d for d in s.save_shape], s.dtype, s.name)
        for s in arch.inputs
    ]
    paddle.jit.save(model, str(out_dir / PREFIX), input_spec=specs)
    (out_dir / f"{PREFIX}.pdiparams.info").unlink(missing_ok=True)
    return out_dir / f"{PREFIX}.json"


def _check_spread(name: str, model: Any, arch: Architecture, rng: np.random.Generator) -> None:
    """A zoo net whose outputs ignore the input would make every comparison trivially pass."""
    with paddle.no_grad():
        runs = []
        for _ in range(4):
            out = model(*random_feeds(arch, rng, 1))
            runs.append([o.numpy() for o in (out if isinstance(out, list | tuple) else [out])])
    first = runs[0][0]
    if len({r[0].shape for r in runs}) > 1:
        return  # a data-dependent shape (NMS) already varies
    spread = np.stack([r[0] for r in runs]).astype(np.float64).std(axis=0).mean()
    if np.issubdtype(first.dtype, np.floating) and spread < 1e-3 * np.abs(first).max():
        raise RuntimeError(f"zoo net {name}: output 0 does not vary with its input")
    print(f"{name}: output 0 max |y| {np.abs(first).max():.3g}, spread {spread:.3g}")


if __name__ == "__main__":
    print(build(sys.argv[1], Path(sys.argv[2])))
