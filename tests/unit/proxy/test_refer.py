"""A REFER in a call's dialog, as Kamailio's Python checks it before the controller hears of it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.proxy.refer import BadReferTo, ReferCheck, check_refer, far_end_status, parse_refer_to
from controller.wire import CONV_KEY, INBOUND_STREAM
from tests.unit.proxy.fakes import INVITE_PV, FakePv, FakeRedis, make_routing

# -- Refer-To ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "number", "host"), [
    ("<sip:102@pbx.example>", "102", "pbx.example"),
    ("sip:102@pbx.example", "102", "pbx.example"),
    ("<sip:102@pbx.example;user=phone>", "102", "pbx.example"),
    ("<sip:102@127.0.0.1:5060;transport=udp>", "102", "127.0.0.1"),
    ("<sips:102@PBX.Example>", "102", "pbx.example"),
    ("\"Boris\" <sip:102@pbx.example>", "102", "pbx.example"),
    ("<tel:+74951234567>", "+74951234567", ""),
    ("tel:+7-495-123-45-67", "+74951234567", ""),
    ("tel:102", "102", ""),
    ("<sip:102>", "102", ""),
    ("102", "102", ""),
    ("<sip:%2B79161234567@pbx.example>", "+79161234567", "pbx.example"),
    ("<sip:102;ext=1@pbx.example;user=phone>", "102", "pbx.example"),
    ("<tel:+74951234567;phone-context=+7>", "+74951234567", ""),
])
def test_the_forms_phones_send(value: str, number: str, host: str) -> None:
    target = parse_refer_to(value)
    assert (target.number, target.host, target.replaces) == (number, host, "")


@pytest.mark.parametrize("value", [
    "<sip:102@pbx.example?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>",
    "<sip:102@pbx.example?replaces=abc%3Bfrom-tag%3D2%3Bto-tag%3D1&Require=replaces>",
])
def test_replaces_is_an_attended_transfer(value: str) -> None:
    # the dialog it names, normalised, whatever the order of its tags
    assert parse_refer_to(value).replaces in ("abc@h;to-tag=1;from-tag=2", "abc;to-tag=1;from-tag=2")


@pytest.mark.parametrize("value", [
    "<sip:102@pbx?Replaces=abc%3Bto-tag%3D1>",  # no from-tag
    "<sip:102@pbx?Replaces=%3Bto-tag%3D1%3Bfrom-tag%3D2>",  # no Call-ID
    "<sip:102@pbx?Replaces=abc%0D%0AX-Evil%3A1%3Bto-tag%3D1%3Bfrom-tag%3D2>",  # a header smuggled in
    "<sip:102@pbx?Replaces=a%20b%3Bto-tag%3D1%3Bfrom-tag%3D2>",
    "<sip:102@pbx?Replaces=abc%3Bto-tag%3D1%2C2%3Bfrom-tag%3D2>",
])
def test_a_replaces_that_names_no_dialog_is_refused(value: str) -> None:
    with pytest.raises(BadReferTo):
        parse_refer_to(value)


@pytest.mark.parametrize("value", [
    "", "   ", "<sip:102@pbx.example", "mailto:boss@example.com", "<sip:boris@pbx.example>",
    "<sip:@pbx.example>", "<http://evil.example/102>", "sip:1", "<sip:102 103@pbx>", "x" * 600,
    "sip:10\x002@pbx", "<sip:102@>", "tel:;phone-context=x",
])
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(BadReferTo):
        parse_refer_to(value)


# -- the decision -----------------------------------------------------------------------------------

CALLER, CALLEE = "caller-tag", "callee-tag"
RECORD = {"direction": "incoming", "state": "answered", "tenant": "acme"}


def check(by: str = CALLEE, refer_to: str = "<sip:102@pbx.example>", record: dict[str, str] | None = None,
          hosts: tuple[str, ...] = ("pbx.example", "127.0.0.1")):
    return check_refer(ReferCheck(by_tag=by, dialog_from_tag=CALLER, refer_to=refer_to,
                                  referred_by="<sip:100@pbx.example>", record=RECORD if record is None else record,
                                  our_hosts=hosts))


def test_the_employee_on_an_incoming_call_may_refer() -> None:
    decision = check()
    assert (decision.code, decision.number, decision.referred_by) == (202, "102", "<sip:100@pbx.example>")


def test_the_client_side_never_transfers() -> None:
    assert check(by=CALLER).code == 403
    assert check(by=CALLEE, record=RECORD | {"direction": "outgoing"}).code == 403  # A is the caller there
    assert check(by=CALLER, record=RECORD | {"direction": "outgoing"}).code == 202


@pytest.mark.parametrize("record", [{}, RECORD | {"state": "ended"}, RECORD | {"direction": "internal"},
                                    RECORD | {"state": "ringing"}])
def test_no_talking_conversation_no_transfer(record: dict[str, str]) -> None:
    assert check(record=record).code == 403


def test_a_strangers_host_is_forbidden_and_bad_input_is_a_400() -> None:
    assert check(refer_to="<sip:102@evil.example>").code == 403
    assert check(refer_to="<sip:102@127.0.0.9>").code == 403
    assert check(refer_to="<sip:boris@pbx.example>").code == 400
    assert check(refer_to="").code == 400
    attended = check(refer_to="<sip:102@pbx.example?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>")
    assert (attended.code, attended.replaces) == (202, "x;to-tag=1;from-tag=2")
    assert check(refer_to="<sip:102@pbx.example?Replaces=x%3Bto-tag%3D1>").code == 400
    assert check(refer_to="<tel:+74951234567>").code == 202


# -- through the handler (fakes of KSR.pv and redis-py) ---------------------------------------------

REFER_PV: dict[str, Any] = {
    **INVITE_PV, "$rm": "REFER", "$ft": CALLEE, "$dlg(from_tag)": CALLER, "$dlg(to_tag)": CALLEE,
    "$dlg_var(conv)": "conv-9", "$hdr(Refer-To)": "<sip:102@127.0.0.1>", "$Ri": "127.0.0.1",
}


def refer(redis: FakeRedis, **pv: Any) -> FakePv:
    values = FakePv(REFER_PV | pv)
    assert make_routing(redis, values).refer() == 1
    return values


@pytest.fixture
def redis() -> FakeRedis:
    client = FakeRedis()
    client.publish()
    client.hashes[CONV_KEY.format("conv-9")] = dict(RECORD)
    return client


def test_an_accepted_refer_goes_to_the_controller(redis: FakeRedis) -> None:
    pv = refer(redis)
    assert (pv.set["$var(code)"], pv.set["$var(reason)"]) == ("202", "Accepted")
    [entry] = redis.streams[INBOUND_STREAM]
    message = json.loads(entry["m"])
    assert message["method"] == "transfer.refer"
    params = message["params"]
    assert (params["conversation"], params["number"], params["by_tag"], params["to_tag"]) == (
        "conv-9", "102", CALLEE, CALLEE)


def test_a_refused_refer_reaches_nobody(redis: FakeRedis) -> None:
    pv = refer(redis, **{"$ft": CALLER})
    assert pv.set["$var(code)"] == "403"
    assert INBOUND_STREAM not in redis.streams


def test_the_tenants_domain_is_ours(redis: FakeRedis) -> None:
    domain = "acme.test"  # the example's tenant acme
    pv = refer(redis, **{"$hdr(Refer-To)": f"<sip:102@{domain}>"})
    assert pv.set["$var(code)"] == "202"


def test_redis_away_is_a_503_and_nothing_is_lost_but_the_transfer(redis: FakeRedis) -> None:
    redis.fail_reads = True
    pv = refer(redis)
    assert pv.set["$var(code)"] == "503"


# -- the phone's own hold (python_exec("phone_hold", hold) for a re-INVITE in a conversation's call) -------

def hold(redis: FakeRedis, held: str, features: frozenset[str] = frozenset(), **pv: Any) -> FakePv:
    values = FakePv(REFER_PV | pv)
    assert make_routing(redis, values, features=features).phone_hold(None, held) == 1
    return values


def test_the_employees_hold_is_kept_from_the_client_and_told_to_the_controller(redis: FakeRedis) -> None:
    pv = hold(redis, "recvonly")
    assert pv.set["$var(phone)"] == "1"
    [entry] = redis.streams[INBOUND_STREAM]
    message = json.loads(entry["m"])
    assert (message["method"], message["params"]["by_tag"]) == ("leg.held", CALLEE)


def test_a_resume_is_told_only_for_a_call_the_controller_runs(redis: FakeRedis) -> None:
    assert hold(redis, "").set["$var(phone)"] == "1" and INBOUND_STREAM not in redis.streams
    hold(redis, "", features=frozenset({REFER_PV["$ci"]}))
    assert json.loads(redis.streams[INBOUND_STREAM][0]["m"])["method"] == "leg.resumed"


def test_the_clients_own_hold_is_the_clients_business(redis: FakeRedis) -> None:
    pv = hold(redis, "recvonly", **{"$ft": CALLER})
    assert pv.set["$var(phone)"] == "0" and INBOUND_STREAM not in redis.streams


# -- what the client's trunk says of the REFER this node sent it (python_exec("far_end", transfer id)) -------

@pytest.mark.parametrize(("method", "status", "body", "expected"), [
    ("NOTIFY", None, "SIP/2.0 100 Trying\r\n", 100),
    ("NOTIFY", None, "SIP/2.0 180 Ringing", 180),
    ("NOTIFY", None, "SIP/2.0 200 OK\r\nContact: <sip:x@y>\r\n", 200),
    ("NOTIFY", None, "  SIP/2.0 486 Busy Here\r\n", 486),
    ("NOTIFY", None, "", None),
    ("NOTIFY", None, "SIP/2.0 2000 OK", None),
    ("NOTIFY", None, "SIP/2.0 099 Low", None),
    ("NOTIFY", None, "hello SIP/2.0 200 OK", None),
    # no reply is read (no reply route runs on every reply for it): a refused REFER is the no-answer time's
    ("REFER", "603", "SIP/2.0 603 Decline", None),
    ("INVITE", "486", "SIP/2.0 486 Busy Here", None),
])
def test_the_trunks_answer_is_a_status_or_nothing(method: str, status: str | None, body: str,
                                                  expected: int | None) -> None:
    assert far_end_status(method, body) == expected


def test_the_trunks_notify_goes_to_the_controller_with_its_transfer(redis: FakeRedis) -> None:
    pv = FakePv(REFER_PV | {"$rm": "NOTIFY", "$rb": "SIP/2.0 180 Ringing\r\n"})
    assert make_routing(redis, pv).far_end(None, "t2") == 1
    [entry] = redis.streams[INBOUND_STREAM]
    message = json.loads(entry["m"])
    assert message["method"] == "transfer.far_end"
    assert message["params"] == {"call_id": REFER_PV["$ci"], "transfer_id": "t2", "status": 180}


def test_a_notify_that_says_nothing_reaches_nobody(redis: FakeRedis) -> None:
    pv = FakePv(REFER_PV | {"$rm": "NOTIFY", "$rb": "<html>"})
    assert make_routing(redis, pv).far_end(None, "t2") == 1
    assert INBOUND_STREAM not in redis.streams
