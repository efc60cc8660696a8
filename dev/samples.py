"""Tiny but real Paddle models, saved as Paddle inference models, for tests, demo and benchmarks.

Each builder writes `<out_dir>/inference.json` (PIR; or `inference.pdmodel` when asked for the
legacy format) + `inference.pdiparams` and returns a `SampleModel` with the input spec to use.
Outputs are checked to be non-degenerate (they vary across inputs) before a builder returns.

- `build_cnn_classifier`: conv+bn+relu x2 → avg-pool → linear, trained for a few steps on a
  synthetic image task; `classification_dataset` draws labelled-looking images from the same
  task (for calibration and dataset validation of int8 targets).
- `build_mlp`: linear+relu MLP (optionally saved in the legacy `.pdmodel` format).
- `build_dynamic_batch`: layer norm + gelu MLP whose batch dimension is dynamic (-1).
- `build_two_output`: float scores and an int64 argmax label.
- `build_unconvertible`: uses `cumprod`, which paddle2onnx has no converter for.

Building needs paddlepaddle; importing this module does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelfleet.api.conversion import InputSpec

PREFIX = "inference"


@dataclass(frozen=True)
class SampleModel:
    name: str
    model_dir: Path
    model_file: Path
    params_file: Path
    inputs: tuple[InputSpec, ...]
    output_count: int
    seed: int
    num_classes: int | None = None
    unsupported_operators: tuple[str, ...] = field(default_factory=tuple)

    @property
    def convertible(self) -> bool:
        return not self.unsupported_operators

    def input_specs(self) -> list[InputSpec]:
        return [spec.model_copy() for spec in self.inputs]


def build_cnn_classifier(
    out_dir: Path, seed: int = 0, *, num_classes: int = 10, image_size: int = 32, steps: int = 30
) -> SampleModel:
    """A conv+bn+relu image classifier, input `image` [1, 3, H, W] in [0, 1]."""
    import paddle
    from paddle import nn

    paddle.seed(seed)
    prototypes = _prototypes(seed, num_classes, image_size)

    class CnnClassifier(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2D(3, 8, 3, stride=2, padding=1),
                nn.BatchNorm2D(8),
                nn.ReLU(),
                nn.Conv2D(8, 16, 3, stride=2, padding=1),
                nn.BatchNorm2D(16),
                nn.ReLU(),
                nn.AvgPool2D(2),
            )
            self.classifier = nn.Linear(16 * (image_size // 8) ** 2, num_classes)

        def forward(self, image: Any) -> Any:
            return self.classifier(paddle.flatten(self.features(image), 1))

    model = CnnClassifier()
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    model.train()
    for step in range(steps):
        images, labels = _labelled_images(prototypes, 64, seed=[seed, 1, step])
        loss = nn.functional.cross_entropy(
            model(paddle.to_tensor(images)), paddle.to_tensor(labels)
        )
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    model.eval()
    spec = InputSpec(name="image", shape=[1, 3, image_size, image_size], range=[0.0, 1.0])
    return save_inference_model(
        "cnn-classifier", model, out_dir, [spec], seed, num_classes=num_classes
    )


def classification_dataset(
    sample: SampleModel, rows: int, seed: int
) -> dict[str, npt.NDArray[np.float32]]:
    """Images of the classifier's task, rows on axis 0: `{"image": (rows, 3, H, W)}`."""
    if sample.num_classes is None:
        raise ValueError(f"{sample.name} is not a classifier")
    image_size = sample.inputs[0].shape[-1]
    prototypes = _prototypes(sample.seed, sample.num_classes, image_size)
    images, _ = _labelled_images(prototypes, rows, seed=[seed, 2])
    return {sample.inputs[0].name: images}


def _prototypes(seed: int, classes: int, size: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng([seed, 0]).random((classes, 3, size, size)).astype(np.float32)


def _labelled_images(
    prototypes: npt.NDArray[np.float32], rows: int, seed: list[int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(prototypes), rows)
    noise = rng.random((rows, *prototypes.shape[1:]))
    images = np.clip(0.5 * prototypes[labels] + 0.5 * noise, 0.0, 1.0).astype(np.float32)
    return images, labels.astype(np.int64)


def build_mlp(out_dir: Path, seed: int = 0, *, legacy: bool = False) -> SampleModel:
    """Linear+ReLU MLP, input `features` [1, 16] in [-1, 1]; `legacy` saves `.pdmodel`."""
    import paddle
    from paddle import nn

    paddle.seed(seed)
    spec = InputSpec(name="features", shape=[1, 16], range=[-1.0, 1.0])

    def make() -> Any:
        return nn.Sequential(
            nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
        )

    if legacy:
        with paddle.pir_utils.DygraphOldIrGuard():
            model = make()
            model.eval()
            return save_inference_model("mlp-legacy", model, out_dir, [spec], seed)
    model = make()
    model.eval()
    return save_inference_model("mlp", model, out_dir, [spec], seed)


def build_dynamic_batch(out_dir: Path, seed: int = 0) -> SampleModel:
    """LayerNorm + GELU MLP, input `x` [-1, 12] (dynamic batch) in [-2, 2]."""
    import paddle
    from paddle import nn

    paddle.seed(seed)
    model = nn.Sequential(nn.Linear(12, 24), nn.LayerNorm(24), nn.GELU(), nn.Linear(24, 6))
    model.eval()
    spec = InputSpec(name="x", shape=[-1, 12], range=[-2.0, 2.0])
    return save_inference_model("dynamic-batch", model, out_dir, [spec], seed)


def build_two_output(out_dir: Path, seed: int = 0) -> SampleModel:
    """Input `x` [1, 8]; outputs softmax scores [1, 5] (float32) and argmax label [1] (int64)."""
    import paddle
    from paddle import nn

    paddle.seed(seed)

    class TwoOutput(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(8, 16)
            self.head = nn.Linear(16, 5)

        def forward(self, x: Any) -> Any:
            logits = self.head(nn.functional.relu(self.hidden(x))) * 4.0
            return nn.functional.softmax(logits, axis=-1), paddle.argmax(logits, axis=-1)

    model = TwoOutput()
    model.eval()
    spec = InputSpec(name="x", shape=[1, 8], range=[-1.0, 1.0])
    return save_inference_model("two-output", model, out_dir, [spec], seed)


def build_unconvertible(out_dir: Path, seed: int = 0) -> SampleModel:
    """Linear followed by `cumprod`, an operator paddle2onnx cannot convert."""
    import paddle
    from paddle import nn

    paddle.seed(seed)

    class Unconvertible(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 6)

        def forward(self, x: Any) -> Any:
            return paddle.cumprod(self.linear(x), dim=1)

    model = Unconvertible()
    model.eval()
    spec = InputSpec(name="x", shape=[1, 6], range=[-1.0, 1.0])
    return save_inference_model(
        "unconvertible", model, out_dir, [spec], seed, unsupported=("cumprod",)
    )


def save_inference_model(
    name: str,
    model: Any,
    out_dir: Path,
    specs: list[InputSpec],
    seed: int,
    *,
    num_classes: int | None = None,
    unsupported: tuple[str, ...] = (),
) -> SampleModel:
    """Save a Paddle layer as an inference model (PIR `.json` or legacy `.pdmodel`, plus
    `.pdiparams`) after checking its outputs are not degenerate; the benchmarks use it too."""
    import paddle

    out_dir.mkdir(parents=True, exist_ok=True)
    input_spec = [
        paddle.static.InputSpec([None if d == -1 else d for d in s.shape], s.dtype, s.name)
        for s in specs
    ]
    outputs = _check_spread(name, model, specs)
    paddle.jit.save(model, str(out_dir / PREFIX), input_spec=input_spec)
    model_file = out_dir / f"{PREFIX}.json"
    if not model_file.exists():
        model_file = out_dir / f"{PREFIX}.pdmodel"
    (out_dir / f"{PREFIX}.pdiparams.info").unlink(missing_ok=True)
    return SampleModel(
        name=name,
        model_dir=out_dir,
        model_file=model_file,
        params_file=out_dir / f"{PREFIX}.pdiparams",
        inputs=tuple(specs),
        output_count=outputs,
        seed=seed,
        num_classes=num_classes,
        unsupported_operators=unsupported,
    )


def _check_spread(name: str, model: Any, specs: list[InputSpec]) -> int:
    """Run 8 seeded inputs through the model; every float output must vary across them."""
    import paddle

    rng = np.random.default_rng(12345)
    runs = []
    with paddle.no_grad():
        for _ in range(8):
            feeds = []
            for s in specs:
                shape = [2 if d == -1 else d for d in s.shape]
                lo, hi = s.range or (0.0, 1.0)
                feeds.append(paddle.to_tensor(rng.uniform(lo, hi, shape).astype(s.dtype)))
            out = model(*feeds)
            outs = out if isinstance(out, list | tuple) else [out]
            runs.append([o.numpy() for o in outs])
    for k in range(len(runs[0])):
        stacked = np.stack([r[k] for r in runs])
        if np.issubdtype(stacked.dtype, np.floating) and float(stacked.std(axis=0).mean()) < 1e-4:
            raise RuntimeError(f"sample model {name}: output {k} does not vary with its input")
    return len(runs[0])
