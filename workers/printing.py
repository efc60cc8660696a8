"""What `modelfleet convert` and `modelfleet validate` print (`modelfleet.workers.commands`):
the artifact, the remedies that made it, the validation table; the failure line is the
commands' own `_fail`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelfleet.reports import RemediesSection, ValidationSection

if TYPE_CHECKING:
    from pathlib import Path

    from modelfleet.workers.steps import Converted


def print_remedies(console: Console, section: RemediesSection) -> None:
    console.print(f"[yellow]remedied[/yellow]: {section.applied_change}")
    for line in section.status_lines():
        console.print(f"  tried {escape(line)}")


def print_artifact(console: Console, converted: Converted, out_dir: Path) -> None:
    manifest = converted.manifest
    table = Table(title=f"{manifest.format} artifact", show_header=False)
    table.add_row("model", str(out_dir / manifest.file))
    table.add_row("sha256", manifest.sha256)
    table.add_row("size", f"{manifest.size_bytes} bytes")
    table.add_row("opset", str(manifest.opset))
    table.add_row("digest", manifest.digest)
    if manifest.quantization:
        q = manifest.quantization
        table.add_row("quantization", f"{q.mode}, calibration {q.calibration} ({q.samples})")
    for warning in converted.result.warnings:
        table.add_row("[yellow]warning[/yellow]", warning)
    console.print(table)


def _num(value: float | None, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return format(value, spec)


def print_outcome(console: Console, section: ValidationSection) -> None:
    from modelfleet.workers.runtimes import describe_config

    table = Table(title=f"validation ({section.data} inputs, {section.samples} samples)")
    columns = ("output", "dtype", "max abs", "max rel", "L2", "cosine", "top-1", "mismatched")
    for column in (*columns, "verdict"):
        table.add_column(column, justify="left" if column in ("output", "dtype") else "right")
    for out in section.outputs:
        table.add_row(
            out.name,
            out.dtype,
            _num(out.max_abs),
            _num(out.max_rel),
            _num(out.l2),
            _num(out.cosine, ".6f"),
            _num(out.top1_agreement, ".2%"),
            f"{out.mismatched}/{out.total}",
            "[green]pass[/green]" if out.passed else "[red]FAIL[/red]",
        )
    console.print(table)
    tol = section.tolerance
    console.print(
        f"tolerance: maxNormalizedError={tol.max_normalized_error} "
        f"maxRelativeL2={tol.max_relative_l2} minCosine={tol.min_cosine} "
        f"topKAgreement={tol.top_k_agreement} atol={tol.atol:g} rtol={tol.rtol:g} "
        f"(elementwise={'on' if tol.elementwise else 'info'})"
    )
    if section.benchmark is not None:
        b = section.benchmark
        flag = " [yellow](slower than the source)[/yellow]" if b.slower_than_source else ""
        console.print(
            f"latency p50/p90/p99 ms: reference {b.source.p50_ms:.3f}/{b.source.p90_ms:.3f}/"
            f"{b.source.p99_ms:.3f}, candidate {b.target.p50_ms:.3f}/{b.target.p90_ms:.3f}/"
            f"{b.target.p99_ms:.3f}; speedup {b.speedup:.2f}x{flag}"
        )
    ref = section.reference
    if ref is not None and ref.config is not None and ref.fallback_from:
        how = describe_config(ref.config.mkldnn, ref.config.ir_optim)
        console.print(f"[yellow]reference ran with {how}[/yellow]: {escape(ref.fallback_from)}")
    for failure in section.failures:
        console.print(f"[red]fail[/red] {failure}")
    console.print("[green]PASSED[/green]" if section.passed else "[red]FAILED[/red]")
