"""Benchmark results as data, and their Markdown rendering for bench/RESULTS.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)

    def add(self, *row: object) -> None:
        self.rows.append(row)


@dataclass
class Section:
    """One benchmark's results: tables, target verdicts and free-text notes."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[tuple[str, str, str, bool | str]] = field(default_factory=list)
    """(what, measured, target, met): met a bool, or a verdict such as 'trend (no)'"""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def target(self, what: str, measured: str, target: str, met: bool | str) -> None:
        self.targets.append((what, measured, target, met))


def fmt(value: object, digits: int = 3) -> str:
    """Numbers to short strings: NaN as '-', floats to `digits` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_table(table: Table) -> str:
    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(fmt(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines.extend("| " + " | ".join(fmt(cell) for cell in row) + " |" for row in table.rows)
    return "\n".join(lines)


def render_section(section: Section) -> str:
    parts = [f"## {section.title}", "", f"_`{section.name}`, {section.seconds:.0f} s_", ""]
    if section.targets:
        targets = Table("Targets", ("metric", "measured", "target", "met"))
        for what, measured, target, met in section.targets:
            verdict = met if isinstance(met, str) else ("yes" if met else "no")
            targets.add(what, measured, target, "**no**" if verdict == "no" else verdict)
        parts += [render_table(targets), ""]
    for table in section.tables:
        parts += [render_table(table), ""]
    if section.notes:
        parts += [f"- {note}" for note in section.notes]
        parts.append("")
    return "\n".join(parts)


def render_results(
    *, command: str, date: str, machine: Sequence[str], sections: Sequence[Section]
) -> str:
    head = [
        "# ModelFleet benchmark results",
        "",
        f"Command: `{command}`  ",
        f"Date: {date}",
        "",
        "Machine:",
        "",
        *machine,
        "",
        "One run each; ratios are ModelFleet over the raw baseline measured in the same run.",
        "Methods: bench/README.md. Profiles, causes and recommended fixes: bench/FINDINGS.md.",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(render_section(s) for s in sections)
