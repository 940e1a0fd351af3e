"""Notices an rtpengine restart and has every running state machine put its media back.

A restarted rtpengine restores its calls from Redis (node.rtpengine.persist_calls) with their pairings,
so the parties of an ordinary call hear each other again by themselves. What it does not persist is its
players and media blocks: a client on hold would hear silence, and, worse, the transferor again. So the
watch asks rtpengine its uptime every second; when its start time moved, the conversations of the calls
rtpengine restored get a MediaRestored event, and their machines block and play again what their media
model says (controller/core/media.py, MediaCommands.reassert).

Several replicas watch the same rtpengine: the start time they saw last is kept in Redis, and only the
replica whose SET ... GET replaced the old start time re-asserts, so each restart is handled once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from controller.metrics import Metrics
from controller.tasks import PeriodicCheck
from controller.wire import RTPENGINE_STARTED_KEY

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
#: rtpengine reports its uptime in whole seconds: start times this close are the same start
SAME_START_S = 2.0
#: ng `list` answers at most this many call-ids (rtpengine's own default is 32)
LIST_LIMIT = 100_000
CONCURRENCY = 32  # conversations re-asserted at a time

Restore = Callable[[str], Awaitable[None]]


def start_time(statistics_reply: dict[str, Any], now_s: float) -> float:
    """rtpengine's start (wall-clock seconds) from an ng `statistics` reply (raises ValueError)."""
    try:
        uptime = float(statistics_reply["statistics"]["totalstatistics"]["uptime"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"no uptime in rtpengine's statistics: {exc!r}") from exc
    return now_s - uptime


def restarted(previous: float | None, current: float) -> bool:
    """Whether a start time `current` is a later start than `previous` (None: never seen one)."""
    return previous is not None and current > previous + SAME_START_S


class RtpengineWatch(PeriodicCheck):
    task_name = "rtpengine-watch"

    def __init__(self, ng: Any, redis: Any, store: Any, restore: Restore, metrics: Metrics, *,
                 node_key: str, interval_s: float = CHECK_INTERVAL_S, clock: Callable[[], float] = time.time):
        self.ng = ng
        self.redis = redis
        self.store = store
        self.restore = restore
        self.metrics = metrics
        self.key = RTPENGINE_STARTED_KEY.format(node_key)
        self.interval_s = interval_s
        self.clock = clock

    async def check(self) -> int:
        """One look at rtpengine; after a restart, the number of conversations told (else 0)."""
        current = start_time(await self.ng.statistics(), self.clock())
        old = await self.redis.set(self.key, f"{current:.3f}", get=True)
        previous = float(old) if old is not None else None
        if previous is not None and not restarted(previous, current):
            # the same start: keep the earliest estimate (uptime is truncated to whole seconds)
            if previous < current:
                await self.redis.set(self.key, f"{previous:.3f}")
            return 0
        if not restarted(previous, current):
            return 0  # the first look at this rtpengine: nothing to compare with
        self.metrics.errors.labels("rtpengine_restarted").inc()
        told = await self.restore_all()
        log.warning("rtpengine restarted (%.0f s after the start seen before): %d conversations put their "
                    "media back", current - (previous or current), told)
        return told

    async def restore_all(self) -> int:
        """Every conversation of a call the restarted rtpengine restored gets MediaRestored (a call
        without a state machine has nothing to put back: the engine ignores it)."""
        reply = await self.ng.list_calls(limit=LIST_LIMIT)
        call_ids = [str(c) for c in reply.get("calls") or []]
        conversations = sorted({c for c in await self.store.conversations_for_calls(call_ids) if c})
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(conversation: str) -> None:
            async with gate:
                try:
                    await self.restore(conversation)
                except Exception:
                    self.metrics.errors.labels("media_restore").inc()
                    log.exception("could not put the media of conversation %s back", conversation)

        await asyncio.gather(*(one(c) for c in conversations))
        return len(conversations)

    def check_failed(self, exc: Exception) -> None:
        # rtpengine down (it is being restarted) or Redis away: look again in a second
        log.debug("rtpengine watch: %s", exc)
