"""Tensor layouts: channels-first (Paddle, ONNX) against channels-last (TensorFlow, TFLite).

onnx2tf turns the 4-D NCHW tensors of an ONNX model into NHWC (3-D NCW into NWC, 5-D NCDHW
into NDHWC). The manifest records each tensor's layout (`artifacts.TensorSignature.layout`);
the validation (`modelfleet.workers.tf_runtimes`) and the device engines (`modelfleet.engines`)
feed the source's channels-first tensors through `to_layout` and read outputs back through
`from_layout`, so a tensor whose layout changed without the record saying so is compared in
the wrong order and fails, instead of passing by luck or by a guess. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelfleet.artifacts import Layout

CHANNELS_FIRST: dict[int, Layout] = {3: "NCW", 4: "NCHW", 5: "NCDHW"}
CHANNELS_LAST: dict[int, Layout] = {3: "NWC", 4: "NHWC", 5: "NDHWC"}

Dim = int | str | None


def is_channels_last(layout: Layout | None) -> bool:
    return layout in CHANNELS_LAST.values()


def to_layout(array: npt.NDArray[Any], layout: Layout | None) -> npt.NDArray[Any]:
    """A channels-first array as the artifact takes it (moved axes are copied contiguous)."""
    if not is_channels_last(layout) or array.ndim < 3:
        return array
    return np.ascontiguousarray(np.moveaxis(array, 1, -1))


def from_layout(array: npt.NDArray[Any], layout: Layout | None) -> npt.NDArray[Any]:
    """An array the artifact returned, back in the source's channels-first order."""
    if not is_channels_last(layout) or array.ndim < 3:
        return array
    return np.ascontiguousarray(np.moveaxis(array, -1, 1))


def channels_last_shape(shape: Sequence[Dim]) -> list[Dim]:
    """[N, C, *spatial] → [N, *spatial, C]."""
    dims = list(shape)
    return [dims[0], *dims[2:], dims[1]] if len(dims) >= 3 else dims


def shape_from_layout(shape: Sequence[Dim], layout: Layout | None) -> list[Dim]:
    """An artifact tensor's dimensions in the source's channels-first order."""
    dims = list(shape)
    if not is_channels_last(layout) or len(dims) < 3:
        return dims
    return [dims[0], dims[-1], *dims[1:-1]]


def detect_layout(
    source: Sequence[Dim] | None, artifact: Sequence[Dim] | None, *, default_last: bool
) -> Layout | None:
    """The artifact tensor's layout, read off its shape against the source's; None for ranks
    without channels (or unknown shapes). When both orders fit (C equal to the spatial sizes,
    or dynamic dimensions), `default_last` decides: onnx2tf's own rule (inputs of rank 3-5
    become channels-last). Two shapes that fit neither order are a converter the record cannot
    describe: ValueError."""
    if source is None or artifact is None or len(source) not in CHANNELS_FIRST:
        return None
    rank = len(source)
    if len(artifact) != rank:
        raise ValueError(f"rank changed: {list(source)} became {list(artifact)}")
    first = _fits(source, artifact)
    last = _fits(channels_last_shape(source), artifact)
    if first and last:
        return CHANNELS_LAST[rank] if default_last else CHANNELS_FIRST[rank]
    if last:
        return CHANNELS_LAST[rank]
    if first:
        return CHANNELS_FIRST[rank]
    raise ValueError(f"{list(artifact)} is neither {list(source)} nor its channels-last order")


def _fits(expected: Sequence[Dim], actual: Sequence[Dim]) -> bool:
    return all(
        not isinstance(e, int) or not isinstance(a, int) or e == a
        for e, a in zip(expected, actual, strict=True)
    )
