"""Kamailio's Python against a real Redis: what ProxyRecords writes is what the controller's
ConversationStore reads (one layout, two writers), TableCache follows the published routing table, and
a Publication replaces the registrar and the table as Kamailio needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
import yaml
from redis.asyncio import Redis

from controller.adapters.redis_store import ConversationStore
from controller.codecs.jsonrpc import Notification, parse_message
from controller.config import Config, load_config, parse_config
from controller.metrics import Metrics
from controller.proxy.invite import InviteParams, decide_invite
from controller.proxy.records import ProxyRecords, RecordLimits, TableCache
from controller.publish import OLD_TABLE_TTL_S, Publication, publication
from controller.routing.compiler import compile_routes
from controller.service.publisher import PublicationKeeper
from controller.wire import CALL_KEY, CONV_KEY, REGISTRAR_KEY, ROUTES_CURRENT_KEY, ROUTES_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
CONFIG: Config = load_config(EXAMPLE)
LIMITS = RecordLimits(max_call_s=3600, ttl_after_end_s=30)
NOW = 1_700_000_000_000

# a client calling the DID of extension 100 from the example's trunk
INVITE: dict[str, Any] = {
    "call_id": "call-1", "from_tag": "ft-1", "source_ip": "127.0.0.2", "source_port": 5060,
    "from_user": "+79161112233", "from_domain": "127.0.0.2", "ruri_user": "+74951110000", "ruri_domain": "127.0.0.1",
    "peer": "trunk",
}


@pytest.fixture
def sync(redis: Redis, redis_socket: str) -> Iterator[redis_py.Redis]:
    """Kamailio's kind of client (sync redis-py) on the same, emptied, database as `redis`."""
    client = redis_py.Redis(unix_socket_path=redis_socket)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def store(redis: Redis) -> ConversationStore:
    return ConversationStore(redis, max_call_s=LIMITS.max_call_s, ttl_after_end_s=LIMITS.ttl_after_end_s,
                             clock=lambda: NOW)


@pytest.fixture
def records(sync: redis_py.Redis) -> ProxyRecords:
    return ProxyRecords(sync, LIMITS, clock=lambda: NOW)


def routed() -> dict[str, Any]:
    """The conversation fields of the example's DID call, as the proxy decides them."""
    decided = decide_invite(compile_routes(CONFIG), InviteParams.parse(INVITE), "c", NOW)
    assert decided.conversation is not None
    return decided.conversation


def moved(did: str, extension: str) -> Config:
    """The example configuration with `did` routed to another extension."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["tenants"]["acme"]["dids"][did] = {"extension": extension}
    return parse_config(data)


def employee(table: Any) -> str:
    decided = decide_invite(table, InviteParams.parse(INVITE), "c", NOW)
    assert decided.conversation is not None, decided.result
    return decided.conversation["employee"]


# -- the conversation records ---------------------------------------------------------------------

async def test_a_started_call_is_the_conversation_the_controller_reads(
        redis: Redis, store: ConversationStore, records: ProxyRecords) -> None:
    fields = routed()
    records.started("conv-1", "call-1", fields)
    assert await store.conversation_for_call("call-1") == "conv-1"
    stored = await store.get_conversation("conv-1")
    assert stored["state"] == "routing" and stored["call_id"] == "call-1"
    assert (stored["tenant"], stored["employee"], stored["from_tag"]) == ("acme", "100", "ft-1")
    assert json.loads(stored["targets"]) == fields["targets"]
    # exactly what the controller's own writer leaves for the same call: keys, values, TTLs, event
    await store.create_conversation("conv-2", "call-2", fields)
    assert await store.get_conversation("conv-2") == stored | {"call_id": "call-2"}
    for key in (CONV_KEY, CALL_KEY):
        assert await redis.ttl(key.format("conv-1" if key is CONV_KEY else "call-1")) == await redis.ttl(
            key.format("conv-2" if key is CONV_KEY else "call-2")) == LIMITS.max_call_s
    proxy_event, controller_event = await store.read_events()
    assert {k: v for k, v in proxy_event.items() if k not in ("id", "conversation", "data")} == {
        k: v for k, v in controller_event.items() if k not in ("id", "conversation", "data")}
    assert (proxy_event["event"], proxy_event["conversation"], proxy_event["ts_ms"]) == ("call.started", "conv-1",
                                                                                         str(NOW))
    assert proxy_event["data"] == controller_event["data"] | {"call_id": "call-1"}


async def test_answered_and_ended_update_the_state_and_the_ttls(
        redis: Redis, store: ConversationStore, records: ProxyRecords) -> None:
    records.started("conv-1", "call-1", routed())
    records.answered("conv-1", {"call_id": "call-1", "code": 200}, {"state": "answered", "answered_ms": NOW,
                                                                     "to_tag": "tt-1"})
    stored = await store.get_conversation("conv-1")
    assert (stored["state"], stored["answered_ms"], stored["to_tag"]) == ("answered", str(NOW), "tt-1")
    assert await redis.ttl(CONV_KEY.format("conv-1")) == LIMITS.max_call_s
    records.ended("call.ended", "conv-1", "call-1", {"call_id": "call-1", "cause": "bye", "duration_ms": 60000})
    stored = await store.get_conversation("conv-1")
    assert (stored["state"], stored["duration_ms"], stored["cause"]) == ("ended", "60000", "bye")
    assert await redis.ttl(CONV_KEY.format("conv-1")) == await redis.ttl(CALL_KEY.format("call-1")) == 30
    assert [e["event"] for e in await store.read_events()] == ["call.started", "call.answered", "call.ended"]
    assert (await store.read_events())[-1]["data"] == {"call_id": "call-1", "cause": "bye", "duration_ms": 60000}


async def test_a_rejection_is_only_an_event(redis: Redis, store: ConversationStore, records: ProxyRecords) -> None:
    records.event("call.rejected", "conv-1", {"call_id": "call-1", "code": 404})
    [rejected] = await store.read_events()
    assert (rejected["event"], rejected["data"]) == ("call.rejected", {"call_id": "call-1", "code": 404})
    assert await redis.keys(CONV_KEY.format("*")) == []


async def test_the_controller_reads_kamailio_s_notifications_as_json_rpc(
        store: ConversationStore, records: ProxyRecords) -> None:
    await store.ensure_inbound_group()
    message = {"jsonrpc": "2.0", "method": "leg.ringing", "params": {"call_id": "leg-1", "code": 180}}
    records.notify_controller(message)
    [(_entry_id, raw)] = await store.read_inbound("c1", pending=False, block_ms=10)
    parsed = parse_message(raw)
    assert parsed == Notification("leg.ringing", {"call_id": "leg-1", "code": 180})


async def test_a_leg_the_controller_saved_is_what_the_proxy_routes(store: ConversationStore,
                                                                  records: ProxyRecords) -> None:
    targets = [{"uri": "sip:101@127.0.0.3:5081"}]
    await store.save_leg("conv-9.t1.b1", "conv-9", "leg-call", targets, ring_timeout_ms=20000)
    leg = records.leg("conv-9.t1.b1")
    assert leg is not None
    assert (leg["conversation"], leg["call_id"], leg["targets"], int(leg["ring_timeout_ms"])) == (
        "conv-9", "leg-call", targets, 20000)
    assert records.leg("conv-9.t9.b9") is None


# -- the routing table ----------------------------------------------------------------------------

def test_the_table_cache_follows_the_published_version(sync: redis_py.Redis) -> None:
    first = publication(CONFIG)
    first.publish_sync(sync)
    cache = TableCache()
    table = cache.current(sync)
    assert table is not None and cache.version == first.version and employee(table) == "100"
    assert cache.current(sync) is table  # one read of the version per call, the table only once

    sync.delete(ROUTES_CURRENT_KEY)  # the version key gone: keep deciding with the last table
    assert cache.current(sync) is table

    second = publication(moved("+74951110000", "101"))
    assert second.version != first.version
    second.publish_sync(sync)
    table = cache.current(sync)
    assert table is not None and cache.version == second.version and employee(table) == "101"

    sync.set(ROUTES_CURRENT_KEY, "no-such-version")  # a version whose table is missing: keep the old one
    assert cache.current(sync) is table and cache.version == second.version


def test_no_table_published_is_no_table() -> None:
    class Empty:
        def get(self, key: str) -> None:
            return None

    assert TableCache().current(Empty()) is None


# -- the publication ------------------------------------------------------------------------------

def test_a_publication_replaces_the_registrar_and_expires_the_previous_table(sync: redis_py.Redis) -> None:
    first = publication(CONFIG)
    first.publish_sync(sync)
    registrar = {k.decode(): v.decode() for k, v in sync.hgetall(REGISTRAR_KEY).items()}
    assert registrar == first.registrar and "100@acme.test" in registrar
    assert sync.ttl(REGISTRAR_KEY) == -1 and sync.ttl(ROUTES_KEY.format(first.version)) == -1
    assert sync.get(ROUTES_CURRENT_KEY) == first.version.encode()

    data = yaml.safe_load(EXAMPLE.read_text())
    del data["tenants"]["acme"]["extensions"]["102"]
    data["tenants"]["acme"]["departments"]["sales"]["members"] = ["101"]
    second = publication(parse_config(data))
    second.publish_sync(sync)
    registrar = {k.decode(): v.decode() for k, v in sync.hgetall(REGISTRAR_KEY).items()}
    assert registrar == second.registrar and "102@acme.test" not in registrar  # replaced whole
    assert sync.get(ROUTES_CURRENT_KEY) == second.version.encode()
    assert sync.ttl(ROUTES_KEY.format(second.version)) == -1
    assert 0 < sync.ttl(ROUTES_KEY.format(first.version)) <= OLD_TABLE_TTL_S  # still readable a while
    assert not sync.exists(REGISTRAR_KEY + ":new")  # no temporary key left behind

    second.publish_sync(sync)  # the same configuration again changes nothing
    assert sync.ttl(ROUTES_KEY.format(second.version)) == -1


def test_a_publication_writes_the_table_before_the_version_pointer() -> None:
    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, tuple[Any, ...]]] = []

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: self.calls.append((name, args))

    pipe = Recording()
    published = publication(CONFIG)
    published.queue(pipe, "old-version")
    writes = [(name, args[0]) for name, args in pipe.calls]
    table_at = writes.index(("set", ROUTES_KEY.format(published.version)))
    assert table_at < writes.index(("set", ROUTES_CURRENT_KEY)) < writes.index(
        ("expire", ROUTES_KEY.format("old-version")))
    assert ("rename", REGISTRAR_KEY + ":new") in writes


def test_an_empty_registrar_removes_every_entry(sync: redis_py.Redis) -> None:
    published = publication(CONFIG)
    published.publish_sync(sync)
    Publication({}, published.version, published.table).publish_sync(sync)
    assert not sync.exists(REGISTRAR_KEY) and not sync.exists(REGISTRAR_KEY + ":new")
    assert sync.get(ROUTES_CURRENT_KEY) == published.version.encode()


# -- the controller keeps the publication in Redis --------------------------------------------

async def test_the_keeper_publishes_again_what_redis_lost_and_never_overwrites_a_newer_table(redis: Redis) -> None:
    published = publication(load_config(EXAMPLE))
    keeper = PublicationKeeper(redis, published, Metrics())
    assert await keeper.check() is True  # an empty Redis (a restart without its data): published at once
    assert (await redis.get(ROUTES_CURRENT_KEY)).decode() == published.version
    assert await redis.hlen(REGISTRAR_KEY) == len(published.registrar)
    assert await keeper.check() is False  # nothing lost: nothing written
    await redis.set(ROUTES_CURRENT_KEY, "someone-elses-newer-version")
    assert await keeper.check() is False
    assert await redis.get(ROUTES_CURRENT_KEY) == b"someone-elses-newer-version"
    await redis.delete(REGISTRAR_KEY)  # the directory alone lost
    assert await keeper.check() is True and await redis.hlen(REGISTRAR_KEY) == len(published.registrar)
