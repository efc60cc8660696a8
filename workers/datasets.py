"""Model inputs: seeded samples from an input spec, `.npz` datasets, and spec/model checks.

Seeded samples (Polygraphy-style): sample `i` of seed `s` is drawn from
`numpy.random.default_rng([s, i, k])` for the k-th input, so any sample is reproducible alone
and does not depend on how many samples were asked for. Dynamic dimensions (-1) are pinned:
the first to `batch_size`, any other to 1. Value ranges default to [0, 1) for floats, [0, 10]
for integers and to both values for bool; a spec `range: [lo, hi]` overrides them (integers
are drawn from lo..hi inclusive).

Dataset / calibration `.npz`: one array per model input, keyed `<name>` or `input:<name>`,
whose axis 0 holds rows (the batch axis); sample `i` is rows `[i*b, (i+1)*b)` where `b` is the
pinned first dimension. Pure functions except `load_npz`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from modelfleet.api.conversion import InputSpec
from modelfleet.workers.errors import InvalidModel

Feeds = dict[str, npt.NDArray[np.generic]]

_INTEGER_DEFAULT = (0.0, 10.0)
_FLOAT_DEFAULT = (0.0, 1.0)


@dataclass(frozen=True)
class TensorInfo:
    """A model input/output as a runtime reports it: dims are ints, or None when dynamic;
    `shape` is None when the runtime cannot tell before it runs (Paddle, dynamic inputs)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None


def pinned_shape(spec: InputSpec, batch_size: int) -> tuple[int, ...]:
    return tuple(
        (batch_size if i == 0 else 1) if dim == -1 else dim for i, dim in enumerate(spec.shape)
    )


def rows_per_sample(spec: InputSpec, batch_size: int) -> int:
    return pinned_shape(spec, batch_size)[0]


def seeded_sample(
    specs: Sequence[InputSpec], *, seed: int, index: int, batch_size: int = 1
) -> Feeds:
    """Sample `index` for `seed`: reproducible on its own."""
    feeds: Feeds = {}
    for k, spec in enumerate(specs):
        rng = np.random.default_rng([seed, index, k])
        shape = pinned_shape(spec, batch_size)
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.integer):
            lo, hi = spec.range or _INTEGER_DEFAULT
            info = np.iinfo(dtype)
            low, high = max(int(np.ceil(lo)), info.min), min(int(np.floor(hi)), info.max)
            feeds[spec.name] = rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
        else:
            lo, hi = spec.range or _FLOAT_DEFAULT
            feeds[spec.name] = rng.uniform(lo, hi, size=shape).astype(dtype)
    return feeds


def seeded_samples(
    specs: Sequence[InputSpec], *, seed: int, count: int, batch_size: int = 1
) -> list[Feeds]:
    return [seeded_sample(specs, seed=seed, index=i, batch_size=batch_size) for i in range(count)]


def load_npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError) as err:
        raise InvalidModel(f"cannot read dataset {path.name}: {err}", path=str(path)) from err


def dataset_samples(
    arrays: Mapping[str, npt.NDArray[np.generic]],
    specs: Sequence[InputSpec],
    *,
    batch_size: int,
    limit: int | None = None,
    origin: str = "dataset",
) -> list[Feeds]:
    """Split a rows-on-axis-0 dataset into samples matching `specs`; checks names and ranks."""
    columns: dict[str, npt.NDArray[np.generic]] = {}
    for i, spec in enumerate(specs):
        array = arrays.get(f"input:{spec.name}", arrays.get(spec.name))
        if array is None:
            raise InvalidModel(
                f"{origin} has no array for input '{spec.name}' (inputs[{i}].name); "
                f"keys: {', '.join(sorted(arrays)) or 'none'}",
                field=f"inputs[{i}].name",
            )
        if array.ndim != len(spec.shape):
            raise InvalidModel(
                f"{origin} array '{spec.name}' has rank {array.ndim}, inputs[{i}].shape "
                f"{spec.shape} has rank {len(spec.shape)}",
                field=f"inputs[{i}].shape",
            )
        for axis, (have, want) in enumerate(zip(array.shape[1:], spec.shape[1:], strict=True)):
            if want not in (-1, have):
                raise InvalidModel(
                    f"{origin} array '{spec.name}' has dimension {axis + 1} = {have}, "
                    f"inputs[{i}].shape says {want}",
                    field=f"inputs[{i}].shape",
                )
        columns[spec.name] = array.astype(np.dtype(spec.dtype), copy=False)
    rows = min(len(a) for a in columns.values()) if columns else 0
    step = {spec.name: rows_per_sample(spec, batch_size) for spec in specs}
    count = min(rows // s for s in step.values()) if step else 0
    if limit is not None:
        count = min(count, limit)
    if count == 0:
        raise InvalidModel(f"{origin} holds {rows} rows, fewer than one sample", field="rows")
    return [
        {name: col[n * step[name] : (n + 1) * step[name]] for name, col in columns.items()}
        for n in range(count)
    ]


def check_inputs(specs: Sequence[InputSpec], model_inputs: Sequence[TensorInfo]) -> None:
    """The spec must name every model input once, with the model's rank and fixed dims."""
    by_name = {t.name: t for t in model_inputs}
    for i, spec in enumerate(specs):
        model = by_name.get(spec.name)
        if model is None:
            raise InvalidModel(
                f"inputs[{i}].name '{spec.name}' is not an input of the model "
                f"(model inputs: {', '.join(by_name)})",
                field=f"inputs[{i}].name",
            )
        if model.shape is None:
            continue
        if len(spec.shape) != len(model.shape):
            raise InvalidModel(
                f"inputs[{i}].shape {spec.shape} has rank {len(spec.shape)}, but model input "
                f"'{spec.name}' has rank {len(model.shape)} (shape {_dims(model.shape)})",
                field=f"inputs[{i}].shape",
            )
        for axis, (want, have) in enumerate(zip(spec.shape, model.shape, strict=True)):
            if want != -1 and have is not None and want != have:
                raise InvalidModel(
                    f"inputs[{i}].shape[{axis}] = {want}, but model input '{spec.name}' has "
                    f"{have} there (shape {_dims(model.shape)})",
                    field=f"inputs[{i}].shape",
                )
    named = {s.name for s in specs}
    missing = [t.name for t in model_inputs if t.name not in named]
    if missing:
        raise InvalidModel(
            f"inputs does not describe model input(s): {', '.join(missing)}", field="inputs"
        )


def specs_from_model(model_inputs: Sequence[TensorInfo]) -> list[InputSpec]:
    """Input specs read off a model signature (dynamic dims become -1, default ranges)."""
    specs = []
    for tensor in model_inputs:
        dtype = tensor.dtype if tensor.dtype in _SPEC_DTYPES else "float32"
        shape = [-1 if d is None else d for d in tensor.shape or ()] or [1]
        specs.append(InputSpec(name=tensor.name, shape=shape, dtype=dtype))
    return specs


_SPEC_DTYPES = {"float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool"}


def _dims(shape: Sequence[int | None]) -> list[int]:
    return [-1 if d is None else d for d in shape]
