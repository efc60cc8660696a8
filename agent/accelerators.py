"""The accelerators a device has, for `status.facts.accelerators`: cheap looks, no new deps.

Called once per agent process by `facts` (hardware does not change under a running agent):

    source    looked at                                          id            name
    openvino  Core().available_devices, FULL_DEVICE_NAME         GPU.0, NPU    Intel(R) Arc(TM)...
    nvidia    /proc/driver/nvidia/gpus/*/information (+ version) 0000:01:00.0  NVIDIA H200
              or `nvidia-smi --query-gpu` when there is no /proc entry
    jetson    /proc/device-tree/model (Tegra has no /proc/driver/nvidia)     NVIDIA Jetson Orin...
    dri       /dev/dri/renderD* with the sysfs driver and PCI vendor         renderD128    Intel

Each look that fails (absent, unreadable, a tool that hangs) yields nothing: facts are
informative. The engines' own backends (ONNX Runtime's execution providers, OpenVINO's device
list) are reported under `runtime.engines` and not repeated here. The parsers are pure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from modelfleet.api.device import AcceleratorFacts
from modelfleet.logs import get_logger

log = get_logger(__name__)

NVIDIA_SMI_TIMEOUT = 5.0
PCI_VENDORS = {
    "0x8086": "Intel",
    "0x1002": "AMD",
    "0x10de": "NVIDIA",
    "0x1ed5": "Moore Threads",
    "0x19e5": "Huawei",
}
"""PCI vendor ids of the GPUs and NPUs edge devices carry; others are reported as the id."""
_DRIVER_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]*)")
_NVIDIA = Path("/proc/driver/nvidia")
_DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def detect() -> list[AcceleratorFacts]:
    """Every accelerator the four looks find, in table order."""
    found = [*openvino_devices(), *nvidia_gpus(_NVIDIA)]
    found += jetson(_DEVICE_TREE_MODEL)
    found += dri_nodes(Path("/dev/dri"), Path("/sys/class/drm"))
    return found


def openvino_devices() -> list[AcceleratorFacts]:
    try:
        import openvino as ov
    except ImportError:
        return []
    try:
        core = ov.Core()
        return [
            AcceleratorFacts(source="openvino", id=str(d), name=_full_name(core, str(d)))
            for d in core.available_devices
        ]
    except Exception as err:  # openvino raises its own untyped errors; facts stay informative
        log.warning("OpenVINO devices unknown", error=str(err)[:200])
        return []


def _full_name(core: object, device: str) -> str:
    try:
        return str(core.get_property(device, "FULL_DEVICE_NAME"))  # type: ignore[attr-defined]
    except Exception:  # a plugin without the property: the id says enough
        return ""


def nvidia_gpus(proc: Path) -> list[AcceleratorFacts]:
    """From the driver's /proc entries, else from nvidia-smi if it is on PATH."""
    driver = nvidia_driver_version(_read(proc / "version"))
    gpus = sorted((proc / "gpus").glob("*/information")) if proc.is_dir() else []
    if gpus:
        return [nvidia_gpu(path.parent.name, _read(path), driver) for path in gpus]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = [smi, "--query-gpu=pci.bus_id,name,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(
            query, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=True
        )
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("nvidia-smi failed", error=type(err).__name__)
        return []
    return parse_nvidia_smi(done.stdout)


def nvidia_gpu(bus: str, information: str, driver: str) -> AcceleratorFacts:
    """One GPU from its /proc/driver/nvidia/gpus/<bus>/information: pure."""
    fields = dict(
        (key.strip(), value.strip())
        for key, sep, value in (line.partition(":") for line in information.splitlines())
        if sep
    )
    return AcceleratorFacts(source="nvidia", id=bus, name=fields.get("Model", ""), driver=driver)


def nvidia_driver_version(version_file: str) -> str:
    """`NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ...` → 550.54.15: pure."""
    found = _DRIVER_VERSION.search(version_file)
    return found.group(1) if found else ""


def parse_nvidia_smi(csv: str) -> list[AcceleratorFacts]:
    """`00000000:01:00.0, NVIDIA H200, 550.54.15` lines: pure."""
    found = []
    for line in csv.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[0]:
            found.append(
                AcceleratorFacts(source="nvidia", id=parts[0], name=parts[1], driver=parts[2])
            )
    return found


def jetson(model_file: Path) -> list[AcceleratorFacts]:
    model = _read(model_file).rstrip("\0").strip()
    if not model.startswith("NVIDIA Jetson"):
        return []
    return [AcceleratorFacts(source="jetson", id="gpu", name=model)]


def dri_nodes(dev: Path, sysfs: Path) -> list[AcceleratorFacts]:
    """Render nodes (what compute APIs open) with their kernel driver and PCI vendor."""
    nodes = sorted(p.name for p in dev.glob("renderD*")) if dev.is_dir() else []
    return [
        dri_node(node, _driver(sysfs / node / "device"), _read(sysfs / node / "device" / "vendor"))
        for node in nodes
    ]


def dri_node(node: str, driver: str, vendor_id: str) -> AcceleratorFacts:
    """A render node, its driver (i915, xe, amdgpu...) and the vendor of its PCI id: pure."""
    vendor_id = vendor_id.strip().lower()
    name = PCI_VENDORS.get(vendor_id, vendor_id)
    return AcceleratorFacts(source="dri", id=node, name=name, driver=driver)


def _driver(device: Path) -> str:
    try:
        return (device / "driver").resolve(strict=True).name
    except OSError:
        return ""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def names(found: Iterable[AcceleratorFacts]) -> list[str]:
    """`source:id` of each, for the log line."""
    return [f"{a.source}:{a.id}" for a in found]
