"""The fleet benchmark's report: its tables, the targets it is judged by, and its notes.

bench/fleet.py calls `render` once with the results of every fleet size and status pattern;
bench/report.py turns the section into bench/RESULTS.md.
"""

from __future__ import annotations

import os

from bench.fleet_measurements import RolloutResult
from bench.report import Section, Table, fmt
from bench.stats import meets, percentile, ratio

TARGET_UPDATES_PER_MIN = 10_000.0
TARGET_WRITES_PER_DEVICE = 3.0
TARGET_WAVE_ADVANCE_S = 1.0


def render(section: Section, results: list[RolloutResult], lease_interval: float) -> None:
    """The fleet section: tables per rollout, growth between sizes, the targets at the
    largest size, and notes on how to read them."""
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
    top = max(sizes) if sizes else 0
    for r in results:
        if r.devices != top:
            continue
        label = f"{r.devices:,} devices, {r.pattern}"
        section.target(
            f"device updates/min ({label})",
            fmt(r.updates_per_min),
            f">= {TARGET_UPDATES_PER_MIN:,.0f}",
            meets(r.updates_per_min, TARGET_UPDATES_PER_MIN, higher_is_better=True),
        )
        section.target(
            f"API writes/device, leases excluded ({label})",
            fmt(r.writes_per_device),
            f"<= {TARGET_WRITES_PER_DEVICE:g}",
            meets(r.writes_per_device, TARGET_WRITES_PER_DEVICE, higher_is_better=False),
        )
        section.target(
            f"wave advance, worst ({label})",
            f"{fmt(r.wave_advance_max)} s",
            f"<= {TARGET_WAVE_ADVANCE_S:g} s",
            meets(r.wave_advance_max, TARGET_WAVE_ADVANCE_S, higher_is_better=False),
        )
    section.notes += [
        "Simulated devices share one namespace-wide watch (see bench/simulator.py); leases are "
        f"renewed every {lease_interval:g} s (the agent's "
        "default: every 60 s, 240 s lease).",
        "The second rollout of each size (`agent`) is a new revision over the first: it has a "
        "stable revision, so the planner also keeps devices on stable; each rollout has its own, "
        "freshly started and idle operator process.",
        "Operator writes are counted from a watch (generation changes on EdgeDevices = spec "
        "writes; EdgeDeployment events without a generation change = status writes).",
    ]
