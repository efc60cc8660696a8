"""The fleet benchmark's report: its tables, the targets it is judged by, and its notes.

bench/fleet.py calls `render` once with the results of every fleet size and status pattern;
bench/report.py turns the section into bench/RESULTS.md.
"""

from __future__ import annotations

import os

from bench.fleet_measurements import RolloutResult
from bench.fleet_targets import efficiency, targets_for
from bench.raw_writer import Baselines
from bench.report import Section, Table, fmt
from bench.stats import percentile, ratio
from modelfleet.agent.heartbeats import LEASE_SECONDS

QUICK = "agent"
"""The status pattern of a quick activation: two writes per device, as the raw writer's."""


def render(
    section: Section,
    results: list[RolloutResult],
    lease_interval: float,
    baselines: dict[int, Baselines],
) -> None:
    """The fleet section: the scale table and issue 14's targets per size, tables per
    rollout, growth between sizes, and notes on how to read them."""
    _render_scale(section, results, baselines)
    main = Table(
        "Rollout (waves 1%/10%/50%/100%, maxInFlight 100%, bakeSeconds 0)",
        (
            "devices",
            "status pattern",
            "variant",
            "done",
            "first assigned → last healthy (s)",
            "device updates/min",
            "spec write → Succeeded (s)",
            "wave advance p50 / max (s)",
            "register (s)",
        ),
    )
    writes = Table(
        "API writes per device per rollout (leases separately)",
        (
            "devices",
            "pattern",
            "operator: EdgeDevice spec",
            "operator: EdgeDeployment status (per device)",
            "device: status (client count)",
            "device: status (seen by watch)",
            "total writes/device",
            "lease renewals/device during rollout",
        ),
    )
    cost = Table(
        "CPU seconds during the rollout window and operator memory",
        (
            "devices",
            "pattern",
            "operator CPU s",
            "operator CPU ms/device",
            "operator peak RSS MiB",
            "operator start-up (s)",
            "operator CPU s/s at rest (before rollout)",
            "kube-apiserver CPU s",
            "etcd CPU s",
            "simulator+recorder CPU s",
            "machine busy (of 2 cores x window)",
            "other users' CPU s (noise)",
        ),
    )
    timeline = Table(
        "Where the time goes",
        (
            "devices",
            "pattern",
            "per wave: first → last device assigned (s)",
            "device assigned → healthy p50 / p99 (s)",
            "device status patch latency p50 / p99 (ms)",
        ),
    )
    for r in results:
        lat = r.wave_latencies
        main.add(
            r.devices,
            r.pattern,
            r.variant,
            r.completed,
            r.rollout_s,
            r.updates_per_min,
            r.end_to_end_s,
            f"{fmt(percentile(lat, 50))} / {fmt(r.wave_advance_max)}",
            r.register_s,
        )
        writes.add(
            r.devices,
            r.pattern,
            r.per_device(r.operator_device_writes),
            r.per_device(r.operator_status_writes),
            r.per_device(r.device_status_writes),
            r.per_device(r.apiserver_seen_status_writes),
            r.writes_per_device,
            r.per_device(r.lease_renewals),
        )
        cpu = r.cpu_s
        cost.add(
            r.devices,
            r.pattern,
            cpu.get("operator", float("nan")),
            ratio(cpu.get("operator", float("nan")) * 1000, r.devices),
            r.operator_peak_rss_mib,
            r.operator_startup_s,
            r.operator_rest_cpu,
            cpu.get("kube-apiserver", float("nan")),
            cpu.get("etcd", float("nan")),
            cpu.get("bench (simulator + recorder)", float("nan")),
            f"{fmt(ratio(r.machine_busy_s, (os.cpu_count() or 1) * r.window_s) * 100)}%",
            r.others_cpu_s,
        )
        timeline.add(
            r.devices,
            r.pattern,
            " / ".join(fmt(x) for x in r.wave_assign_spans),
            f"{fmt(percentile(r.device_lags, 50))} / {fmt(percentile(r.device_lags, 99))}",
            f"{fmt(percentile(r.status_latencies, 50) * 1000)} / "
            f"{fmt(percentile(r.status_latencies, 99) * 1000)}",
        )
        if r.watch_restarts:
            section.notes.append(
                f"{r.devices} devices, {r.pattern}: watches restarted {r.watch_restarts} times "
                "(relisted; times of events in a gap are the relist time)."
            )
    section.tables += [main, writes, cost, timeline]
    sizes = sorted({r.devices for r in results})
    if len(sizes) > 1:
        growth = Table(
            f"Growth from {sizes[0]:,} to {sizes[-1]:,} devices (ratio, x{sizes[-1] // sizes[0]} "
            "devices)",
            ("pattern", "rollout time", "updates/min", "operator CPU", "operator peak RSS",
             "writes/device"),
        )  # fmt: skip
        for pattern in sorted({r.pattern for r in results}):
            small = next(
                (r for r in results if r.devices == sizes[0] and r.pattern == pattern), None
            )
            large = next(
                (r for r in results if r.devices == sizes[-1] and r.pattern == pattern), None
            )
            if small and large:
                growth.add(
                    pattern,
                    ratio(large.rollout_s, small.rollout_s),
                    ratio(large.updates_per_min, small.updates_per_min),
                    ratio(large.cpu_s.get("operator", 0.0), small.cpu_s.get("operator", 0.0)),
                    ratio(large.operator_peak_rss_mib, small.operator_peak_rss_mib),
                    ratio(large.writes_per_device, small.writes_per_device),
                )
        section.tables.append(growth)
    section.notes += [
        "Simulated devices share one namespace-wide watch (see bench/simulator.py); leases are "
        f"renewed every {lease_interval:g} s (the agent's "
        f"default: every {LEASE_SECONDS / 4:g} s ±10%, {LEASE_SECONDS} s lease).",
        "The second rollout of each size (`agent`) is a new revision over the first: it has a "
        "stable revision, so the planner also keeps devices on stable; each rollout has its own, "
        "freshly started and idle operator process.",
        "Operator writes are counted from a watch (generation changes on EdgeDevices = spec "
        "writes; EdgeDeployment events without a generation change = status writes).",
    ]


def _render_scale(
    section: Section, results: list[RolloutResult], baselines: dict[int, Baselines]
) -> None:
    """Per size and rollout: start-up against one LIST, efficiency against the raw writer,
    and the other issue 14 measurements; then the targets with their verdicts."""
    scale = Table(
        "Scale: start-up, efficiency against the raw writer, size of an EdgeDevice",
        (
            "devices",
            "pattern",
            "one LIST of all EdgeDevices (s)",
            "operator ready to plan (s) [its own LISTs (s)]",
            "start-up / one LIST",
            "raw writer updates/min (concurrency)",
            "ModelFleet updates/min",
            "efficiency",
            "worst wave advance (s)",
            "operator peak RSS MiB",
            "EdgeDevice bytes as stored (managedFields / spec / status)",
            "Lease writes/s at rest",
            "API writes/device (leases apart): per device + EdgeDeployment status per rollout",
        ),
    )
    for r in results:
        base = baselines.get(r.devices)
        raw = base.raw.updates_per_min if base else float("nan")
        stored = base.stored if base else None
        scale.add(
            r.devices,
            r.pattern,
            r.list_s,
            f"{fmt(r.ready_s)} [{fmt(r.listed_in_s)}]",
            ratio(r.ready_s, r.list_s),
            f"{fmt(raw)} ({base.raw.concurrency})" if base else "-",
            r.updates_per_min,
            efficiency(r.updates_per_min, raw),
            r.wave_advance_max,
            r.operator_peak_rss_mib,
            f"{stored.total:,} ({stored.managed_fields:,} / {stored.spec:,} / {stored.status:,})"
            if stored
            else "-",
            r.rest_lease_writes_per_s,
            f"{fmt(r.device_writes_per_device)} + {r.operator_status_writes}",
        )
    section.tables.append(scale)
    for devices in sorted({r.devices for r in results}):
        rollouts = [r for r in results if r.devices == devices]
        quick = next((r for r in rollouts if r.pattern == QUICK), rollouts[-1])
        base = baselines.get(devices)
        raw = base.raw.updates_per_min if base else float("nan")
        measured = {
            "start-up / one LIST": max(ratio(r.ready_s, r.list_s) for r in rollouts),
            "efficiency": efficiency(quick.updates_per_min, raw),
            "worst wave advance": max(r.wave_advance_max for r in rollouts),
            "operator peak RSS": max(r.operator_peak_rss_mib for r in rollouts),
            "API writes per device per rollout": quick.device_writes_per_device,
        }
        for target in targets_for(devices):
            value = measured[target.metric]
            section.target(
                f"{target.metric} ({devices:,} devices)",
                f"{fmt(value)}{target.unit}",
                target.describe(),
                target.verdict(devices, value),
            )
