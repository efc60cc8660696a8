"""Source models: find the files of a Paddle inference model or an ONNX file, fetch them from
object storage, and compute the source digest.

A Paddle source is a directory holding exactly one model file (`*.json`, PIR, or `*.pdmodel`,
legacy) and its `*.pdiparams`; an ONNX source is one `.onnx` file (or a directory holding
exactly one). Called by the conversion/validation pipelines and the CLI commands.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelfleet.artifacts import source_digest
from modelfleet.storage import Storage, iter_prefix_files, parse_s3_uri
from modelfleet.workers.errors import InvalidModel, SourceNotFound

SourceFormat = Literal["paddle", "onnx"]


@dataclass(frozen=True)
class SourceModel:
    """A located source: `model_file` (+ `params_file` for Paddle) under `root`."""

    format: SourceFormat
    root: Path
    model_file: Path
    params_file: Path | None = None

    @property
    def kind(self) -> str:
        if self.format == "onnx":
            return "onnx"
        return "paddle-pir" if self.model_file.suffix == ".json" else "paddle-legacy"

    def files(self) -> list[Path]:
        return [p for p in (self.model_file, self.params_file) if p is not None]


def locate_source(path: Path, fmt: SourceFormat | None = None) -> SourceModel:
    """Find the model files at `path` (a directory or an .onnx file); classify what is wrong."""
    if not path.exists():
        raise SourceNotFound(f"source {path} does not exist", path=str(path))
    if path.is_file():
        if path.suffix == ".onnx" and fmt in (None, "onnx"):
            return SourceModel("onnx", path.parent, path)
        raise InvalidModel(
            f"source {path} is a file; expected a Paddle inference model directory or an .onnx",
            path=str(path),
        )
    files = sorted(p for p in path.iterdir() if p.is_file())
    if not files:
        raise SourceNotFound(f"source directory {path} is empty", path=str(path))
    onnx_files = [p for p in files if p.suffix == ".onnx"]
    if fmt == "onnx" or (fmt is None and onnx_files and not _paddle_models(files)):
        if len(onnx_files) != 1:
            raise InvalidModel(
                f"expected exactly one .onnx file in {path}, found {len(onnx_files)}",
                path=str(path),
            )
        return SourceModel("onnx", path, onnx_files[0])
    models = _paddle_models(files)
    if not models:
        names = ", ".join(p.name for p in files[:10])
        raise SourceNotFound(
            f"no Paddle model file (*.json or *.pdmodel) in {path} (found: {names})",
            path=str(path),
        )
    if len(models) > 1:
        raise InvalidModel(
            f"more than one Paddle model file in {path}: {', '.join(p.name for p in models)}",
            path=str(path),
        )
    model = models[0]
    params = model.with_suffix(".pdiparams")
    if not params.is_file():
        candidates = [p for p in files if p.suffix == ".pdiparams"]
        if len(candidates) != 1:
            raise InvalidModel(
                f"missing parameters: expected {params.name} next to {model.name} in {path}",
                path=str(params),
            )
        params = candidates[0]
    for file in (model, params):
        if file.stat().st_size == 0:
            raise InvalidModel(f"{file} is empty", path=str(file))
    return SourceModel("paddle", path, model, params)


def _paddle_models(files: list[Path]) -> list[Path]:
    return [p for p in files if p.suffix in (".json", ".pdmodel")]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_of(source: SourceModel) -> str:
    """The source digest over the model's own files, named relative to the source root."""
    return source_digest({p.name: file_sha256(p) for p in source.files()})


def fetch_source(storage: Storage, uri: str, dest: Path) -> Path:
    """Download the objects under `uri` (a prefix or one .onnx key) into `dest`."""
    bucket, key = parse_s3_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    if key.endswith(".onnx"):
        if not storage.exists(key, bucket=bucket):
            raise SourceNotFound(f"source {uri} does not exist", uri=uri)
        return storage.get_file(key, dest / Path(key).name, bucket=bucket)
    found = list(iter_prefix_files(storage, key, bucket=bucket))
    if not found:
        raise SourceNotFound(f"no objects under source {uri}", uri=uri)
    for object_key, name in found:
        if not name or "/" in name or name.startswith("."):
            continue  # only the model directory itself, no nested folders
        storage.get_file(object_key, dest / name, bucket=bucket)
    if not any(dest.iterdir()):
        raise SourceNotFound(f"no model files directly under source {uri}", uri=uri)
    return dest


# Paddle's serialized DenseTensor: u32 version, u64 lod levels (+ each: u64 size, bytes),
# u32 tensor version, i32 desc size, TensorDesc protobuf (1: data_type, 2: dims), raw data.
_ELEMENT_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 19: 8, 20: 1, 21: 1, 22: 2,
                  23: 8, 24: 16, 32: 1, 33: 1, 36: 2, 37: 4, 38: 8}  # fmt: skip


def check_params_file(path: Path) -> int:
    """Walk a `.pdiparams` file tensor by tensor; return the tensor count or raise InvalidModel.

    Paddle Inference and paddle2onnx read a truncated file without complaint (the missing
    weights become garbage), so the workers check the structure themselves.
    """
    data = path.read_bytes()
    offset, count = 0, 0

    def fail(why: str) -> InvalidModel:
        return InvalidModel(
            f"{path.name} is corrupt: tensor {count} {why} (offset {offset}, size {len(data)})",
            path=str(path),
        )

    def take(size: int) -> bytes:
        nonlocal offset
        if size < 0 or offset + size > len(data):
            raise fail(f"needs {size} bytes, {len(data) - offset} remain")
        chunk = data[offset : offset + size]
        offset += size
        return chunk

    while offset < len(data):
        if int.from_bytes(take(4), "little") != 0:
            raise fail("has an unknown version")
        for _ in range(int.from_bytes(take(8), "little")):
            take(int.from_bytes(take(8), "little"))
        if int.from_bytes(take(4), "little") != 0:
            raise fail("has an unknown tensor version")
        desc = take(int.from_bytes(take(4), "little", signed=True))
        try:
            dtype, dims = _tensor_desc(desc)
        except ValueError as err:
            raise fail(f"has an unreadable description ({err})") from err
        if dtype not in _ELEMENT_BYTES or any(d < 0 for d in dims):
            raise fail(f"has dtype {dtype} / dims {dims} that Paddle does not write")
        elements = 1
        for dim in dims:
            elements *= dim
        take(elements * _ELEMENT_BYTES[dtype])
        count += 1
    if count == 0:
        raise InvalidModel(f"{path.name} holds no tensors", path=str(path))
    return count


def _tensor_desc(buf: bytes) -> tuple[int, list[int]]:
    """Decode the two fields of Paddle's TensorDesc protobuf without importing paddle."""
    pos, dtype, dims = 0, -1, []

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(buf) or shift > 63:
                raise ValueError("truncated varint")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def signed(value: int) -> int:
        return value - (1 << 64) if value >= 1 << 63 else value

    while pos < len(buf):
        key = varint()
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype = varint()
        elif field == 2 and wire == 0:
            dims.append(signed(varint()))
        elif field == 2 and wire == 2:
            end = pos + varint()
            while pos < end:
                dims.append(signed(varint()))
        elif wire == 0:
            varint()
        elif wire == 2:
            pos += varint()
        else:
            raise ValueError(f"unexpected wire type {wire}")
    if dtype < 0:
        raise ValueError("no data type")
    return dtype, dims


def check_source(source: SourceModel) -> None:
    """Cheap structural checks that name the broken file before any converter touches it."""
    if source.format == "onnx":
        return
    if source.model_file.suffix == ".json":
        import json

        try:
            program = json.loads(source.model_file.read_bytes())
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidModel(
                f"{source.model_file.name} is not a readable PIR program: {err}",
                path=str(source.model_file),
            ) from err
        if not isinstance(program, dict) or "program" not in program:
            raise InvalidModel(
                f"{source.model_file.name} is JSON but not a Paddle PIR program",
                path=str(source.model_file),
            )
    if source.params_file is not None:
        check_params_file(source.params_file)
