"""A per-source allowance of events in a time window, in memory and bounded (pure but for the clock).

Used where a stranger can make the controller write: a flood of rejected INVITEs from one source gets
its first few records written and the rest only counted, so it cannot grow the event log.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class PerSourceBudget:
    """At most `limit` events per `window_s` per source; at most `max_sources` sources remembered (when
    more arrive in one window, the oldest windows are forgotten first)."""

    def __init__(self, limit: int = 20, window_s: float = 10.0, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_s <= 0 or max_sources < 1:
            raise ValueError("limit, window and max_sources must be positive")
        self.limit, self.window_s, self.max_sources = limit, window_s, max_sources
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # source -> (window start, events); oldest first

    def __len__(self) -> int:
        return len(self._windows)

    def allow(self, source: str) -> bool:
        now = self._clock()
        windows = self._windows
        while windows and (now - windows[oldest := next(iter(windows))][0] >= self.window_s
                           or len(windows) >= self.max_sources):
            del windows[oldest]
        start, used = windows.pop(source, (now, 0))
        if now - start >= self.window_s:
            start, used = now, 0  # its window is over (it sat behind a younger one in the order)
        windows[source] = (start, used + 1)  # re-inserted last: the order is by last use, roughly by age
        return used < self.limit
