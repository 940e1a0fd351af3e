"""Per-tenant limits on transfers to outside numbers, counted in Redis so that every replica sees them.

A transfer out through the trunk costs the tenant money and is what a fraudster with a phone's
password or a Call API token wants; the limits (``numbering_plan.max_outside_transfers_*``) cap how
much of it one tenant can run up, whichever controller replica handles its calls.

    xfer:limit:{tenant}:outside:{minute}   string   outside transfers begun in that minute (INCR)   2 minutes
    xfer:limit:{tenant}:outside:live       zset     slot -> when the slot lapses (s)                 max call length

The live set is a counter of outside transfers in progress that cannot drift: a slot is taken once
(ZADD of the same slot again changes nothing), released by ZREM as often as the engine likes (a
release that comes twice frees nothing twice), and a slot nobody released (a controller that died)
lapses after the longest call a node allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from redis.asyncio import Redis

from controller.numbering_plan import NumberingPlan
from controller.wire import LIMIT_LIVE_KEY as LIVE_KEY
from controller.wire import LIMIT_MINUTE_KEY as MINUTE_KEY

MINUTE_TTL_S = 120  # a window's counter outlives its minute, whatever the replicas' clocks say

Exceeded = Literal["per_minute", "concurrent"]


class OutsideTransferLimits:
    """Counts a tenant's transfers to outside numbers against its plan's limits."""

    def __init__(self, redis: Redis, *, slot_lifetime_s: int, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.slot_lifetime_s = slot_lifetime_s
        self.clock = clock

    async def acquire(self, tenant: str, slot: str, plan: NumberingPlan) -> Exceeded | None:
        """Take a slot for one outside transfer of `tenant`; the limit it would exceed (and then no slot)
        or None. One MULTI: the per-minute INCR and the live set's ZADD and count are atomic together."""
        now = self.clock()
        minute_key, live_key = MINUTE_KEY.format(tenant, int(now // 60)), LIVE_KEY.format(tenant)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(minute_key)
            pipe.expire(minute_key, MINUTE_TTL_S)
            pipe.zremrangebyscore(live_key, "-inf", now)  # slots nobody released
            pipe.zadd(live_key, {slot: now + self.slot_lifetime_s})
            pipe.zcard(live_key)
            pipe.expire(live_key, self.slot_lifetime_s)
            begun, _, _, _, live, _ = await pipe.execute()
        # Every contender adds itself before it counts, so two racing for the last slot can both be
        # refused, never both let through: the limit is never exceeded.
        exceeded: Exceeded | None = None
        if int(begun) > plan.max_outside_transfers_per_minute:
            exceeded = "per_minute"
        elif int(live) > plan.max_outside_transfers_concurrent:
            exceeded = "concurrent"
        if exceeded is not None:
            await self.redis.zrem(live_key, slot)
        return exceeded

    async def release(self, tenant: str, *slots: str) -> None:
        """The outside transfers holding `slots` are over (idempotent)."""
        if slots:
            await self.redis.zrem(LIVE_KEY.format(tenant), *slots)
