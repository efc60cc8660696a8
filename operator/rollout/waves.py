"""Wave sizes and the in-flight limit: int-or-percent arithmetic for the rollout planner.

`strategy.waves` and `strategy.maxInFlight` are int-or-percent values, read like a
Deployment's `maxUnavailable`, except that percentages round *up* and every wave holds at
least one device: a canary wave of "1%" on a 20-device fleet is one device, not zero.

Worked examples (each is a named case in tests/unit/planner/test_waves.py):

    20 devices, waves [1, "50%", "100%"]      → cumulative sizes (1, 10, 20)
    10 devices, waves ["10%", "50%", "100%"]  → (1, 5, 10)
    3 devices,  waves ["5%", "50%", "100%"]   → (1, 2, 3)
    5 devices,  waves [1, 10, "100%"]         → (1, 5, 5)    counts are capped at the fleet
    0 devices,  any waves                     → (0, 0, 0)
    10 devices, maxInFlight "25%"             → 3
    10 devices, maxInFlight 0                 → 1            at least one, or nothing moves
"""

from __future__ import annotations

from collections.abc import Sequence

from modelfleet.operator.rollout.fleet import Device


def resolve_count(value: int | str, total: int) -> int:
    """An int-or-percent against `total`: percentages round up; the result is in [0, total]."""
    if isinstance(value, int):
        count = value
    elif value.endswith("%"):
        percent = int(value[:-1])
        count = -(-percent * total // 100)
    else:
        count = int(value)
    return max(0, min(count, total))


def wave_sizes(waves: Sequence[int | str], total: int) -> tuple[int, ...]:
    """Cumulative device count of each wave: non-decreasing, each ≥ 1, the last is `total`.

    The CRD already rejects decreasing waves and a last wave other than 100%; this holds the
    invariants anyway so the planner never depends on admission having run.
    """
    if not waves:
        return (total,)
    sizes: list[int] = []
    floor = min(1, total)
    for value in waves:
        floor = max(floor, resolve_count(value, total))
        sizes.append(floor)
    sizes[-1] = total
    return tuple(sizes)


def in_flight_limit(max_in_flight: int | str, total: int) -> int:
    """How many devices may hold the new revision without having reported on it: at least 1."""
    return max(1, resolve_count(max_in_flight, total))


def fill_wave(
    devices: Sequence[Device],
    *,
    revision: int,
    stable: int | None,
    size: int,
    max_in_flight: int | str,
) -> tuple[list[Device], bool]:
    """Devices to move to `revision` now, and whether the wave of `size` devices is complete.

    Devices already assigned the revision count towards the wave, except offline ones that
    never reported Healthy or Failed on it; the next eligible devices in order fill it, never
    more than the in-flight limit pending at once. The wave is complete when it is filled
    (or nothing eligible is left), nothing is pending, and at least one device is healthy
    on the revision: no wave passes on zero evidence.
    """
    moved = [d for d in devices if d.revision == revision]
    counted = sum(1 for d in moved if d.online or d.state in ("healthy", "failed"))
    pending = sum(1 for d in moved if d.online and d.state == "pending")
    healthy = any(d.online and d.state == "healthy" for d in moved)
    candidates = [d for d in devices if d.revision != revision and eligible(d, stable)]
    room = in_flight_limit(max_in_flight, len(devices)) - pending
    fill = candidates[: max(0, min(size - counted, room))]
    complete = not fill and not pending and healthy and (counted >= size or not candidates)
    return fill, complete


def eligible(device: Device, stable: int | None) -> bool:
    """Whether a device may join the rollout now. With a stable revision, devices that joined
    or came back first catch up to it and settle there; devices on an abandoned newer
    revision may move on directly. Without one (the first rollout) every online device may."""
    if not device.online or stable is None:
        return device.online
    if device.revision == stable:
        return device.state != "pending"
    return device.revision is not None and device.revision > stable
