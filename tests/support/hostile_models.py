"""Tiny Paddle models, built from code, that real architectures' failures come from (issue 11):
each crashes a converter, is refused by paddle2onnx, or cannot run in Paddle Inference with its
defaults. Building needs paddlepaddle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelfleet.api.conversion import InputSpec
from modelfleet.dev.samples import SampleModel, save_inference_model


def ocr_recognizer(out_dir: Path) -> SampleModel:
    """Conv backbone → 2-layer bidirectional LSTM → linear CTC head, input 1x3x32xW (dynamic
    W): ONNX Runtime's session creation on its fp16 conversion dies by SIGSEGV."""
    import paddle
    from paddle import nn

    paddle.seed(0)

    class Recognizer(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(
                nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU(), nn.MaxPool2D(2, 2),
                nn.Conv2D(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2D((16, 1)),
            )  # fmt: skip
            self.lstm = nn.LSTM(16, 16, num_layers=2, direction="bidirect")
            self.head = nn.Linear(32, 11)

        def forward(self, x: Any) -> Any:
            features = self.backbone(x).squeeze(2).transpose([0, 2, 1])
            return self.head(self.lstm(features)[0])

    model = Recognizer()
    model.eval()
    spec = InputSpec(name="x", shape=[1, 3, 32, -1])
    return save_inference_model("ocr-recognizer", model, out_dir, [spec], 0)


def upsampler(out_dir: Path, **interpolate: Any) -> SampleModel:
    """One conv, then `F.interpolate(**interpolate)`; input 1x3x8x8."""
    import paddle
    import paddle.nn.functional as F  # noqa: N812
    from paddle import nn

    paddle.seed(0)

    class Upsampler(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2D(3, 4, 3, padding=1)

        def forward(self, x: Any) -> Any:
            return F.interpolate(self.conv(x), **interpolate)

    model = Upsampler()
    model.eval()
    return save_inference_model(
        "upsampler", model, out_dir, [InputSpec(name="x", shape=[1, 3, 8, 8])], 0
    )


def unet(out_dir: Path) -> SampleModel:
    """Down conv, bilinear `interpolate(size=..., align_corners=False)` back up, skip concat:
    Paddle Inference fails to run it under PIR with oneDNN."""
    import paddle
    import paddle.nn.functional as F  # noqa: N812
    from paddle import nn

    paddle.seed(0)

    class UNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2D(3, 4, 3, stride=2, padding=1)
            self.skip = nn.Conv2D(3, 4, 3, padding=1)
            self.out = nn.Conv2D(8, 2, 1)

        def forward(self, x: Any) -> Any:
            down = F.relu(self.down(x))
            up = F.interpolate(down, size=[16, 16], mode="bilinear", align_corners=False)
            return self.out(paddle.concat([up, self.skip(x)], axis=1))

    model = UNet()
    model.eval()
    return save_inference_model(
        "unet", model, out_dir, [InputSpec(name="x", shape=[1, 3, 16, 16])], 0
    )


def unrunnable(out_dir: Path) -> Path:
    """Linear, then a reshape to 3 rows that no batch of 1 fits: it saves, converts and loads,
    and Paddle Inference raises running it in every configuration."""
    import paddle
    from paddle import nn

    paddle.seed(0)

    class Unrunnable(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 4)

        def forward(self, x: Any) -> Any:
            return paddle.reshape(self.linear(x), [3, -1])

    model = Unrunnable()
    model.eval()
    spec = paddle.static.InputSpec([None, 3], "float32", "x")
    paddle.jit.save(model, str(out_dir / "inference"), input_spec=[spec])
    return out_dir


def groupnorm_gelu(out_dir: Path, seed: int = 0) -> SampleModel:
    """conv → GroupNorm(8, 32) → GELU → 1x1 conv: paddle2onnx 2.1.0 writes an uninitialised
    InstanceNormalization epsilon for it (docs/remedies.md), so its fp32 export fails a strict
    element rule until the norm-epsilon repair."""
    import paddle
    from paddle import nn

    class GroupNormGelu(nn.Layer):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2D(3, 32, 3, padding=1)
            self.norm = nn.GroupNorm(8, 32)
            self.act = nn.GELU()
            self.head = nn.Conv2D(32, 4, 1)

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            return self.head(self.act(self.norm(self.conv(x))))

    paddle.seed(seed)
    model = GroupNormGelu()
    model.eval()
    spec = InputSpec(name="x", shape=[1, 3, 16, 16], range=[-1.0, 1.0])
    return save_inference_model("groupnorm-gelu", model, out_dir, [spec], seed)
