"""Deadlines in a real Redis: a timer fires once, after its deadline, by whichever replica claims it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from controller.adapters.redis_timers import TIMERS_KEY, TimerLoop, TimerStore
from tests.component.conftest import eventually


class Fired:
    """What a TimerLoop handed over: (conversation, timer, wall-clock ms when it fired)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, conversation: str, name: str) -> None:
        self.calls.append((conversation, name, int(time.time() * 1000)))

    def names(self) -> list[tuple[str, str]]:
        return [(c, n) for c, n, _ in self.calls]

    def has(self, conversation: str, name: str) -> Callable[[], object]:
        async def check() -> bool:
            return (conversation, name) in self.names()
        return check


@pytest.fixture
async def running(redis: Redis) -> AsyncIterator[tuple[TimerStore, Fired]]:
    timers, fired = TimerStore(redis), Fired()
    loop = TimerLoop(timers, fired)
    loop.start()
    try:
        yield timers, fired
    finally:
        await loop.stop()


async def deadline_ms(redis: Redis, conversation: str, name: str) -> int:
    score = await redis.zscore(TIMERS_KEY, f"{conversation}|{name}")
    assert score is not None, f"no deadline for {conversation}|{name}"
    return int(score)


async def test_a_timer_fires_once_after_its_deadline(redis: Redis, running: tuple[TimerStore, Fired]) -> None:
    timers, fired = running
    await timers.start("conv-1", "no_answer", 0.3)
    due = await deadline_ms(redis, "conv-1", "no_answer")
    await eventually(fired.has("conv-1", "no_answer"), what="the timer to fire")
    [(conversation, name, at)] = fired.calls
    assert (conversation, name) == ("conv-1", "no_answer")
    assert at >= due, f"fired {due - at} ms before its deadline"
    assert await redis.zcard(TIMERS_KEY) == 0  # claimed: gone from the set
    # a later timer firing means the loop has polled many times since: the first one never fired again
    await timers.start("conv-1", "later", 0.2)
    await eventually(fired.has("conv-1", "later"), what="the later timer to fire")
    assert fired.names() == [("conv-1", "no_answer"), ("conv-1", "later")]


async def test_a_timer_is_not_due_before_its_deadline(redis: Redis) -> None:
    """The same store with its clock held still: claim_due hands out nothing before the deadline."""
    now = [1_000_000.0]
    timers = TimerStore(redis, clock=lambda: now[0])
    await timers.start("conv-1", "prompt", 2.5)
    assert await deadline_ms(redis, "conv-1", "prompt") == 1_000_002_500
    now[0] = 1_000_002.499
    assert await timers.claim_due() == []
    now[0] = 1_000_002.5
    assert await timers.claim_due() == [("conv-1", "prompt")]
    assert await timers.claim_due() == []  # claimed once, never again


async def test_restarting_a_timer_moves_its_deadline(redis: Redis) -> None:
    now = [1000.0]
    timers = TimerStore(redis, clock=lambda: now[0])
    await timers.start("conv-1", "no_answer", 10)
    await timers.start("conv-1", "no_answer", 20)
    assert await redis.zcard(TIMERS_KEY) == 1
    now[0] = 1015.0
    assert await timers.claim_due() == []
    now[0] = 1020.0
    assert await timers.claim_due() == [("conv-1", "no_answer")]


async def test_a_cancelled_timer_never_fires(redis: Redis, running: tuple[TimerStore, Fired]) -> None:
    timers, fired = running
    await timers.start("conv-1", "no_answer", 0.2)
    await timers.start("conv-1", "warning", 0.4)  # a later deadline: when it fires, the first one's has passed
    await timers.cancel("conv-1", "no_answer")
    await timers.cancel("conv-1", "never-started")  # cancelling what is not there is harmless
    await eventually(fired.has("conv-1", "warning"), what="the later timer to fire")
    assert fired.names() == [("conv-1", "warning")]


async def test_cancel_all_cancels_only_the_named_timers_of_one_conversation(
        redis: Redis, running: tuple[TimerStore, Fired]) -> None:
    timers, fired = running
    for name in ("no_answer", "warning", "prompt"):
        await timers.start("conv-1", name, 0.2)
    await timers.start("conv-2", "no_answer", 0.2)
    await timers.start("conv-3", "last", 0.5)  # the latest deadline of all
    await timers.cancel_all("conv-1", ["no_answer", "warning"])
    await timers.cancel_all("conv-1", [])  # nothing to cancel: no error
    await eventually(fired.has("conv-3", "last"), what="the latest timer to fire")
    assert sorted(fired.names()) == [("conv-1", "prompt"), ("conv-2", "no_answer"), ("conv-3", "last")]


async def test_deadlines_survive_the_controller_that_set_them(redis: Redis, redis_socket: str) -> None:
    """A controller sets a deadline and goes away; a new one (new client, new store) fires it."""
    first = Redis(unix_socket_path=redis_socket)
    await TimerStore(first).start("conv-1", "no_answer", 0.2)
    await first.aclose()

    fired = Fired()
    second = Redis(unix_socket_path=redis_socket)
    loop = TimerLoop(TimerStore(second), fired)
    loop.start()
    try:
        await eventually(fired.has("conv-1", "no_answer"), what="the restarted controller to fire the timer")
    finally:
        await loop.stop()
        await second.aclose()
    assert fired.names() == [("conv-1", "no_answer")]


async def test_two_replicas_never_fire_one_timer_twice(redis: Redis, redis_socket: str) -> None:
    other = Redis(unix_socket_path=redis_socket)
    fired = Fired()
    loops = [TimerLoop(TimerStore(redis), fired), TimerLoop(TimerStore(other), fired)]
    for loop in loops:
        loop.start()
    try:
        names = [f"t{i}" for i in range(20)]
        for name in names:
            await TimerStore(redis).start("conv-1", name, 0.1)
        await TimerStore(redis).start("conv-1", "last", 0.3)
        await eventually(fired.has("conv-1", "last"), what="the last timer to fire")
    finally:
        for loop in loops:
            await loop.stop()
        await other.aclose()
    assert sorted(fired.names()) == sorted(("conv-1", n) for n in [*names, "last"])
