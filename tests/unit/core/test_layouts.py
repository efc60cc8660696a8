"""Layouts: channels-first ↔ channels-last, and reading an artifact's layout off its shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelfleet.artifacts import TF_TOOLCHAIN
from modelfleet.layouts import (
    channels_last_shape,
    detect_layout,
    from_layout,
    shape_from_layout,
    to_layout,
)

REQUIREMENTS_TF = Path(__file__).resolve().parents[3] / "requirements-tf.txt"


def test_to_and_from_a_channels_last_layout_round_trip() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = to_layout(x, "NHWC")
    assert nhwc.shape == (2, 4, 5, 3)
    assert nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert np.array_equal(from_layout(nhwc, "NHWC"), x)
    assert to_layout(x, "NCHW") is x and to_layout(x, None) is x


@pytest.mark.parametrize(
    ("source", "artifact", "default_last", "expected"),
    [
        ([1, 3, 32, 32], [1, 32, 32, 3], False, "NHWC"),
        ([1, 3, 32, 32], [1, 3, 32, 32], True, "NCHW"),
        ([1, 4, 4, 4], [1, 4, 4, 4], True, "NHWC"),  # both fit: onnx2tf's rule decides
        ([1, 4, 4, 4], [1, 4, 4, 4], False, "NCHW"),
        ([None, 16, 64], [None, 16, 64], True, "NCW"),
        ([1, 16, 64], [1, 64, 16], False, "NWC"),
        ([1, 10], [1, 10], True, None),  # no channels
        ([None, 3, 8, 8, 8], [None, 8, 8, 8, 3], True, "NDHWC"),
    ],
)
def test_detect_layout(
    source: list[int | None], artifact: list[int | None], default_last: bool, expected: str | None
) -> None:
    assert detect_layout(source, artifact, default_last=default_last) == expected


def test_a_shape_that_fits_neither_order_is_refused() -> None:
    with pytest.raises(ValueError, match="neither"):
        detect_layout([1, 3, 32, 32], [1, 32, 3, 32], default_last=True)
    with pytest.raises(ValueError, match="rank changed"):
        detect_layout([1, 3, 32, 32], [1, 3072], default_last=True)


def test_shapes_move_between_layouts() -> None:
    assert channels_last_shape([1, 3, 32, 24]) == [1, 32, 24, 3]
    assert shape_from_layout([1, 32, 24, 3], "NHWC") == [1, 3, 32, 24]
    assert shape_from_layout([1, 32, 24, 3], "NCHW") == [1, 32, 24, 3]


def test_the_digest_names_the_locked_tensorflow_toolchain() -> None:
    """TF targets' digests name what requirements-tf.txt installs (the worker cannot read the
    versions of another environment)."""
    pins = dict(
        line.split("==")
        for line in REQUIREMENTS_TF.read_text().splitlines()
        if line and not line.startswith("#")
    )
    for item in TF_TOOLCHAIN.split():
        name, version = item.split("==")
        assert pins[name] == version, item
