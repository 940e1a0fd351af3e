"""The event log cannot grow without bound: every write trims it by age, and every so often by length."""

from __future__ import annotations

from typing import Any

from controller.adapters.redis_schema import EVENTS_LENGTH_TRIM_EVERY
from controller.adapters.redis_store import EVENTS_STREAM, ConversationStore


class Pipe:
    def __init__(self, calls: list[tuple[str, dict[str, Any]]]):
        self.calls = calls

    async def __aenter__(self) -> Pipe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def xadd(self, name: str, entry: dict[str, Any], **kw: Any) -> None:
        self.calls.append(("xadd", {"name": name, **kw}))

    def xtrim(self, name: str, **kw: Any) -> None:
        self.calls.append(("xtrim", {"name": name, **kw}))

    async def execute(self) -> list[Any]:
        return []


class FakeRedis:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def pipeline(self, transaction: bool = True) -> Pipe:
        return Pipe(self.calls)


async def test_every_event_is_written_with_an_age_limit_and_the_length_is_trimmed_now_and_then() -> None:
    redis = FakeRedis()
    store = ConversationStore(redis, max_call_s=60, ttl_after_end_s=1, events_maxlen=5000,  # type: ignore[arg-type]
                              events_retention_s=3600, clock=lambda: 10_000_000)
    for _ in range(EVENTS_LENGTH_TRIM_EVERY * 2):
        await store.append_event("call.rejected", "", {"cause": "x"})
    adds = [kw for name, kw in redis.calls if name == "xadd"]
    trims = [kw for name, kw in redis.calls if name == "xtrim"]
    assert len(adds) == EVENTS_LENGTH_TRIM_EVERY * 2
    assert all(kw["name"] == EVENTS_STREAM and kw["minid"] == 10_000_000 - 3600 * 1000 for kw in adds)
    assert trims == [{"name": EVENTS_STREAM, "maxlen": 5000, "approximate": True}] * 2
