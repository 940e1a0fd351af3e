"""Kamailio's route.invite callback with the real store: what a routed, a rejected and a bad request
leave in Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from controller.adapters.redis_store import ConversationStore, now_ms
from controller.config import Config, load_config
from controller.metrics import Metrics
from controller.service.callbacks import Callbacks

CONFIG: Config = load_config(Path(__file__).resolve().parents[2] / "config" / "example.yaml")

# what Kamailio's route[ASK_CONTROLLER] sends for a client calling the DID of extension 100
INVITE: dict[str, Any] = {
    "call_id": "call-1", "from_tag": "ft-1", "source_ip": "127.0.0.2", "source_port": 5060,
    "from_user": "+79161112233", "from_domain": "127.0.0.2", "ruri_user": "+74951110000", "ruri_domain": "127.0.0.1",
    "peer": "trunk",
}


@pytest.fixture
def store(redis: Redis) -> ConversationStore:
    node = CONFIG.node
    return ConversationStore(redis, max_call_s=node.max_call_duration_s, ttl_after_end_s=node.call_keys_ttl_after_end_s)


@pytest.fixture
def callbacks(store: ConversationStore) -> Callbacks:
    return Callbacks(CONFIG, store, Metrics())


def request(params: Any, *, id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "route.invite", "params": params, "id": id}).encode()


async def test_a_did_call_is_recorded_as_the_conversation_kamailio_was_told(
        redis: Redis, store: ConversationStore, callbacks: Callbacks) -> None:
    before = now_ms()
    reply = await callbacks.handle(request(INVITE))
    assert reply is not None and "error" not in reply, reply
    result = reply["result"]
    conversation = result["conversation"]
    assert (result["action"], result["direction"], result["tenant"]) == ("route", "incoming", "acme")

    stored = await store.get_conversation(conversation)
    created = int(stored.pop("created_ms"))
    assert before <= created <= now_ms()
    assert stored == {
        "tenant": "acme", "direction": "incoming", "client_number": "+79161112233", "employee": "100",
        "did": "+74951110000", "origin": "did:+74951110000->extension:100", "from_tag": "ft-1",
        "from": "+79161112233", "to": "+74951110000", "targets": json.dumps([t["uri"] for t in result["targets"]]),
        "call_id": "call-1", "state": "routing"}
    assert json.loads(stored["targets"]), "no target recorded"
    assert await store.conversation_for_call("call-1") == conversation
    ttl = await redis.ttl(f"xfer:conv:{conversation}")
    assert CONFIG.node.max_call_duration_s - 2 <= ttl <= CONFIG.node.max_call_duration_s
    [started] = await store.read_events()
    assert (started["event"], started["conversation"]) == ("call.started", conversation)
    assert started["data"]["call_id"] == "call-1" and started["data"]["origin"] == stored["origin"]


async def test_a_rejected_call_is_only_logged(redis: Redis, store: ConversationStore, callbacks: Callbacks) -> None:
    reply = await callbacks.handle(request(INVITE | {"call_id": "call-2", "ruri_user": "+74950000999"}))
    assert reply is not None
    result = reply["result"]
    assert (result["action"], result["code"]) == ("reject", 404), result
    [rejected] = await store.read_events()
    assert rejected["event"] == "call.rejected"
    assert rejected["data"] == {"call_id": "call-2", "code": 404, "reason": result["reason"], "cause": "unknown_did",
                                "from": "+79161112233", "to": "+74950000999", "source": "127.0.0.2:5060"}
    # nothing but the event log: no conversation, no call-id index
    assert await redis.keys("*") == [b"xfer:events"]


@pytest.mark.parametrize("params", [
    {k: v for k, v in INVITE.items() if k != "source_ip"},  # a parameter missing
    INVITE | {"source_ip": "not-an-address"},
    INVITE | {"source_port": 70000},
    INVITE | {"xfer_leg": "conv-9.t1.b1"},  # a leg claim from a trunk
    [INVITE],  # not an object
])
async def test_a_bad_request_stores_nothing(redis: Redis, callbacks: Callbacks, params: Any) -> None:
    reply = await callbacks.handle(request(params))
    assert reply is not None and reply["error"]["code"] == -32602, reply
    assert await redis.dbsize() == 0


async def test_a_transfer_legs_invite_gets_the_targets_the_engine_stored(store: ConversationStore,
                                                                        callbacks: Callbacks) -> None:
    targets = [{"uri": "sip:101@127.0.0.3:5070", "lookup": 0}]
    await store.save_leg("conv-1.t1.b1", "conv-1", "leg-call-1", targets, ring_timeout_ms=4000)
    leg = INVITE | {"call_id": "leg-call-1", "peer": "node", "xfer_leg": "conv-1.t1.b1"}
    result = (await callbacks.handle(request(leg)))["result"]
    assert (result["action"], result["conversation"], result["targets"], result["ring_timeout_ms"]) == (
        "route", "conv-1", targets, 4000)
    # the same leg id with another Call-ID is not that leg
    other = (await callbacks.handle(request(leg | {"call_id": "forged"})))["result"]
    assert (other["action"], other["code"]) == ("reject", 404)
    assert await store.read_events() == []
