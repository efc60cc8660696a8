"""Inference engines behind one small seam: load a model for a runtime request, run it, and say
which backend really took it.

The agent probes an artifact on the session an `Engine` builds, and the application opens the
same session from `runtime.json` (`modelfleet.device`), so both live here, in the shared core.
A new engine (Paddle Lite) is one more class with `name`, `facts()` and `load()`, added to
`ENGINES`. `litert` (`ai-edge-litert`, the LiteRT runtime wheel) runs `.tflite` artifacts
through their `serving_default` signature; a request-less load of a file that is a TFLite
flatbuffer (`TFL3` at byte 4) gets it, so a tflite artifact runs where no runtime was asked
for. Its tensors are the artifact's (channels-last where onnx2tf made them so): the probe of a
TensorFlow artifact is written in those terms (`modelfleet.workers.steps.write_probe_file`).

Backends in a request are in order of preference. Those the device does not have are skipped;
none left is `Unavailable`. `fallback` means the first requested backend did not take the
graph (ONNX Runtime: it is not among `session.get_providers()`, which also covers the silent
CUDA → CPU fallback; OpenVINO: not among the compiled model's `EXECUTION_DEVICES`). With
`allowFallback: false` that is `FallbackRefused`. OpenVINO compiles fp32 models at bf16 on CPUs
that advertise it (ResNet-50 logits 0.84 off), so `INFERENCE_PRECISION_HINT` is f32 unless the
request says otherwise. Engines are imported lazily: a device has the ones it has.

`observe` (the agent's probe session) also records which backend took how many kernels in the
first run (ONNX Runtime's profiler, stopped after that run; it changes no numbers), so a
partial fallback - CUDA taking most of the graph, the CPU the rest - is visible too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from modelfleet.api.device import EngineFacts, KernelPlacement, RuntimeRequest, SlotRuntime

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
LITERT = "litert"
LITERT_CPU = "CPU"
TFLITE_IDENTIFIER = b"TFL3"
TFLITE_SIGNATURE = "serving_default"
CPU_PROVIDER = "CPUExecutionProvider"
OPENVINO_DEFAULTS: Mapping[str, str] = {"INFERENCE_PRECISION_HINT": "f32"}


class EngineError(Exception):
    """A session could not be built as requested; `reason` is the status reason."""

    reason: ClassVar[str] = "LoadFailed"


class Unavailable(EngineError):  # noqa: N818 (named for its reason)
    reason = "RuntimeUnavailable"


class FallbackRefused(EngineError):  # noqa: N818 (named for its reason)
    reason = "RuntimeFallback"


class LoadRefused(EngineError):  # noqa: N818 (named for its reason)
    reason = "LoadFailed"


@dataclass(frozen=True)
class Description:
    """What a session was asked for and what it uses: `target` and `options` rebuild it."""

    engine: str
    requested: tuple[str, ...]
    used: tuple[str, ...]
    target: tuple[str, ...]
    """The backends the session was built with (present on this device, in order)."""
    options: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    placement: Mapping[str, int] = field(default_factory=dict)
    """Kernels per backend in the first run, where observed; empty otherwise."""

    @property
    def fallback(self) -> bool:
        return is_fallback(self.requested, self.used)

    def status(self) -> SlotRuntime:
        return SlotRuntime(
            engine=self.engine,
            requested=list(self.requested),
            used=list(self.used),
            fallback=self.fallback,
            placement=[KernelPlacement(backend=b, kernels=n) for b, n in self.placement.items()],
        )


class Session(Protocol):
    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs by name for one set of inputs by name."""
        ...

    def describe(self) -> Description: ...


class Engine(Protocol):
    name: str

    def facts(self) -> EngineFacts | None:
        """Version and backends on this device; None when the engine is not installed."""
        ...

    def load(self, model: Path, request: RuntimeRequest, *, observe: bool = False) -> Session: ...


def is_fallback(requested: Sequence[str], used: Sequence[str]) -> bool:
    """Whether the preferred backend is not among those used ("GPU" matches "GPU.0"): pure."""
    if not requested:
        return False
    first = requested[0]
    return not any(u == first or u.startswith(f"{first}.") for u in used)


def present(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The requested backends this device has, in the requested order: pure."""
    return [r for r in requested if any(a == r or a.startswith(f"{r}.") for a in available)]


def requested_backends(request: RuntimeRequest) -> list[str]:
    """The request's backend list with the engine's default filled in: pure."""
    if request.engine == OPENVINO:
        return list(request.devices) or ["CPU"]
    if request.engine == LITERT:
        return list(request.devices) or [LITERT_CPU]
    return list(request.providers) or [CPU_PROVIDER]


def engine_for(name: str) -> Engine:
    engine = ENGINES.get(name)
    if engine is None:
        raise Unavailable(f"no engine {name!r} in this agent (it knows {', '.join(ENGINES)})")
    return engine


def load(model: Path, request: RuntimeRequest | None = None, *, observe: bool = False) -> Session:
    """Build the session `request` asks for (default: ONNX Runtime on the CPU); refuse a
    fallback the request does not allow."""
    request = request or RuntimeRequest(engine=LITERT if is_tflite(model) else ONNXRUNTIME)
    session = engine_for(request.engine).load(model, request, observe=observe)
    description = session.describe()
    if description.fallback and not request.allow_fallback:
        raise FallbackRefused(
            f"{description.requested[0]} did not take the graph, {request.engine} runs it on "
            f"{', '.join(description.used) or 'nothing'} and allowFallback is false"
        )
    return session


def is_tflite(model: Path) -> bool:
    """Whether `model` is a TFLite flatbuffer (its file identifier `TFL3` at bytes 4-8)."""
    try:
        with model.open("rb") as handle:
            return handle.read(8)[4:8] == TFLITE_IDENTIFIER
    except OSError:
        return False


def installed() -> list[EngineFacts]:
    return [facts for engine in ENGINES.values() if (facts := engine.facts()) is not None]


class OnnxRuntime:
    name = ONNXRUNTIME

    def facts(self) -> EngineFacts | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        return EngineFacts(
            name=self.name,
            version=str(ort.__version__),
            backends=[str(p) for p in ort.get_available_providers()],
        )

    def load(self, model: Path, request: RuntimeRequest, *, observe: bool = False) -> Session:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise Unavailable("ONNX Runtime is not installed on this device") from err
        requested = requested_backends(request)
        available = [str(p) for p in ort.get_available_providers()]
        target = present(requested, available)
        if not target:
            raise Unavailable(_none_present("execution providers", requested, available))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        for key, value in request.options.items():
            options.add_session_config_entry(key, value)
        profiles = Path(tempfile.mkdtemp(prefix="modelfleet-ort-")) if observe else None
        if profiles is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profiles / "profile")
        try:
            session = ort.InferenceSession(str(model), sess_options=options, providers=target)
        except Exception as err:  # onnxruntime raises its own untyped errors
            if profiles is not None:
                shutil.rmtree(profiles, ignore_errors=True)
            raise LoadRefused(f"ONNX Runtime cannot load the artifact: {first_line(err)}") from err
        description = Description(
            engine=self.name,
            requested=tuple(requested),
            used=tuple(str(p) for p in session.get_providers()),
            target=tuple(target),
            options=dict(request.options),
            inputs=tuple(i.name for i in session.get_inputs()),
            outputs=tuple(o.name for o in session.get_outputs()),
        )
        return OnnxRuntimeSession(session, description, profiles)


class OnnxRuntimeSession:
    def __init__(self, session: Any, description: Description, profiles: Path | None) -> None:
        self.session = session
        self.description = description
        self.profiles = profiles
        """The profiler's folder until the first run ends profiling; None after (or never)."""
        if profiles is not None:  # a session that never runs leaves no folder behind either
            weakref.finalize(self, shutil.rmtree, profiles, True)

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        values = self.session.run(None, dict(feeds))
        if self.profiles is not None:
            self.description = replace(self.description, placement=self._placement())
        return dict(zip(self.description.outputs, values, strict=True))

    def describe(self) -> Description:
        return self.description

    def _placement(self) -> dict[str, int]:
        profiles, self.profiles = self.profiles, None
        try:
            events = json.loads(Path(self.session.end_profiling()).read_text())
        except (OSError, ValueError):
            events = []
        finally:
            if profiles is not None:
                shutil.rmtree(profiles, ignore_errors=True)
        return kernel_placement(events if isinstance(events, list) else [])


def kernel_placement(events: Iterable[Any]) -> dict[str, int]:
    """Kernels per execution provider in an ONNX Runtime profile (one `*_kernel_time` event
    per kernel run): pure."""
    counts: Counter[str] = Counter()
    for event in events:
        if not isinstance(event, dict) or event.get("cat") != "Node":
            continue
        args = event.get("args")
        if str(event.get("name", "")).endswith("_kernel_time") and isinstance(args, dict):
            counts[str(args.get("provider", "unknown"))] += 1
    return dict(counts)


class OpenVino:
    name = OPENVINO

    def facts(self) -> EngineFacts | None:
        try:
            import openvino as ov
        except ImportError:
            return None
        return EngineFacts(
            name=self.name,
            version=str(ov.get_version()),
            backends=[str(d) for d in ov.Core().available_devices],
        )

    def load(self, model: Path, request: RuntimeRequest, *, observe: bool = False) -> Session:
        """`observe` adds nothing: EXECUTION_DEVICES already says where the graph runs."""
        try:
            import openvino as ov
        except ImportError as err:
            raise Unavailable("OpenVINO is not installed on this device") from err
        core = ov.Core()
        requested = requested_backends(request)
        available = [str(d) for d in core.available_devices]
        target = present(requested, available)
        if not target:
            raise Unavailable(_none_present("devices", requested, available))
        config = {**OPENVINO_DEFAULTS, **request.options}
        try:
            graph = core.read_model(str(model))
        except Exception as err:  # openvino raises its own untyped errors
            raise LoadRefused(f"OpenVINO cannot read the artifact: {first_line(err)}") from err
        # AUTO:GPU,CPU raises outright when the GPU plugin cannot load: try the rest of the
        # list then, if the request allows a fallback.
        tries = range(len(target)) if request.allow_fallback else range(1)
        errors: list[str] = []
        for start in tries:
            devices = tuple(target[start:])
            try:
                compiled = core.compile_model(graph, device_string(devices), config)
            except Exception as err:  # openvino raises its own untyped errors
                errors.append(f"{device_string(devices)}: {first_line(err)}")
                continue
            description = Description(
                engine=self.name,
                requested=tuple(requested),
                used=tuple(str(d) for d in compiled.get_property("EXECUTION_DEVICES")),
                target=devices,
                options=config,
                # The read graph's names are the ONNX graph's; a compiled port may carry
                # more (a folded Identity's input too) and its "any name" is one of them.
                inputs=tuple(p.get_any_name() for p in graph.inputs),
                outputs=tuple(p.get_any_name() for p in graph.outputs),
            )
            return OpenVinoSession(compiled, description)
        raise LoadRefused(f"OpenVINO cannot compile the artifact: {'; '.join(errors)}")


def device_string(devices: Sequence[str]) -> str:
    """OpenVINO's device name for a priority list: `AUTO:GPU,CPU`, or the one device: pure."""
    return devices[0] if len(devices) == 1 else f"AUTO:{','.join(devices)}"


@dataclass(frozen=True)
class OpenVinoSession:
    compiled: Any
    description: Description

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        results = self.compiled(dict(feeds))
        return {name: results[self.compiled.output(name)] for name in self.description.outputs}

    def describe(self) -> Description:
        return self.description


class LiteRt:
    """LiteRT's interpreter on the CPU (XNNPACK); `options` may set `numThreads`."""

    name = LITERT

    def facts(self) -> EngineFacts | None:
        try:
            from ai_edge_litert import interpreter  # noqa: F401
        except ImportError:
            return None
        return EngineFacts(
            name=self.name, version=_version("ai-edge-litert"), backends=[LITERT_CPU]
        )

    def load(self, model: Path, request: RuntimeRequest, *, observe: bool = False) -> Session:
        """`observe` adds nothing: the interpreter runs on the CPU only."""
        try:
            from ai_edge_litert import interpreter
        except ImportError as err:
            raise Unavailable("LiteRT (ai-edge-litert) is not installed on this device") from err
        requested = requested_backends(request)
        target = present(requested, [LITERT_CPU])
        if not target:
            raise Unavailable(_none_present("devices", requested, [LITERT_CPU]))
        threads = request.options.get("numThreads")
        try:
            loaded = interpreter.Interpreter(
                model_path=str(model), num_threads=int(threads) if threads else None
            )
            runner = loaded.get_signature_runner(TFLITE_SIGNATURE)
        except Exception as err:  # LiteRT raises ValueError/RuntimeError with its own text
            raise LoadRefused(f"LiteRT cannot load the artifact: {first_line(err)}") from err
        description = Description(
            engine=self.name,
            requested=tuple(requested),
            used=(LITERT_CPU,),
            target=tuple(target),
            options=dict(request.options),
            inputs=tuple(runner.get_input_details()),
            outputs=tuple(runner.get_output_details()),
        )
        return LiteRtSession(runner, description)


@dataclass(frozen=True)
class LiteRtSession:
    runner: Any
    description: Description

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.runner(**feeds))

    def describe(self) -> Description:
        return self.description


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


ENGINES: Mapping[str, Engine] = {
    ONNXRUNTIME: OnnxRuntime(),
    OPENVINO: OpenVino(),
    LITERT: LiteRt(),
}


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:400] if lines else type(err).__name__


def _none_present(kind: str, requested: Sequence[str], available: Sequence[str]) -> str:
    return (
        f"none of the requested {kind} ({', '.join(requested)}) is available here "
        f"(this device has {', '.join(available) or 'none'})"
    )
