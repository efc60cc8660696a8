"""How often one deployment is planned and its status written, at fleet scale.

A planning pass reads every device of the namespace: ~0.4 s at 20,000 devices. Device events
never stop during a rollout there (each report is one), and planned back to back the operator
took a third of the 2-core machine whose apiserver was the bottleneck (bench/FINDINGS.md
§1.A). So after each pass a deployment rests for as long as its planning took, not counting
its writes: planning a deployment takes at most half of a core, and a wave of writes is never
followed by a rest as long as itself. Status changes that move only counts are written at
most every `status_interval` seconds (21 status writes in an 8 s rollout of 1,000 devices
before); phase, wave and condition changes at once (status_assembly.py `progress_only`).

Pure bookkeeping on monotonic seconds the caller passes in; kept in memory on purpose: it is
only a rate, and a restarted operator plans at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Key = tuple[str, str]
"""(namespace, deployment name)"""


@dataclass
class Pacing:
    status_interval: float = 1.0
    _rest_until: dict[Key, float] = field(default_factory=dict)
    _status_written: dict[Key, float] = field(default_factory=dict)

    def planned(self, key: Key, *, planning_s: float, now: float) -> None:
        """A pass of `key` ended at `now`; its planning (reads and plan) took `planning_s`."""
        self._rest_until[key] = now + planning_s

    def resting(self, key: Key, now: float) -> float:
        """Seconds until `key` may be planned again; 0 when it may now."""
        return max(0.0, self._rest_until.get(key, -math.inf) - now)

    def status_wait(self, key: Key, now: float) -> float:
        """Seconds until a progress-only status write of `key` may go; 0 when it may now."""
        return max(0.0, self._status_written.get(key, -math.inf) + self.status_interval - now)

    def status_written(self, key: Key, now: float) -> None:
        self._status_written[key] = now

    def forget(self, key: Key) -> None:
        self._rest_until.pop(key, None)
        self._status_written.pop(key, None)
