"""A coalescing, delaying work queue, like client-go's: many events for one key become one
reconcile; a key is never processed by two workers at once; failures retry with backoff.

The kopf handlers `add` keys; `run` starts the workers on the operator's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable

from modelfleet.backoff import Backoff
from modelfleet.logs import get_logger

log = get_logger(__name__)
RECONCILE_BACKOFF = Backoff(initial=1.0, max=60.0)
"""A failing key is tried again after 1 s, doubling to a minute while it keeps failing."""


class WorkQueue:
    def __init__(
        self,
        process: Callable[[Hashable], Awaitable[float | None]],
        on_error: Callable[[Hashable, Exception], None] | None = None,
        *,
        backoff: Backoff = RECONCILE_BACKOFF,
    ) -> None:
        """`process(key)` returns seconds until the key is due again, or None."""
        self._process = process
        self._on_error = on_error
        self._backoff = backoff
        self._due: dict[Hashable, float] = {}
        self._active: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._wakeup = asyncio.Event()

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        """Schedule `key`; an earlier schedule of the same key wins."""
        due = time.monotonic() + delay
        if key not in self._due or due < self._due[key]:
            self._due[key] = due
            self._wakeup.set()

    async def run(self, workers: int = 2) -> None:
        await asyncio.gather(*(self._worker() for _ in range(workers)))

    def _take(self) -> tuple[Hashable | None, float]:
        now = time.monotonic()
        ready = [(due, k) for k, due in self._due.items() if k not in self._active]
        if not ready:
            return None, 1.0
        due, key = min(ready, key=lambda pair: pair[0])
        if due > now:
            return None, due - now
        del self._due[key]
        return key, 0.0

    async def _worker(self) -> None:
        while True:
            key, wait = self._take()
            if key is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=min(wait, 1.0))
                continue
            self._active.add(key)
            try:
                again = await self._process(key)
                self._failures.pop(key, None)
                if again is not None:
                    self.add(key, again)
            except Exception as err:  # a failed pass is retried, never fatal
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = self._backoff.delay(failures)
                log.warning(
                    "reconcile failed", key=str(key), error=repr(err), retry_in=delay, exc_info=err
                )
                if self._on_error:
                    self._on_error(key, err)
                self.add(key, delay)
            finally:
                self._active.discard(key)
