"""The benchmarks' architectures, built with Paddle and saved as inference models the way
`modelfleet.dev.samples` saves its samples (`paddle.jit.save` → inference.json + .pdiparams).

Small (`ARCHITECTURES`, every benchmark):

- `mobilenet`: a MobileNet-like CNN (depthwise-separable conv + bn + relu6 blocks), 3x64x64;
- `mlp`: a 4-layer linear+relu MLP, 256 features;
- `transformer`: a 2-layer transformer encoder (4 heads, d=128) over 32 tokens, classifying the
  mean-pooled sequence.

Realistic size (`LARGE_ARCHITECTURES`, the conversion benchmark only, where fixed costs are
the question):

- `mobilenetv2`: `paddle.vision.models.mobilenet_v2(pretrained=False)`, ImageNet-shaped
  (1000 classes, 3x224x224, 3.5 M parameters), built locally (nothing is downloaded), its
  convolutions re-initialized Kaiming-normal so the untrained logits depend on the input.

All are untrained (seeded weights): latency and agreement do not need accuracy. Building needs
paddlepaddle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelfleet.api.conversion import InputSpec
from modelfleet.dev.samples import SampleModel, save_inference_model

ARCHITECTURES = ("mobilenet", "mlp", "transformer")
LARGE_ARCHITECTURES = ("mobilenetv2",)


def _mobilenet() -> tuple[Any, list[InputSpec]]:
    import paddle
    from paddle import nn

    def kaiming() -> Any:
        return paddle.ParamAttr(initializer=nn.initializer.KaimingNormal())

    def separable(cin: int, cout: int, stride: int) -> list[Any]:
        return [
            nn.Conv2D(
                cin,
                cin,
                3,
                stride=stride,
                padding=1,
                groups=cin,
                weight_attr=kaiming(),
                bias_attr=False,
            ),
            nn.BatchNorm2D(cin),
            nn.ReLU6(),
            nn.Conv2D(cin, cout, 1, weight_attr=kaiming(), bias_attr=False),
            nn.BatchNorm2D(cout),
            nn.ReLU6(),
        ]

    class MobileNetLike(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = [
                nn.Conv2D(3, 16, 3, stride=2, padding=1, weight_attr=kaiming(), bias_attr=False)
            ]
            layers += [nn.BatchNorm2D(16), nn.ReLU6()]
            for cin, cout, stride in ((16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2),
                                      (128, 128, 1), (128, 256, 2)):  # fmt: skip
                layers += separable(cin, cout, stride)
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.head = nn.Linear(256, 100)

        def forward(self, image: Any) -> Any:
            return self.head(self.pool(self.features(image)).flatten(1))

    spec = InputSpec(name="image", shape=[1, 3, 64, 64], range=[0.0, 1.0])
    return MobileNetLike(), [spec]


def _mlp() -> tuple[Any, list[InputSpec]]:
    from paddle import nn

    model = nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
        nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10),
    )  # fmt: skip
    return model, [InputSpec(name="features", shape=[1, 256], range=[-1.0, 1.0])]


def _transformer() -> tuple[Any, list[InputSpec]]:
    from paddle import nn

    class Encoder(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.TransformerEncoderLayer(
                d_model=128, nhead=4, dim_feedforward=256, dropout=0.0, activation="gelu"
            )
            self.encoder = nn.TransformerEncoder(layer, num_layers=2)
            self.head = nn.Linear(128, 16)

        def forward(self, tokens: Any) -> Any:
            return self.head(self.encoder(tokens).mean(axis=1))

    return Encoder(), [InputSpec(name="tokens", shape=[1, 32, 128], range=[-1.0, 1.0])]


def _mobilenet_v2() -> tuple[Any, list[InputSpec]]:
    import paddle
    from paddle import nn
    from paddle.vision.models import mobilenet_v2

    model = mobilenet_v2(pretrained=False, num_classes=1000)
    with paddle.no_grad():  # its default init leaves the logits ~1e-8, the same for any input
        for layer in model.sublayers():
            if isinstance(layer, nn.Conv2D):
                nn.initializer.KaimingNormal()(layer.weight)
    spec = InputSpec(name="image", shape=[1, 3, 224, 224], range=[0.0, 1.0])
    return model, [spec]


BUILDERS: dict[str, Callable[[], tuple[Any, list[InputSpec]]]] = {
    "mobilenet": _mobilenet,
    "mlp": _mlp,
    "transformer": _transformer,
    "mobilenetv2": _mobilenet_v2,
}


def build(name: str, out_dir: Path, seed: int = 0) -> SampleModel:
    """Build architecture `name` with seeded weights and save it under `out_dir` (the samples'
    saver, which also checks that the outputs are not degenerate)."""
    import paddle

    paddle.seed(seed)
    model, specs = BUILDERS[name]()
    model.eval()
    return save_inference_model(name, model, out_dir, list(specs), seed)
