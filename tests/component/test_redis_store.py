"""ConversationStore against a real Redis: what lands under which key, for how long."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from controller.adapters.redis_schema import EVENTS_LENGTH_TRIM_EVERY
from controller.adapters.redis_store import (
    EVENTS_STREAM,
    INBOUND_GROUP,
    INBOUND_STREAM,
    ConversationStore,
    now_ms,
)

MAX_CALL_S, AFTER_END_S = 3600, 30


@pytest.fixture
def store(redis: Redis) -> ConversationStore:
    return ConversationStore(redis, max_call_s=MAX_CALL_S, ttl_after_end_s=AFTER_END_S)


def text(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in mapping.items()}


async def assert_ttl(redis: Redis, key: str, seconds: int) -> None:
    ttl = await redis.ttl(key)
    assert seconds - 2 <= ttl <= seconds, f"{key}: TTL {ttl}, expected {seconds}"


# -- conversations and the call-id index ---------------------------------------------------------
async def test_a_new_conversation_is_recorded_indexed_and_logged_and_expires(redis: Redis,
                                                                            store: ConversationStore) -> None:
    await store.create_conversation("conv-1", "call-1", {
        "tenant": "acme", "direction": "incoming", "client_number": None, "targets": ["sip:100@x"],
        "lookup": False, "created_ms": 123})

    assert text(await redis.hgetall("xfer:conv:conv-1")) == {
        "tenant": "acme", "direction": "incoming", "client_number": "", "targets": '["sip:100@x"]',
        "lookup": "0", "created_ms": "123", "call_id": "call-1", "state": "routing"}
    assert await store.get_conversation("conv-1") == text(await redis.hgetall("xfer:conv:conv-1"))
    assert await redis.get("xfer:call:call-1") == b"conv-1"
    await assert_ttl(redis, "xfer:conv:conv-1", MAX_CALL_S)
    await assert_ttl(redis, "xfer:call:call-1", MAX_CALL_S)

    [started] = await store.read_events()
    assert (started["event"], started["conversation"]) == ("call.started", "conv-1")
    assert started["data"] == {"tenant": "acme", "direction": "incoming", "client_number": "",
                               "targets": '["sip:100@x"]', "lookup": 0, "created_ms": 123,
                               "call_id": "call-1", "state": "routing"}
    assert abs(int(started["ts_ms"]) - now_ms()) < 5000
    assert await store.get_conversation("never-was") == {}


async def test_an_update_changes_fields_and_logs_only_when_asked(redis: Redis, store: ConversationStore) -> None:
    await store.create_conversation("conv-1", "call-1", {"tenant": "acme"})
    await store.update_conversation("conv-1", {"state": "answered", "to_tag": "tt"})
    assert [e["event"] for e in await store.read_events()] == ["call.started"]
    await store.update_conversation("conv-1", {"answered_ms": 5}, event="call.answered",
                                    event_fields={"call_id": "call-1", "code": 200})
    conv = await store.get_conversation("conv-1")
    assert (conv["state"], conv["to_tag"], conv["answered_ms"], conv["tenant"]) == ("answered", "tt", "5", "acme")
    answered = (await store.read_events())[-1]
    assert (answered["event"], answered["data"]) == ("call.answered", {"call_id": "call-1", "code": 200})
    # an update never shortens the conversation's life
    await assert_ttl(redis, "xfer:conv:conv-1", MAX_CALL_S)


async def test_an_ended_conversation_is_marked_logged_and_expires_soon(redis: Redis,
                                                                      store: ConversationStore) -> None:
    await store.create_conversation("conv-1", "call-1", {"tenant": "acme"})
    await store.end_conversation("conv-1", "call-1", {"code": 200, "cause": "bye"}, event="call.ended")
    conv = await store.get_conversation("conv-1")
    assert (conv["state"], conv["code"], conv["cause"]) == ("ended", "200", "bye")
    await assert_ttl(redis, "xfer:conv:conv-1", AFTER_END_S)
    await assert_ttl(redis, "xfer:call:call-1", AFTER_END_S)
    events = await store.read_events()
    assert [(e["event"], e["conversation"]) for e in events] == [("call.started", "conv-1"),
                                                                 ("call.ended", "conv-1")]
    assert events[-1]["data"] == {"code": 200, "cause": "bye"}


async def test_the_call_id_index_answers_one_call_or_many_in_order(store: ConversationStore) -> None:
    await store.create_conversation("conv-1", "call-1", {})
    await store.create_conversation("conv-2", "call-2", {})
    await store.save_leg("conv-1.t1.b1", "conv-1", "leg-call-1", [])
    assert await store.conversation_for_call("call-1") == "conv-1"
    assert await store.conversation_for_call("leg-call-1") == "conv-1"  # a leg belongs to its conversation
    assert await store.conversation_for_call("nobody") is None
    assert await store.conversations_for_calls(["call-2", "nobody", "leg-call-1", "call-1"]) == [
        "conv-2", None, "conv-1", "conv-1"]
    assert await store.conversations_for_calls([]) == []


async def test_a_calls_conversation_is_remembered_and_the_memory_is_bounded(store: ConversationStore,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.adapters.redis_store.CALL_INDEX_CACHE", 2)
    for n in (1, 2, 3):
        await store.create_conversation(f"conv-{n}", f"call-{n}", {})
        assert await store.conversation_for_call(f"call-{n}") == f"conv-{n}"
    await store.redis.delete("xfer:call:call-3")
    assert await store.conversation_for_call("call-3") == "conv-3"  # remembered: no round trip
    await store.redis.delete("xfer:call:call-1")
    assert await store.conversation_for_call("call-1") is None  # the oldest was forgotten (bounded)
    assert await store.conversation_for_call("nobody") is None  # an unknown call is never remembered
    assert len(store._call_index) <= 2


# -- legs the controller originates --------------------------------------------------------------
async def test_a_leg_is_saved_read_back_and_expires_with_its_conversation(redis: Redis,
                                                                         store: ConversationStore) -> None:
    targets = [{"uri": "sip:101@127.0.0.3:5070", "lookup": 0}, {"uri": "sip:103@acme.test", "lookup": 1}]
    flags = "call-id=call-0 from-tag=conv-1.t1.b1~origin to-tag=conv-1.t1.b1"
    await store.save_leg("conv-1.t1.b1", "conv-1", "leg-call-1", targets, ring_timeout_ms=20_000, ng_flags=flags)
    await store.save_leg("conv-1.t1.b2", "conv-1", "leg-call-2", [])

    # the rtpengine flags travel with the leg: Kamailio's routing of its INVITE puts them in its htable
    assert await store.get_leg("conv-1.t1.b1") == {"conversation": "conv-1", "call_id": "leg-call-1",
                                                   "targets": targets, "ring_timeout_ms": "20000",
                                                   "ng_flags": flags}
    assert (await store.get_leg("conv-1.t1.b2"))["ring_timeout_ms"] == "0"
    assert await store.get_leg("conv-1.t9.b9") is None
    for key in ("xfer:leg:conv-1.t1.b1", "xfer:call:leg-call-1"):
        await assert_ttl(redis, key, MAX_CALL_S)

    await store.end_legs({"conv-1.t1.b1": "leg-call-1"})
    for key in ("xfer:leg:conv-1.t1.b1", "xfer:call:leg-call-1"):
        await assert_ttl(redis, key, AFTER_END_S)
    await assert_ttl(redis, "xfer:leg:conv-1.t1.b2", MAX_CALL_S)  # not ended: untouched
    await store.end_legs({})  # nothing to end: no round trip, no error
    assert await redis.dbsize() == 4


# -- the event log -------------------------------------------------------------------------------
async def test_the_event_log_reads_back_oldest_first_and_the_latest_count(store: ConversationStore) -> None:
    for i in range(5):
        await store.append_event("transfer.completed", f"conv-{i}", {"i": i, "steps_ms": {"ringing": 10 * i}})
    events = await store.read_events()
    assert [e["data"]["i"] for e in events] == [0, 1, 2, 3, 4]
    assert events[2]["data"]["steps_ms"] == {"ringing": 20}
    assert [e["conversation"] for e in await store.read_events(count=2)] == ["conv-3", "conv-4"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-"))) and len(set(ids)) == 5


@pytest.fixture
async def small_stream_nodes(redis: Redis):
    """One entry per stream node, so that Redis's approximate (~) trimming is exact and observable."""
    before = (await redis.config_get("stream-node-max-entries"))["stream-node-max-entries"]
    await redis.config_set("stream-node-max-entries", 1)
    yield
    await redis.config_set("stream-node-max-entries", before)


async def test_the_event_log_drops_entries_older_than_the_retention(redis: Redis, small_stream_nodes) -> None:
    store = ConversationStore(redis, max_call_s=MAX_CALL_S, ttl_after_end_s=AFTER_END_S, events_retention_s=60)
    old = now_ms() - 120_000
    await redis.xadd(EVENTS_STREAM, {"event": "call.ended", "data": "{}"}, id=f"{old}-0")
    await redis.xadd(EVENTS_STREAM, {"event": "call.ended", "data": "{}"}, id=f"{old + 1}-0")
    recent = now_ms() - 30_000
    await redis.xadd(EVENTS_STREAM, {"event": "call.started", "data": "{}"}, id=f"{recent}-0")
    await store.append_event("call.answered", "conv-1", {})
    assert [e["event"] for e in await store.read_events()] == ["call.started", "call.answered"]


async def test_the_event_log_is_trimmed_by_length_every_so_many_writes(redis: Redis, small_stream_nodes) -> None:
    # (an approximate trim removes at most 100 stream nodes at a time: keep the excess below that)
    store = ConversationStore(redis, max_call_s=MAX_CALL_S, ttl_after_end_s=AFTER_END_S, events_maxlen=200)
    for i in range(EVENTS_LENGTH_TRIM_EVERY - 1):
        await store.append_event("call.started", f"conv-{i}", {})
    assert await redis.xlen(EVENTS_STREAM) == EVENTS_LENGTH_TRIM_EVERY - 1  # not trimmed on every write
    await store.append_event("call.started", "last", {})
    assert await redis.xlen(EVENTS_STREAM) == 200
    assert (await store.read_events())[-1]["conversation"] == "last"


# (the registrar directory and the routing table are published by controller.publish:
#  tests/component/test_proxy_records.py)


# -- Kamailio's notification stream --------------------------------------------------------------
def note(method: str, call_id: str) -> dict[str, str]:
    return {"m": json.dumps({"jsonrpc": "2.0", "method": method, "params": {"call_id": call_id}})}


async def test_the_consumer_group_is_created_once_and_reads_what_came_before_it(
        redis: Redis, store: ConversationStore) -> None:
    early = (await redis.xadd(INBOUND_STREAM, note("call.rejected", "c0"))).decode()
    await store.ensure_inbound_group()
    await store.ensure_inbound_group()  # every replica (and every retry) ensures it: BUSYGROUP is fine
    groups = await redis.xinfo_groups(INBOUND_STREAM)
    assert [g["name"] for g in groups] == [INBOUND_GROUP.encode()]
    got = await store.read_inbound("c1", pending=False, block_ms=10)
    assert got == [(early, note("call.rejected", "c0")["m"].encode())]


async def test_pending_then_new_then_acknowledged(redis: Redis, store: ConversationStore) -> None:
    await store.ensure_inbound_group()
    first = [(await redis.xadd(INBOUND_STREAM, note("call.answered", f"c{i}"))).decode() for i in range(3)]
    assert await store.read_inbound("c1", pending=True) == []  # nothing read yet, so nothing pending
    got = await store.read_inbound("c1", pending=False, block_ms=10)
    assert [i for i, _ in got] == first
    assert json.loads(got[1][1])["params"]["call_id"] == "c1"
    assert await store.read_inbound("c1", pending=False, block_ms=10) == []  # nothing new
    # read but not acknowledged: this consumer's pending entries, again and again, until acknowledged
    assert [i for i, _ in await store.read_inbound("c1", pending=True)] == first
    assert await store.read_inbound("c2", pending=True) == []  # another consumer's are not ours
    later = (await redis.xadd(INBOUND_STREAM, note("call.ended", "c9"))).decode()
    assert [i for i, _ in await store.read_inbound("c1", pending=False, block_ms=10)] == [later]

    await store.ack_inbound(first[:2])
    assert [i for i, _ in await store.read_inbound("c1", pending=True)] == [first[2], later]
    assert (await redis.xpending(INBOUND_STREAM, INBOUND_GROUP))["pending"] == 2
    assert await redis.xlen(INBOUND_STREAM) == 2  # applied entries are deleted from the stream
    await store.ack_inbound([first[2], later])
    assert (await redis.xpending(INBOUND_STREAM, INBOUND_GROUP))["pending"] == 0
    assert await redis.xlen(INBOUND_STREAM) == 0
    await store.ack_inbound([])  # nothing to acknowledge: no error


async def test_a_dead_replicas_notifications_are_claimed_by_another(redis: Redis, store: ConversationStore) -> None:
    await store.ensure_inbound_group()
    ids = [(await redis.xadd(INBOUND_STREAM, note("call.answered", f"c{i}"))).decode() for i in range(3)]
    assert len(await store.read_inbound("dead", pending=False, block_ms=10)) == 3
    # not idle long enough yet: the reader may still be working on them
    assert await store.claim_abandoned("alive", min_idle_ms=60_000) == []
    await redis.xdel(INBOUND_STREAM, ids[1])  # an entry that vanished meanwhile is not handed out
    claimed = await store.claim_abandoned("alive", min_idle_ms=0)
    assert [i for i, _ in claimed] == [ids[0], ids[2]]
    assert json.loads(claimed[1][1])["params"]["call_id"] == "c2"
    assert [i for i, _ in await store.read_inbound("alive", pending=True)] == [ids[0], ids[2]]
    assert await store.read_inbound("dead", pending=True) == []
