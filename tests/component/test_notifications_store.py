"""The notification consumer with the real store: Kamailio's stream entries (XADDed the way its Python,
controller/proxy/records.py, writes them for the controller's legs and calls with a state machine) reach
the transfer engine in order per conversation, and are acknowledged and deleted. The calls' own records
are Kamailio's (tests/component/test_proxy_records.py): the consumer writes none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from controller.adapters.redis_store import INBOUND_GROUP, INBOUND_STREAM, ConversationStore
from controller.metrics import Metrics
from controller.service.notifications import NotificationConsumer
from tests.component.conftest import eventually


class FakeEngine:
    """Records what the transfer engine is told, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def on_notification(self, conversation: str, method: str, params: dict[str, Any]) -> None:
        self.calls.append((conversation, method, params))


def notification(method: str, call_id: str, *, from_tag: str = "ft", to_tag: str = "tt", code: int = 0,
                 reason: str = "", cause: str = "", **extra: str) -> str:
    """One entry as route[NOTIFY] builds it with jansson_set: every field present, code an integer."""
    params = {"call_id": call_id, "from_tag": from_tag, "to_tag": to_tag, **extra, "code": code,
              "reason": reason, "cause": cause}
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})


async def xadd(redis: Redis, message: str | bytes) -> str:
    """What Kamailio's Python does: XADD xfer:kamailio MAXLEN ~ 1000000 * m <json>."""
    return (await redis.xadd(INBOUND_STREAM, {"m": message}, maxlen=1_000_000, approximate=True)).decode()


@pytest.fixture
def store(redis: Redis) -> ConversationStore:
    return ConversationStore(redis, max_call_s=3600, ttl_after_end_s=30)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def consumer(store: ConversationStore, metrics: Metrics, engine: FakeEngine
                   ) -> AsyncIterator[NotificationConsumer]:
    running = NotificationConsumer(store, metrics, consumer="replica-1", engine=engine)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        await running.stop()


async def all_applied(redis: Redis) -> bool:
    """Every notification read, acknowledged and deleted: nothing pending, nothing left in the stream."""
    groups = await redis.xinfo_groups(INBOUND_STREAM)
    if not groups or groups[0]["pending"] or groups[0]["lag"] not in (0, None):
        return False
    return await redis.xlen(INBOUND_STREAM) == 0


async def wait_applied(redis: Redis) -> None:
    await eventually(lambda: all_applied(redis), what="every notification to be applied and acknowledged")


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_notifications_reach_the_engine_and_write_no_record(
        redis: Redis, store: ConversationStore, consumer: NotificationConsumer, engine: FakeEngine,
        metrics: Metrics) -> None:
    await store.create_conversation("conv-1", "call-1", {"tenant": "acme", "direction": "incoming"})
    await xadd(redis, notification("call.answered", "call-1", to_tag="anna-tag", code=200, reason="OK"))
    await xadd(redis, notification("call.ended", "call-1", to_tag="anna-tag", by_tag="ft", cause="bye"))
    consumer.start()
    await wait_applied(redis)
    assert [(c, m) for c, m, _ in engine.calls] == [("conv-1", "call.answered"), ("conv-1", "call.ended")]
    assert engine.calls[1][2]["by_tag"] == "ft"
    # the conversation's record is as Kamailio left it: the consumer wrote nothing
    assert (await store.get_conversation("conv-1"))["state"] == "routing"
    assert [e["event"] for e in await store.read_events()] == ["call.started"]
    assert counted(metrics, "xfer_notifications_total", method="call.ended") == 1


async def test_notifications_apply_in_stream_order_per_conversation(
        redis: Redis, store: ConversationStore, consumer: NotificationConsumer, engine: FakeEngine) -> None:
    """The client's dialog and B's leg are one conversation; another call is a second one."""
    await store.create_conversation("conv-1", "call-1", {"direction": "incoming"})
    await store.save_leg("conv-1.t1.b1", "conv-1", "leg-1", [])
    await store.create_conversation("conv-2", "call-2", {"direction": "outgoing"})
    sequence = [
        ("call.answered", "call-1"), ("leg.ringing", "leg-1"), ("call.answered", "call-2"),
        ("call.answered", "leg-1"), ("leg.hungup", "call-1"), ("call.failed", "leg-1"), ("call.ended", "call-2"),
        ("call.ended", "call-1"),
    ]
    for method, call_id in sequence:
        await xadd(redis, notification(method, call_id, code=200 if method == "call.answered" else 0))
    consumer.start()
    await wait_applied(redis)
    assert [(c, m, p["call_id"]) for c, m, p in engine.calls if c == "conv-1"] == [
        ("conv-1", "call.answered", "call-1"), ("conv-1", "leg.ringing", "leg-1"),
        ("conv-1", "call.answered", "leg-1"), ("conv-1", "leg.hungup", "call-1"),
        ("conv-1", "call.failed", "leg-1"), ("conv-1", "call.ended", "call-1")]
    assert [(c, m) for c, m, _ in engine.calls if c == "conv-2"] == [("conv-2", "call.answered"),
                                                                    ("conv-2", "call.ended")]


async def test_a_malformed_notification_is_dropped_and_acknowledged(
        redis: Redis, store: ConversationStore, consumer: NotificationConsumer, metrics: Metrics,
        engine: FakeEngine) -> None:
    await store.create_conversation("conv-1", "call-1", {})
    for bad in (b"not json", b"\xff\xfe", json.dumps({"jsonrpc": "2.0", "method": "call.answered", "id": 1,
                                                       "params": {"call_id": "call-1"}}),  # a request, not a note
                json.dumps({"jsonrpc": "2.0", "method": "call.answered", "params": ["call-1"]}), "[]"):
        await xadd(redis, bad)
    await xadd(redis, notification("call.answered", "call-1", to_tag="anna-tag", code=200))
    consumer.start()
    await wait_applied(redis)
    assert counted(metrics, "xfer_errors_total", component="notification_malformed") == 5
    assert (await redis.xpending(INBOUND_STREAM, INBOUND_GROUP))["pending"] == 0
    assert [(c, m) for c, m, _ in engine.calls] == [("conv-1", "call.answered")]


async def test_a_notification_of_no_conversation_or_an_unknown_method_is_counted_and_dropped(
        redis: Redis, store: ConversationStore, consumer: NotificationConsumer, engine: FakeEngine,
        metrics: Metrics) -> None:
    await xadd(redis, notification("call.ended", "expired-1"))  # its conversation's keys have expired
    await xadd(redis, notification("call.unheard.of", "expired-1"))
    consumer.start()
    await wait_applied(redis)
    assert engine.calls == [] and await store.read_events() == []
    assert counted(metrics, "xfer_notifications_total", method="other") == 1


async def test_a_restarted_consumer_first_applies_what_it_read_before_dying(
        redis: Redis, store: ConversationStore, consumer: NotificationConsumer, engine: FakeEngine) -> None:
    await store.create_conversation("conv-1", "call-1", {})
    await store.ensure_inbound_group()
    await xadd(redis, notification("call.ended", "call-1", to_tag="anna-tag"))
    # the same replica read it, then died before applying it: it is pending under its name
    assert len(await store.read_inbound("replica-1", pending=False, block_ms=10)) == 1
    assert (await redis.xpending(INBOUND_STREAM, INBOUND_GROUP))["pending"] == 1
    consumer.start()
    await wait_applied(redis)
    assert [(c, m) for c, m, _ in engine.calls] == [("conv-1", "call.ended")]


class SlowEngine(FakeEngine):
    """Holds every notification of one conversation until released; fails chosen ones once."""

    def __init__(self, slow: str = "", fail_once: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.slow = slow
        self.release = asyncio.Event()
        self.fail_once = fail_once

    async def on_notification(self, conversation: str, method: str, params: dict[str, Any]) -> None:
        if conversation == self.slow:
            await self.release.wait()
        if self.fail_once == (conversation, method):
            self.fail_once = None
            raise ConnectionError("Redis away")
        await super().on_notification(conversation, method, params)


async def test_a_slow_conversation_holds_up_no_other(redis: Redis, store: ConversationStore,
                                                     metrics: Metrics) -> None:
    """conv-1's engine work hangs (a slow Kamailio, say): conv-2's notifications are applied meanwhile,
    and conv-1's, once it is free, still in stream order."""
    engine = SlowEngine(slow="conv-1")
    consumer = NotificationConsumer(store, metrics, consumer="replica-1", engine=engine)  # type: ignore[arg-type]
    await store.create_conversation("conv-1", "call-1", {})
    await store.create_conversation("conv-2", "call-2", {})
    for method, call_id in (("call.answered", "call-1"), ("call.answered", "call-2"), ("call.ended", "call-1"),
                            ("call.ended", "call-2")):
        await xadd(redis, notification(method, call_id))
    consumer.start()
    try:
        await eventually(lambda: _true(len(engine.calls) == 2), what="conv-2's notifications")
        assert [(c, m) for c, m, _ in engine.calls] == [("conv-2", "call.answered"), ("conv-2", "call.ended")]
        engine.release.set()
        await wait_applied(redis)
        assert [(c, m) for c, m, _ in engine.calls[2:]] == [("conv-1", "call.answered"), ("conv-1", "call.ended")]
    finally:
        engine.release.set()
        await consumer.stop()


async def test_a_notification_that_fails_to_apply_stays_pending_and_is_applied_later(
        redis: Redis, store: ConversationStore, metrics: Metrics) -> None:
    engine = SlowEngine(fail_once=("conv-1", "call.answered"))
    consumer = NotificationConsumer(store, metrics, consumer="replica-1", engine=engine)  # type: ignore[arg-type]
    await store.create_conversation("conv-1", "call-1", {})
    await xadd(redis, notification("call.answered", "call-1"))
    consumer.start()
    try:
        await wait_applied(redis)
        assert [(c, m) for c, m, _ in engine.calls] == [("conv-1", "call.answered")]
        assert counted(metrics, "xfer_errors_total", component="notifications") == 1
    finally:
        await consumer.stop()


async def test_stopping_finishes_what_is_being_applied_and_acknowledges_it(
        redis: Redis, store: ConversationStore, metrics: Metrics) -> None:
    engine = SlowEngine(slow="conv-1")
    consumer = NotificationConsumer(store, metrics, consumer="replica-1", engine=engine)  # type: ignore[arg-type]
    await store.create_conversation("conv-1", "call-1", {})
    await xadd(redis, notification("call.ended", "call-1"))
    consumer.start()
    await eventually(lambda: _true(bool(consumer._busy)), what="the notification to be taken")
    stopping = asyncio.create_task(consumer.stop())
    engine.release.set()
    await stopping
    assert [(c, m) for c, m, _ in engine.calls] == [("conv-1", "call.ended")]
    assert await all_applied(redis)


async def _true(value: bool) -> bool:
    return value
