"""Which facts changes make a status write: free disk only once it moved a step."""

from __future__ import annotations

from modelfleet.agent.facts import DISK_STEP, same_facts
from modelfleet.api.device import DeviceFacts

GIB = 1 << 30
MIB = 1 << 20


def facts(free: int | None, arch: str = "x86_64") -> DeviceFacts:
    return DeviceFacts(arch=arch, os="Linux", free_disk_bytes=free)


def test_free_disk_moving_less_than_a_step_is_no_change() -> None:
    assert same_facts(facts(10 * GIB - 200 * MIB), facts(10 * GIB))
    assert same_facts(facts(10 * GIB + 200 * MIB), facts(10 * GIB))


def test_free_disk_moving_a_step_is_a_change() -> None:
    assert not same_facts(facts(10 * GIB - DISK_STEP), facts(10 * GIB))


def test_a_nearly_full_disk_is_told_in_finer_steps() -> None:
    # 400 MiB left: an eighth (50 MiB) is the step, so 60 MiB more used is told
    assert not same_facts(facts(340 * MIB), facts(400 * MIB))
    assert same_facts(facts(360 * MIB), facts(400 * MIB))


def test_any_other_fact_is_a_change() -> None:
    assert not same_facts(facts(10 * GIB, arch="aarch64"), facts(10 * GIB))
    assert not same_facts(facts(None), facts(10 * GIB))
    assert same_facts(facts(None), facts(None))
