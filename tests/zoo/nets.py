"""The zoo's hand-written architectures: the shapes of PP-OCR, PP-YOLOE, ERNIE and U-Net, small.

Each class is a plain `paddle.nn.Layer`; `builders.py` gives them inputs, BatchNorm statistics
and saves them. Sizes are cut down (channels, layers, resolution) so the whole zoo converts on
two CPU cores in minutes; the operator mix is what the real networks use.

Building needs paddlepaddle, so this module imports it at the top: import it only where Paddle
is wanted (the builder subprocess), never from the harness.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn.functional as F  # noqa: N812 (Paddle's own convention)
from paddle import nn


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, act: str | None = "relu") -> Any:
    """Conv + BatchNorm (+ activation): the unit every backbone here is made of."""
    layers: list[Any] = [
        nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, bias_attr=False),
        nn.BatchNorm2D(cout),
    ]
    if act == "relu":
        layers.append(nn.ReLU())
    elif act == "hardswish":
        layers.append(nn.Hardswish())
    elif act == "gelu":
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


class OcrRecognizer(nn.Layer):
    """PP-OCR recognizer shape: conv backbone → height pooled away → 2-layer BiLSTM → CTC logits.

    Input `x` [1, 3, 32, W] with a dynamic width W; output [1, W/4, classes] softmaxed.
    """

    def __init__(self, classes: int = 37) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            conv_bn(3, 16), nn.MaxPool2D(2, 2),
            conv_bn(16, 32), nn.MaxPool2D(2, 2),
            conv_bn(32, 48), nn.MaxPool2D((2, 1), (2, 1)),
            conv_bn(48, 64), nn.MaxPool2D((4, 1), (4, 1)),
        )  # fmt: skip
        self.rnn = nn.LSTM(64, 48, num_layers=2, direction="bidirect")
        self.head = nn.Linear(96, classes)

    def forward(self, x: Any) -> Any:
        feats = self.backbone(x).squeeze(2).transpose([0, 2, 1])  # [N, W/4, C]
        seq, _ = self.rnn(feats)
        return F.softmax(self.head(seq), axis=-1)


class DbDetector(nn.Layer):
    """DB text detector shape: strided backbone, FPN with nearest x2 upsampling, sigmoid maps.

    Input `x` [1, 3, 64, 64]; output the probability and threshold maps [1, 2, 64, 64].
    """

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.LayerList(
            [conv_bn(3, 16, stride=2), conv_bn(16, 32, stride=2), conv_bn(32, 64, stride=2)]
        )
        self.lateral = nn.LayerList([nn.Conv2D(c, 32, 1) for c in (16, 32, 64)])
        self.smooth = conv_bn(32, 32)
        self.head = nn.Sequential(
            nn.Conv2DTranspose(32, 16, 2, stride=2), nn.BatchNorm2D(16), nn.ReLU(),
            nn.Conv2D(16, 2, 1),
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        top = self.lateral[2](feats[2])
        for level in (1, 0):
            top = F.interpolate(top, scale_factor=2, mode="nearest")
            top = top + self.lateral[level](feats[level])
        return F.sigmoid(self.head(self.smooth(top)))


class ErnieLike(nn.Layer):
    """ERNIE shape: int64 token ids + position embeddings, LayerNorm, GELU, attention mask.

    Inputs `input_ids` [1, 16] (int64 < vocab) and `attention_mask` [1, 16] (int64 0/1, as
    tokenizers emit it); output the pooled [CLS] vector through tanh and a classifier, [1, 4].
    (A float mask drawn uniformly in [0, 1] would make attention one-hot on the largest mask
    value whatever q and k are: validation would then be blind to the attention weights.)
    """

    def __init__(self, vocab: int = 1000, hidden: int = 64, layers: int = 2, seq: int = 16):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(seq, hidden)
        self.norm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, 4, hidden * 4, dropout=0.0, activation="gelu", normalize_before=False
        )
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, 4)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        positions = paddle.arange(input_ids.shape[1], dtype="int64").unsqueeze(0)
        x = self.norm(self.word(input_ids) + self.position(positions))
        keep = attention_mask.astype("float32").unsqueeze(1).unsqueeze(2)  # [N, 1, 1, S]
        bias = (1.0 - keep) * -1e4
        x = self.encoder(x, src_mask=bias)
        return self.classifier(F.tanh(self.pooler(x[:, 0])))


REG_MAX = 7  # PP-YOLOE's distribution focal loss bins per box side, minus one


class YoloeLike(nn.Layer):
    """PP-YOLOE shape: inputs `image` [1, 3, 64, 64] and `scale_factor` [1, 2]; a strided
    backbone, an FPN neck with nearest x2 upsampling, per-level heads, boxes decoded from
    distribution-focal distances (softmax over bins, then their expectation) and divided by
    the scale factor. With `nms`, `multiclass_nms3` (as PaddleDetection
    calls it) turns them into [K, 6] detections and a per-image count; without, the outputs are
    the decoded boxes [1, A, 4] and class scores [1, classes, A].
    """

    def __init__(self, classes: int = 4, nms: bool = False, by_size: bool = False) -> None:
        super().__init__()
        self.nms = nms
        self.by_size = by_size  # upsample with size= (paddle2onnx 2.1 refuses scale_factor=)
        self.stem = conv_bn(3, 16, stride=2)
        self.c3 = conv_bn(16, 32, stride=2)  # /4
        self.c4 = conv_bn(32, 48, stride=2)  # /8
        self.c5 = conv_bn(48, 64, stride=2)  # /16
        self.reduce5 = conv_bn(64, 48, 1)
        self.reduce4 = conv_bn(96, 32, 1)
        self.cls = nn.LayerList([nn.Conv2D(c, classes, 3, padding=1) for c in (32, 48)])
        self.reg = nn.LayerList([nn.Conv2D(c, 4 * (REG_MAX + 1), 3, padding=1) for c in (32, 48)])
        self.strides = (8, 16)
        self.project = paddle.arange(REG_MAX + 1, dtype="float32").reshape([1, 1, 1, -1])

    def forward(self, image: Any, scale_factor: Any) -> Any:
        c4 = self.c4(self.c3(self.stem(image)))
        c5 = self.c5(c4)
        p5 = self.reduce5(c5)
        if self.by_size:
            up = F.interpolate(p5, size=[c4.shape[2], c4.shape[3]], mode="nearest")
        else:
            up = F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p4 = self.reduce4(paddle.concat([up, c4], axis=1))
        boxes, scores = [], []
        for level, feat in enumerate((p4, p5)):  # no zip(): to_static rejects strict=
            stride = self.strides[level]
            h, w = feat.shape[2], feat.shape[3]
            ys, xs = paddle.meshgrid(paddle.arange(h, dtype="float32"),
                                     paddle.arange(w, dtype="float32"))  # fmt: skip
            centers = (paddle.stack([xs, ys], axis=-1).reshape([1, -1, 2]) + 0.5) * stride
            bins = self.reg[level](feat).reshape([0, 4, REG_MAX + 1, -1]).transpose([0, 3, 1, 2])
            dist = (F.softmax(bins, axis=-1) * self.project).sum(-1) * stride  # DFL integral
            boxes.append(paddle.concat([centers - dist[:, :, :2], centers + dist[:, :, 2:]], -1))
            scores.append(F.sigmoid(self.cls[level](feat)).flatten(2))
        box = paddle.concat(boxes, axis=1)
        scale = scale_factor.flip([1]).tile([1, 2]).unsqueeze(1)  # [N, 1, 4] as (sx, sy, sx, sy)
        box = box / scale
        score = paddle.concat(scores, axis=2)
        if not self.nms:
            return box, score
        out, _, count = paddle._C_ops.multiclass_nms3(
            box, score, None, 0.05, 100, 20, 0.6, True, 1.0, -1
        )  # PaddleDetection's ppdet/modeling/ops.py multiclass_nms in dygraph/PIR mode
        return out, count


class UNet(nn.Layer):
    """U-Net: two down stages, Conv2DTranspose up, bilinear resize, skip concats.

    Input `x` [1, 3, 64, 64]; output per-pixel class logits [1, 3, 64, 64].
    """

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(conv_bn(3, 16), conv_bn(16, 16))
        self.enc2 = nn.Sequential(nn.MaxPool2D(2), conv_bn(16, 32), conv_bn(32, 32))
        self.enc3 = nn.Sequential(nn.MaxPool2D(2), conv_bn(32, 64), conv_bn(64, 64))
        self.up3 = nn.Conv2DTranspose(64, 32, 2, stride=2)
        self.dec2 = nn.Sequential(conv_bn(64, 32), conv_bn(32, 32))
        self.dec1 = nn.Sequential(conv_bn(48, 16), conv_bn(16, 16))
        self.head = nn.Conv2D(16, classes, 1)

    def forward(self, x: Any) -> Any:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(paddle.concat([self.up3(self.enc3(e2)), e2], axis=1))
        up = F.interpolate(d2, size=e1.shape[2:], mode="bilinear", align_corners=False)
        return self.head(self.dec1(paddle.concat([up, e1], axis=1)))


class GroupNormGelu(nn.Layer):
    """Conv + GroupNorm(8, 32) + GELU blocks (the FIELD-NOTES opset case). `x` [1, 3, 32, 32]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2D(3, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.GELU(),
            nn.Conv2D(32, 32, 3, stride=2, padding=1), nn.GroupNorm(8, 32), nn.GELU(),
            nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(32, 10),
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        return self.body(x)


class SqueezeExcite(nn.Layer):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2D(channels, channels // 4, 1)
        self.expand = nn.Conv2D(channels // 4, channels, 1)

    def forward(self, x: Any) -> Any:
        w = F.hardsigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


class LayerNormSe(nn.Layer):
    """Hardswish conv blocks with SE and a LayerNorm'd token head (PP-LCNet/ViT-hybrid mix).

    `x` [1, 3, 32, 32] → [1, 10].
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, stride=2, act="hardswish")
        self.block = nn.Sequential(
            nn.Conv2D(16, 16, 3, padding=1, groups=16, bias_attr=False), nn.BatchNorm2D(16),
            nn.Hardswish(), SqueezeExcite(16), conv_bn(16, 32, 1, act="hardswish"),
        )  # fmt: skip
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: Any) -> Any:
        tokens = self.block(self.stem(x)).flatten(2).transpose([0, 2, 1])  # [N, HW, C]
        return self.head(F.hardswish(self.norm(tokens)).mean(axis=1))
