"""KamailioRouting, the code kamailio.cfg runs for every new call and call event: with a fake KSR.pv
and an in-memory Redis, what Kamailio is told and what is recorded."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from controller.proxy.handler import REDIS_PAUSE_S, KamailioRouting
from controller.proxy.invite import MAX_TEXT
from controller.wire import CALL_KEY, CONV_KEY, EVENTS_STREAM, INBOUND_STREAM, LEG_KEY
from tests.unit.proxy.fakes import INVITE_PV, LEG_HEADER_PV, LIMITS, SETTINGS, Clock, FakePv, FakeRedis, make_routing


@pytest.fixture
def redis() -> FakeRedis:
    client = FakeRedis()
    client.publish()
    return client


def route(redis: FakeRedis, **pv: Any) -> tuple[dict[str, Any], FakePv]:
    """One INVITE through route_invite: the decision Kamailio reads from $var(res), and the pv."""
    values = FakePv(INVITE_PV | pv)
    assert make_routing(redis, values).route_invite() == 1
    return json.loads(values.set["$var(res)"]), values


def events(redis: FakeRedis, stream: str = EVENTS_STREAM) -> list[dict[str, Any]]:
    return [entry | {"data": json.loads(entry["data"])} if "data" in entry else entry
            for entry in redis.streams.get(stream, [])]


# -- route_invite ---------------------------------------------------------------------------------

def test_a_trunk_call_to_a_did_is_routed_and_its_conversation_started(redis: FakeRedis) -> None:
    result, pv = route(redis)
    assert (result["action"], result["direction"], result["tenant"]) == ("route", "incoming", "acme")
    assert result["origin"] == "did:+74951110000->extension:100"
    assert result["targets"] and all(target["uri"] for target in result["targets"])
    assert pv.set["$dlg_var(conv)"] == "conv-1"
    stored = redis.hashes[CONV_KEY.format("conv-1")]
    assert stored == {
        "tenant": "acme", "direction": "incoming", "client_number": "+79161112233", "employee": "100",
        "did": "+74951110000", "origin": "did:+74951110000->extension:100", "trunk": "carrier", "from_tag": "ft-1",
        "from": "+79161112233", "to": "+74951110000", "created_ms": "1000000", "call_id": "call-1",
        "state": "routing", "targets": json.dumps([t["uri"] for t in result["targets"]])}
    assert redis.strings[CALL_KEY.format("call-1")] == b"conv-1"
    assert redis.ttls[CONV_KEY.format("conv-1")] == redis.ttls[CALL_KEY.format("call-1")] == LIMITS.max_call_s
    [started] = events(redis)
    assert (started["event"], started["conversation"], started["data"]["employee"]) == (
        "call.started", "conv-1", "100")
    assert INBOUND_STREAM not in redis.streams  # an ordinary call is none of the controller's business


def test_a_call_to_an_unknown_did_is_rejected_and_recorded_once(redis: FakeRedis) -> None:
    result, pv = route(redis, **{"$rU": "+74959999999"})
    assert result == {"action": "reject", "code": 404, "reason": "Not Found", "cause": "unknown_did"}
    assert "$dlg_var(conv)" not in pv.set
    [rejected] = events(redis)
    assert (rejected["event"], rejected["data"]["call_id"], rejected["data"]["source"], rejected["data"]["to"]) == (
        "call.rejected", "call-1", "127.0.0.2:5060", "+74959999999")
    assert redis.hashes == {}


def test_a_flood_of_rejected_calls_from_one_source_records_only_the_budget(redis: FakeRedis) -> None:
    routing = make_routing(redis)
    for i in range(200):
        routing.pv = FakePv(INVITE_PV | {"$rU": "+74959999999", "$ci": f"flood-{i}"})
        routing.route_invite()
        assert json.loads(routing.pv.set["$var(res)"])["code"] == 404  # every one is still refused
    assert len(events(redis)) == 20  # PerSourceBudget: 20 per source per 10 s
    routing.pv = FakePv(INVITE_PV | {"$rU": "+74959999999", "$si": "127.0.0.22", "$ci": "other"})
    routing.route_invite()
    assert len(events(redis)) == 21  # another source has its own allowance


@pytest.mark.parametrize("pv", [{"$fU": "x" * (MAX_TEXT + 1)}, {"$si": "not-an-address"}, {"$si": ""},
                                {"$sp": 70000}, {"$ci": "c" * 100_000}], ids=str)
def test_bad_params_are_refused_with_400_and_nothing_is_recorded(redis: FakeRedis, pv: dict[str, Any]) -> None:
    result, values = route(redis, **pv)
    assert result == {"action": "reject", "code": 400, "reason": "Bad Request", "cause": "bad_request"}
    assert "$dlg_var(conv)" not in values.set
    assert redis.writes == 0


def test_without_a_routing_table_a_call_is_refused_with_503() -> None:
    result, _pv = route(FakeRedis())
    assert (result["action"], result["code"], result["cause"]) == ("reject", 503, "no_routing_table")


def test_redis_failing_on_the_record_still_routes_the_call(redis: FakeRedis,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    redis.fail_writes = True
    with caplog.at_level(logging.ERROR, logger="xfer.proxy"):
        result, pv = route(redis)
    assert result["action"] == "route" and result["targets"]
    assert pv.set["$dlg_var(conv)"] == "conv-1"
    assert "routed anyway" in caplog.text


def test_redis_away_after_the_table_was_read_routes_with_the_last_table(redis: FakeRedis) -> None:
    routing = make_routing(redis, FakePv(INVITE_PV))
    routing.route_invite()
    redis.fail_reads = redis.fail_writes = True
    routing.pv = FakePv(INVITE_PV | {"$ci": "call-2"})
    routing.route_invite()
    assert json.loads(routing.pv.set["$var(res)"])["action"] == "route"


LEG = {"call_id": "leg-call", "conversation": "conv-9", "targets": json.dumps([{"uri": "sip:101@127.0.0.1:5070"}]),
       "ring_timeout_ms": "20000"}


def test_a_transfer_leg_is_routed_to_its_stored_targets(redis: FakeRedis) -> None:
    redis.hashes[LEG_KEY.format("conv-9.t1.b1")] = LEG
    result, pv = route(redis, **{"$ci": "leg-call", "$avp(xpeer)": "node", LEG_HEADER_PV: "conv-9.t1.b1"})
    assert (result["action"], result["direction"], result["conversation"]) == ("route", "transfer", "conv-9")
    assert result["targets"] == [{"uri": "sip:101@127.0.0.1:5070"}]
    assert result["ring_timeout_ms"] == 20000
    assert pv.set["$dlg_var(conv)"] == "conv-9"
    assert redis.writes == 0  # the leg's records are the controller's


def test_a_transfer_leg_with_someone_else_s_call_id_is_refused(redis: FakeRedis) -> None:
    redis.hashes[LEG_KEY.format("conv-9.t1.b1")] = LEG
    result, pv = route(redis, **{"$ci": "forged", "$avp(xpeer)": "node", LEG_HEADER_PV: "conv-9.t1.b1"})
    assert (result["action"], result["code"], result["cause"]) == ("reject", 404, "unknown_transfer_leg")
    assert "$dlg_var(conv)" not in pv.set


def test_a_transfer_leg_claim_from_a_peer_other_than_the_node_is_refused(redis: FakeRedis) -> None:
    redis.hashes[LEG_KEY.format("conv-9.t1.b1")] = LEG
    params = {"call_id": "leg-call", "source_ip": "127.0.0.2", "source_port": 5060, "from_user": "a",
              "from_domain": "d", "ruri_user": "101", "ruri_domain": "d", "peer": "trunk", "xfer_leg": "conv-9.t1.b1"}
    result, conversation = make_routing(redis).decide(params)
    assert (result["code"], result["cause"], conversation) == (400, "bad_request", "")
    # through Kamailio, a stranger's header is not even read: its INVITE is an ordinary call
    result, _pv = route(redis, **{LEG_HEADER_PV: "conv-9.t1.b1"})
    assert (result["direction"], result["conversation"]) == ("incoming", "conv-1")


# -- call_event -----------------------------------------------------------------------------------

DIALOG_PV = {"$dlg(callid)": "call-1", "$dlg(from_tag)": "ft-1", "$dlg(to_tag)": "<null>", "$tt": "tt-1",
             "$dlg_var(conv)": "conv-1", "$var(nleg)": "0", "$var(reason)": "",
             "$var(cause)": ""}


def started(redis: FakeRedis, clock: Clock) -> None:
    routing = make_routing(redis, FakePv(INVITE_PV), clock)
    routing.route_invite()
    redis.streams.clear()


def event(redis: FakeRedis, method: str, clock: Clock, features: frozenset[str] = frozenset(), **pv: Any) -> FakePv:
    values = FakePv(DIALOG_PV | pv)
    assert make_routing(redis, values, clock, features).call_event(None, method) == 1
    return values


def test_an_answered_call_is_recorded_and_its_answer_time_kept_in_the_dialog(redis: FakeRedis) -> None:
    clock = Clock(1_000_000)
    started(redis, clock)
    clock.now_ms = 1_005_000
    pv = event(redis, "call.answered", clock, **{"$var(code)": 200})
    stored = redis.hashes[CONV_KEY.format("conv-1")]
    assert (stored["state"], stored["answered_ms"], stored["to_tag"]) == ("answered", "1005000", "tt-1")
    assert pv.set["$dlg_var(answered_ms)"] == "1005000"
    [answered] = events(redis)
    assert (answered["event"], answered["conversation"], answered["data"]["code"]) == ("call.answered", "conv-1", 200)
    assert INBOUND_STREAM not in redis.streams


def test_an_ended_call_is_recorded_with_its_duration_and_expires_soon(redis: FakeRedis) -> None:
    clock = Clock(1_000_000)
    started(redis, clock)
    clock.now_ms = 1_065_000
    event(redis, "call.ended", clock, **{"$var(code)": 0, "$var(cause)": "bye", "$dlg_var(answered_ms)": "1005000",
                                         "$rm": "BYE", "$ft": "ft-1"})
    stored = redis.hashes[CONV_KEY.format("conv-1")]
    assert (stored["state"], stored["duration_ms"], stored["ended_ms"], stored["cause"]) == (
        "ended", "60000", "1065000", "bye")
    assert redis.ttls[CONV_KEY.format("conv-1")] == redis.ttls[CALL_KEY.format("call-1")] == LIMITS.ttl_after_end_s
    [ended] = events(redis)
    assert (ended["event"], ended["data"]["duration_ms"]) == ("call.ended", 60000)


def test_a_leg_s_event_goes_only_to_the_controller(redis: FakeRedis) -> None:
    event(redis, "leg.ringing", Clock(), **{"$var(nleg)": "1", "$var(code)": 180, "$dlg_var(conv)": ""})
    [note] = events(redis, INBOUND_STREAM)
    message = json.loads(note["m"])
    assert (message["jsonrpc"], message["method"], message["params"]["call_id"], message["params"]["code"]) == (
        "2.0", "leg.ringing", "call-1", 180)
    assert "id" not in message  # a notification
    assert EVENTS_STREAM not in redis.streams and redis.hashes == {}


def test_a_feature_call_s_event_goes_to_the_controller_and_to_the_records(redis: FakeRedis) -> None:
    clock = Clock()
    started(redis, clock)
    event(redis, "call.answered", clock, frozenset({"call-1"}), **{"$var(code)": 200})
    [note] = events(redis, INBOUND_STREAM)
    message = json.loads(note["m"])
    assert (message["method"], message["params"]["call_id"]) == ("call.answered", "call-1")
    assert [entry["event"] for entry in events(redis)] == ["call.answered"]
    assert redis.hashes[CONV_KEY.format("conv-1")]["state"] == "answered"


def test_an_event_without_a_conversation_is_only_logged(redis: FakeRedis) -> None:
    pv = event(redis, "call.rejected", Clock(), **{"$dlg_var(conv)": None, "$dlg(callid)": None, "$ci": "c-9",
                                                   "$ft": "ft-9", "$var(code)": 403, "$var(reason)": "Forbidden"})
    [rejected] = events(redis)
    assert (rejected["event"], rejected["conversation"], rejected["data"]["call_id"], rejected["data"]["code"]) == (
        "call.rejected", "", "c-9", 403)
    assert redis.hashes == {} and INBOUND_STREAM not in redis.streams and pv.set == {}
    event(redis, "call.answered", Clock(), **{"$dlg_var(conv)": None, "$var(code)": 200})
    assert len(events(redis)) == 1 and redis.hashes == {}  # an answer with no conversation: nothing to record


def test_a_failing_record_never_fails_kamailio_s_route(redis: FakeRedis, caplog: pytest.LogCaptureFixture) -> None:
    redis.fail_writes = True
    with caplog.at_level(logging.ERROR, logger="xfer.proxy"):
        event(redis, "call.ended", Clock(), **{"$var(code)": 0})
    assert "call.ended not recorded" in caplog.text


def test_after_a_redis_failure_a_worker_leaves_redis_alone_for_a_moment_and_keeps_routing(
        redis: FakeRedis, caplog: pytest.LogCaptureFixture) -> None:
    """A Redis that is down or hung must not cost every call its timeouts in a SIP worker."""
    now = [100.0]
    routing = KamailioRouting(SETTINGS, FakePv(INVITE_PV), redis_factory=lambda settings: redis, clock=Clock(),
                              new_id=lambda: "conv-x", monotonic=lambda: now[0])
    invite = routing._invite_params()
    first, _ = routing.decide(dict(invite))
    assert first["action"] == "route"  # the table is loaded while Redis works
    redis.fail_writes = True
    with caplog.at_level(logging.ERROR, logger="xfer.proxy"):
        routing.decide(dict(invite))  # the record fails: Redis is left alone for REDIS_PAUSE_S
        commands = redis.commands
        for _ in range(5):
            result, _ = routing.decide(dict(invite))
            assert result["action"] == "route"  # still routed, with the table the worker has
            routing.call_event(None, "call.ended")
    assert redis.commands == commands  # nothing sent to Redis during the pause
    assert caplog.text.count("Redis unavailable") == 1  # one log line per pause, not one per call
    redis.fail_writes = False
    now[0] += REDIS_PAUSE_S
    routing.decide(dict(invite))
    assert redis.commands > commands  # after the pause Redis is used again
