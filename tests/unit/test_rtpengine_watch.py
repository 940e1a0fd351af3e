"""The rtpengine restart watch: start times from uptimes, once per restart across replicas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from controller.metrics import Metrics
from controller.service.rtpengine_watch import RtpengineWatch, restarted, start_time


def stats(uptime: int | str) -> dict[str, Any]:
    return {"result": "ok", "statistics": {"totalstatistics": {"uptime": str(uptime)}}}


def test_start_time_is_now_minus_the_uptime() -> None:
    assert start_time(stats(30), 1000.0) == 970.0


@pytest.mark.parametrize("reply", [{}, {"statistics": {}}, {"statistics": {"totalstatistics": None}}])
def test_a_reply_without_an_uptime_is_an_error(reply: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="uptime"):
        start_time(reply, 1000.0)


def test_a_restart_is_a_start_clearly_later_than_the_one_seen() -> None:
    assert not restarted(None, 1000.0)  # nothing seen before
    assert not restarted(1000.0, 1001.0)  # whole-second uptimes: the same start
    assert restarted(1000.0, 1010.0)
    assert not restarted(1010.0, 1000.0)  # an older estimate never counts as a restart


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def set(self, key: str, value: str, get: bool = False) -> str | None:
        old = self.values.get(key)
        self.values[key] = value
        return old if get else None


class FakeNg:
    def __init__(self, calls: list[str]) -> None:
        self.uptime = 100
        self.calls = calls

    async def statistics(self) -> dict[str, Any]:
        return stats(self.uptime)

    async def list_calls(self, limit: int = 32) -> dict[str, Any]:
        assert limit >= 10_000  # rtpengine's default of 32 would miss calls
        return {"result": "ok", "calls": self.calls}


class FakeStore:
    def __init__(self, index: dict[str, str]) -> None:
        self.index = index

    async def conversations_for_calls(self, call_ids: list[str]) -> list[str | None]:
        return [self.index.get(c) for c in call_ids]


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def make_watch(redis: FakeRedis, ng: FakeNg, clock: Clock, told: list[str], fail: str = "") -> RtpengineWatch:
    async def restore(conversation: str) -> None:
        if conversation == fail:
            raise RuntimeError("Redis away")
        told.append(conversation)

    store = FakeStore({"call-1": "conv-1", "call-2": "conv-2", "call-3": "conv-1"})
    return RtpengineWatch(ng, redis, store, restore, Metrics(), node_key="127.0.0.1:2223", clock=clock)


def test_a_restart_tells_each_conversation_of_a_restored_call_once() -> None:
    async def scenario() -> None:
        redis, ng, clock, told = FakeRedis(), FakeNg(["call-1", "call-2", "call-3", "ordinary"]), Clock(), []
        watch = make_watch(redis, ng, clock, told)
        assert await watch.check() == 0  # the first look: nothing to compare with
        for _ in range(5):  # the same rtpengine, seen every second
            clock.now += 1
            ng.uptime += 1
            assert await watch.check() == 0
        clock.now += 3
        ng.uptime = 1  # it restarted
        assert await watch.check() == 2
        assert sorted(told) == ["conv-1", "conv-2"]
        clock.now += 1
        ng.uptime += 1
        assert await watch.check() == 0  # that restart is handled

    asyncio.run(scenario())


def test_two_replicas_handle_one_restart_once() -> None:
    async def scenario() -> None:
        redis, ng, clock, told = FakeRedis(), FakeNg(["call-1"]), Clock(), []
        first, second = make_watch(redis, ng, clock, told), make_watch(redis, ng, clock, told)
        await first.check()
        await second.check()
        clock.now += 60
        ng.uptime = 2
        assert await first.check() + await second.check() == 1
        assert told == ["conv-1"]

    asyncio.run(scenario())


def test_one_conversation_that_cannot_be_restored_does_not_stop_the_others() -> None:
    async def scenario() -> None:
        redis, ng, clock, told = FakeRedis(), FakeNg(["call-1", "call-2"]), Clock(), []
        watch = make_watch(redis, ng, clock, told, fail="conv-1")
        await watch.check()
        clock.now += 60
        ng.uptime = 2
        await watch.check()
        assert told == ["conv-2"]
        assert watch.metrics.errors.labels("media_restore")._value.get() == 1

    asyncio.run(scenario())
