"""For applications on a device: open the session the agent proved, never a hand-built one.

The agent probes a slot's artifact on the session its runtime request builds and, once the probe
passed, writes `slots/<slot>/runtime.json` (atomically, before it switches `current`):

    {"engine": "onnxruntime", "model": "../../objects/<sha256>.onnx", "sha256": "...",
     "providers": ["CPUExecutionProvider"],          # or "devices": ["CPU"] for OpenVINO
     "requested": [...], "used": [...], "fallback": false, "placement": {...},
     "options": {...}, "inputs": ["x"], "outputs": ["y"]}

`providers`/`devices` are the backends the probed session was built with (the requested ones
this device has), `used` what the engine says took the graph. An application calls

    from modelfleet.device import open_session
    session = open_session("/var/lib/modelfleet/slots/detector")
    outputs = session.run({"x": batch})        # {"y": array}

and gets the same engine, backends and options; if its own process ends up on other backends
(say, CUDA libraries missing from its environment), `open_session` raises `SessionMismatch`
instead of silently computing on a backend nobody probed. The model named in the file, not
`current`, is loaded, so the two always belong together; re-open after the agent reports a
new revision. Needs only this package's core and the engine (no Kubernetes client).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelfleet.api.device import RuntimeRequest
from modelfleet.engines import OPENVINO, Description, EngineError, Session, load

RUNTIME_FILE = "runtime.json"


class SessionMismatch(EngineError):  # noqa: N818 (named for its reason)
    reason = "RuntimeMismatch"


def runtime_document(description: Description, *, sha256: str, model: str) -> dict[str, Any]:
    """runtime.json for a probed session (`model` relative to the slot directory): pure."""
    backends = "devices" if description.engine == OPENVINO else "providers"
    return {
        "engine": description.engine,
        "model": model,
        "sha256": sha256,
        backends: list(description.target),
        "requested": list(description.requested),
        "used": list(description.used),
        "fallback": description.fallback,
        "placement": dict(description.placement),
        "options": dict(description.options),
        "inputs": list(description.inputs),
        "outputs": list(description.outputs),
    }


def request_of(document: dict[str, Any]) -> RuntimeRequest:
    """The request that rebuilds the recorded session: its backends as built, fallback
    allowed (the agent already judged it; `open_session` compares what is used): pure."""
    engine = str(document["engine"])
    backends = "devices" if engine == OPENVINO else "providers"
    return RuntimeRequest.model_validate(
        {
            "engine": engine,
            backends: list(document.get(backends) or []),
            "allowFallback": True,
            "options": dict(document.get("options") or {}),
        }
    )


def read_runtime(slot_dir: Path | str) -> dict[str, Any]:
    path = Path(slot_dir) / RUNTIME_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise EngineError(f"{path} does not exist: no revision is active in this slot") from err
    except ValueError as err:
        raise EngineError(f"{path} is not JSON: {err}") from err
    if not isinstance(document, dict) or "engine" not in document or "model" not in document:
        raise EngineError(f"{path} is not a runtime description")
    return document


def open_session(slot_dir: Path | str) -> Session:
    """The session the agent probed for this slot; `SessionMismatch` if this process gets
    other backends than the probe ran on."""
    document = read_runtime(slot_dir)
    session = load(Path(slot_dir) / str(document["model"]), request_of(document))
    used = list(session.describe().used)
    if used != list(document.get("used") or []):
        raise SessionMismatch(
            f"this process runs the model on {', '.join(used)}, the probe ran on "
            f"{', '.join(document.get('used') or [])}"
        )
    return session
