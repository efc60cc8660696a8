"""Rendering benchmark results into bench/RESULTS.md."""

from __future__ import annotations

import math

import pytest

from bench.report import Section, Table, fmt, render_results, render_table


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "-"),
        (math.nan, "-"),
        (True, "yes"),
        (0.0, "0"),
        (1234.5678, "1,235"),
        (1.23456, "1.23"),
        (0.0012345, "0.00123"),
        (12_000, "12,000"),
        ("a|b", "a\\|b"),
    ],
)
def test_fmt(value: object, expected: str) -> None:
    assert fmt(value) == expected


def test_table_renders_markdown() -> None:
    table = Table("Latency", ("model", "p50 ms"))
    table.add("mlp", 0.5)
    assert render_table(table).splitlines() == [
        "**Latency**",
        "",
        "| model | p50 ms |",
        "|---|---|",
        "| mlp | 0.500 |",
    ]


def test_results_carry_command_date_machine_and_targets() -> None:
    section = Section("fleet", "1. Fleet")
    section.target("updates/min", "2,000", ">= 10,000", False)
    section.notes.append("one run")
    text = render_results(
        command="python -m bench --quick",
        date="2026-01-01 00:00 UTC",
        machine=["- nproc: 2"],
        sections=[section],
    )
    assert "Command: `python -m bench --quick`" in text
    assert "2026-01-01 00:00 UTC" in text
    assert "- nproc: 2" in text
    assert "## 1. Fleet" in text
    assert "| updates/min | 2,000 | >= 10,000 | **no** |" in text
    assert "- one run" in text
