"""Accelerator facts from what a device's kernel and tools say, on recorded samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelfleet.agent.accelerators import (
    dri_node,
    dri_nodes,
    jetson,
    nvidia_driver_version,
    nvidia_gpu,
    nvidia_gpus,
    parse_nvidia_smi,
)
from modelfleet.api.device import AcceleratorFacts

INFORMATION = """Model: \t\t NVIDIA H200
IRQ:   \t\t 0
GPU UUID: \t GPU-5e1b0c2e-0000-0000-0000-000000000000
Video BIOS: \t 96.00.99.00.01
Bus Type: \t PCIe
DMA Size: \t 52 bits
Bus Location: \t 0000:00:05.0
Device Minor: \t 0
GPU Excluded:\t No
"""
VERSION = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Thu Feb 27 02:51:26 UTC 2025\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
H200 = AcceleratorFacts(source="nvidia", id="0000:00:05.0", name="NVIDIA H200", driver="570.124.06")


def test_a_gpu_from_the_drivers_proc_entry() -> None:
    assert nvidia_gpu("0000:00:05.0", INFORMATION, "570.124.06") == H200


@pytest.mark.parametrize(
    ("version_file", "driver"),
    [
        (VERSION, "570.124.06"),
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23 UTC 2024",
            "550.54.15",
        ),
        ("", ""),
    ],
)
def test_the_driver_version(version_file: str, driver: str) -> None:
    assert nvidia_driver_version(version_file) == driver


def test_gpus_are_read_from_proc(tmp_path: Path) -> None:
    gpu = tmp_path / "gpus" / "0000:00:05.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text(INFORMATION)
    (tmp_path / "version").write_text(VERSION)
    assert nvidia_gpus(tmp_path) == [H200]


def test_nvidia_smi_lines() -> None:
    out = "00000000:01:00.0, NVIDIA GeForce RTX 4090, 550.54.15\nNo devices were found\n\n"
    assert parse_nvidia_smi(out) == [
        AcceleratorFacts(
            source="nvidia",
            id="00000000:01:00.0",
            name="NVIDIA GeForce RTX 4090",
            driver="550.54.15",
        )
    ]


def test_a_jetson_from_the_device_tree(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\0")
    assert jetson(model) == [
        AcceleratorFacts(source="jetson", id="gpu", name="NVIDIA Jetson AGX Orin Developer Kit")
    ]
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert jetson(model) == [] and jetson(tmp_path / "absent") == []


def test_render_nodes_with_driver_and_vendor(tmp_path: Path) -> None:
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    for node, driver, vendor in (
        ("renderD128", "i915", "0x8086\n"),
        ("renderD129", "amdgpu", "0x1002\n"),
    ):
        (dev / node).touch()
        device = sysfs / node / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor)
        (tmp_path / "drivers" / driver).mkdir(parents=True)
        os.symlink(tmp_path / "drivers" / driver, device / "driver")
    (dev / "card0").touch()
    assert dri_nodes(dev, sysfs) == [
        AcceleratorFacts(source="dri", id="renderD128", name="Intel", driver="i915"),
        AcceleratorFacts(source="dri", id="renderD129", name="AMD", driver="amdgpu"),
    ]
    assert dri_nodes(tmp_path / "no-dri", sysfs) == []


def test_an_unknown_vendor_is_its_id() -> None:
    assert dri_node("renderD128", "", "0xABCD\n").name == "0xabcd"
