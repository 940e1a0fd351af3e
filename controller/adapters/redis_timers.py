"""Deadlines in Redis, fired by whichever controller replica sees them first.

A sorted set holds `conversation|timer-name` scored by its deadline (ms). Every replica polls it; the
one whose ZREM removes an entry owns it and delivers the TimerFired event. A controller that restarts
mid-transfer therefore still fires its deadlines, and two replicas never fire one twice. (The state
machine also ignores stale timers, so a cancel racing a fire is harmless.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from controller.tasks import BackgroundLoop
from controller.wire import TIMERS_KEY

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05


def _member(conversation: str, name: str) -> str:
    return f"{conversation}|{name}"


class TimerStore:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.clock = clock

    async def start(self, conversation: str, name: str, seconds: float) -> None:
        deadline_ms = int((self.clock() + seconds) * 1000)
        await self.redis.zadd(TIMERS_KEY, {_member(conversation, name): deadline_ms})

    async def cancel(self, conversation: str, name: str) -> None:
        await self.redis.zrem(TIMERS_KEY, _member(conversation, name))

    async def cancel_all(self, conversation: str, names: list[str]) -> None:
        if names:
            await self.redis.zrem(TIMERS_KEY, *(_member(conversation, n) for n in names))

    async def claim_due(self, limit: int = 100) -> list[tuple[str, str]]:
        """Timers whose deadline has passed and that this replica won (ZREM returned 1)."""
        now_ms = int(self.clock() * 1000)
        due = await self.redis.zrangebyscore(TIMERS_KEY, "-inf", now_ms, start=0, num=limit)
        won = []
        for raw in due:
            member = raw.decode() if isinstance(raw, bytes) else raw
            if await self.redis.zrem(TIMERS_KEY, member):
                conversation, _, name = member.partition("|")
                won.append((conversation, name))
        return won


class TimerLoop(BackgroundLoop):
    """Polls the timer set and hands each due timer to `fire(conversation, name)`."""

    task_name = "timers"

    def __init__(self, timers: TimerStore, fire: Callable[[str, str], Awaitable[None]]):
        self.timers = timers
        self.fire = fire

    async def run(self) -> None:
        while True:
            try:
                for conversation, name in await self.timers.claim_due():
                    try:
                        await self.fire(conversation, name)
                    except Exception:
                        log.exception("timer %s of %s failed", name, conversation)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer store unavailable; retrying")
                await asyncio.sleep(1.0)
            await asyncio.sleep(POLL_INTERVAL_S)
